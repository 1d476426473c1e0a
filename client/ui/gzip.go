package ui

import (
	"compress/gzip"
	"net/http"
	"sync"
)

// The bridge's answers are JSON, which compresses about tenfold. Browsers
// ask for gzip on every fetch and undo it before the page sees a byte, also
// in the middle of a Watch stream, so the whole HTTP body is compressed and
// flushed message by message: one compression context per stream, which
// also gains from what earlier messages repeat.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
	return zw
}}

// compress serves next's answers gzipped to requests that accept gzip.
// Accept-Encoding is taken off the request, so that the bridge never
// compresses on its own as well.
func compress(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !acceptsGzip(r) {
			r.Header.Del("Accept-Encoding")
			next.ServeHTTP(w, r)
			return
		}
		r.Header.Del("Accept-Encoding")
		zw := gzipWriters.Get().(*gzip.Writer)
		zw.Reset(w)
		gw := &gzipWriter{ResponseWriter: w, zw: zw}
		defer func() {
			if gw.wroteHeader && gw.compressing {
				_ = zw.Close()
			}
			zw.Reset(nil)
			gzipWriters.Put(zw)
		}()
		next.ServeHTTP(gw, r)
	})
}

type gzipWriter struct {
	http.ResponseWriter
	zw          *gzip.Writer
	wroteHeader bool
	compressing bool
}

func (g *gzipWriter) WriteHeader(code int) {
	if g.wroteHeader {
		return
	}
	g.wroteHeader = true
	h := g.Header()
	h.Add("Vary", "Accept-Encoding")
	// Bodiless answers and answers already encoded pass as they are.
	if code != http.StatusNoContent && code != http.StatusNotModified && h.Get("Content-Encoding") == "" {
		g.compressing = true
		h.Del("Content-Length")
		h.Set("Content-Encoding", "gzip")
	}
	g.ResponseWriter.WriteHeader(code)
}

func (g *gzipWriter) Write(p []byte) (int, error) {
	if !g.wroteHeader {
		g.WriteHeader(http.StatusOK)
	}
	if !g.compressing {
		return g.ResponseWriter.Write(p)
	}
	return g.zw.Write(p)
}

// Flush sends what is compressed so far: each Watch message reaches the
// page when it is written.
func (g *gzipWriter) Flush() {
	if g.compressing {
		_ = g.zw.Flush()
	}
	if f, ok := g.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (g *gzipWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }
