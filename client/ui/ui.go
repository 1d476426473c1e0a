// Package ui is the web view: one read-only page, embedded in the binaries,
// that shows which components run on which nodes, and how.
//
// The page asks the same InventoryService that gRPC clients, grpcurl and the
// CLI ask. Browsers cannot speak gRPC's HTTP/2 trailers, so vanguard
// transcodes the Connect protocol (JSON over HTTP/1.1 or HTTP/2, unary and
// server streaming) to gRPC in front of the very grpc.Server that serves
// gRPC clients: its interceptors, and so its authentication, apply to the
// page's calls unchanged. Only InventoryService is bridged; agent streams,
// health and reflection stay gRPC-only.
package ui

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"connectrpc.com/vanguard"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Prefix is where the page is served.
const Prefix = "/ui/"

// service is the one service bridged to the page.
var service = v1.InventoryService_ServiceDesc.ServiceName

// APIPrefix is where the InventoryService is served to the page.
var APIPrefix = "/" + service + "/"

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve: its bytes, gzipped bytes and
// validator are computed once.
type asset struct {
	body, gz []byte
	etag     string
	ctype    string
}

// NewHandler serves the page under Prefix and gs's InventoryService under
// APIPrefix, transcoded to gRPC by vanguard. Every other path redirects to
// the page.
func NewHandler(gs *grpc.Server) (http.Handler, error) {
	if _, ok := gs.GetServiceInfo()[service]; !ok {
		return nil, errors.New("the gRPC server does not serve " + service)
	}
	api, err := vanguard.NewTranscoder(
		[]*vanguard.Service{vanguard.NewService(service, gs)},
		vanguard.WithDefaultServiceOptions(
			vanguard.WithTargetProtocols(vanguard.ProtocolGRPC),
			vanguard.WithTargetCodecs(vanguard.CodecProto),
			// A message the bridge buffers (an answer's page, a Watch
			// batch) is bounded; vanguard's own bound is 4 GiB.
			vanguard.WithMaxMessageBufferBytes(maxMessageBytes),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("bridging %s for the web view: %w", service, err)
	}
	assets, err := loadAssets()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(APIPrefix, compress(limitRequest(api)))
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) { serveAsset(w, r, assets) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, Prefix, http.StatusFound)
	})
	return secure(mux), nil
}

// Bounds on what the bridge reads and buffers. Requests are small (the
// largest is a CEL filter of at most 10 KiB), and they are read before the
// query's credentials are checked, so their bound is tight.
const (
	maxRequestBytes = 1 << 20
	maxMessageBytes = 64 << 20
)

// limitRequest refuses a request body over maxRequestBytes.
func limitRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxRequestBytes {
			http.Error(w, fmt.Sprintf("request body over %d bytes", maxRequestBytes), http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
		next.ServeHTTP(w, r)
	})
}

func loadAssets() (map[string]*asset, error) {
	out := map[string]*asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		out[strings.TrimPrefix(p, "static/")] = newAsset(body, ctype)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the embedded web view: %w", err)
	}
	if out["index.html"] == nil {
		return nil, errors.New("the embedded web view has no index.html")
	}
	words, err := json.Marshal(Words())
	if err != nil {
		return nil, err
	}
	out["words.json"] = newAsset(words, "application/json")
	return out, nil
}

func newAsset(body []byte, ctype string) *asset {
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = zw.Write(body)
	_ = zw.Close()
	sum := sha256.Sum256(body)
	return &asset{body: body, gz: gz.Bytes(), etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ctype}
}

// Words is what the page prints for the API's enums, keyed by the names
// protojson gives them, taken from the API package's words (the one place
// an enum becomes words), and the order components are listed in.
func Words() map[string]any {
	enum := func(d protoreflect.EnumDescriptor, words func(protoreflect.EnumNumber) string) map[string]string {
		out := map[string]string{}
		for i := range d.Values().Len() {
			v := d.Values().Get(i)
			out[string(v.Name())] = words(v.Number())
		}
		return out
	}
	return map[string]any{
		"how":           enum(v1.DeploymentKind(0).Descriptor(), func(n protoreflect.EnumNumber) string { return v1.DeploymentKind(n).Words() }),
		"mode":          enum(v1.ClusterMode(0).Descriptor(), func(n protoreflect.EnumNumber) string { return v1.ClusterMode(n).Word() }),
		"modeExplained": enum(v1.ClusterMode(0).Descriptor(), func(n protoreflect.EnumNumber) string { return v1.ClusterMode(n).Explained() }),
		"agentState":    enum(v1.AgentState(0).Descriptor(), func(n protoreflect.EnumNumber) string { return v1.AgentState(n).Word() }),
		"severity":      enum(v1.Severity(0).Descriptor(), func(n protoreflect.EnumNumber) string { return v1.Severity(n).Word() }),
		"findingKind":   enum(v1.FindingKind(0).Descriptor(), func(n protoreflect.EnumNumber) string { return v1.FindingKind(n).Word() }),
		"evidenceKind":  enum(v1.EvidenceKind(0).Descriptor(), func(n protoreflect.EnumNumber) string { return v1.EvidenceKind(n).Words() }),
		"freshness":     enum(v1.Freshness(0).Descriptor(), func(n protoreflect.EnumNumber) string { return v1.Freshness(n).Word() }),
		"components":    v1.Components,
	}
}

// serveAsset serves /ui/static/<file> from the embedded files and every
// other path under /ui/ as index.html: the page reads its URL (a cluster, a
// node, an instance, findings) and shows what it names, so links can be
// shared.
func serveAsset(w http.ResponseWriter, r *http.Request, assets map[string]*asset) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the web view is read-only", http.StatusMethodNotAllowed)
		return
	}
	name := "index.html"
	if rest, ok := strings.CutPrefix(r.URL.Path, Prefix+"static/"); ok {
		name = rest
	}
	a := assets[name]
	if a == nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	// Revalidated on every load: a new binary's page is never mixed with an
	// old one's scripts, and an unchanged file costs one 304.
	h.Set("Cache-Control", "no-cache")
	h.Add("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// csp allows the page its own scripts, styles and API and nothing else: no
// inline script, no third-party origin, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// Server serves the web view on one listener.
type Server struct {
	http *http.Server
	lis  net.Listener
}

// Listen opens addr for h, with TLS when tlsConfig is set (its
// GetConfigForClient may hand out fresh certificates per connection). The
// server's own complaints (a browser that drops a TLS handshake) go to log
// at debug level; log may be nil.
func Listen(addr string, h http.Handler, tlsConfig *tls.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for the web view on %s: %w", addr, err)
	}
	s := &Server{lis: lis, http: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests are small: one that trickles in is cut off.
		ReadTimeout: 30 * time.Second,
		// No write timeout: Watch streams stay open for as long as a page
		// follows them.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		TLSConfig:      tlsConfig,
		ErrorLog:       slog.NewLogLogger(log.With("server", "ui").Handler(), slog.LevelDebug),
	}}
	return s, nil
}

// Addr is the address the web view listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// URL is the page's address.
func (s *Server) URL() string {
	scheme := "http"
	if s.http.TLSConfig != nil {
		scheme = "https"
	}
	return scheme + "://" + s.Addr() + Prefix
}

// Serve serves until Shutdown; it returns nil after Shutdown.
func (s *Server) Serve() error {
	var err error
	if s.http.TLSConfig != nil {
		err = s.http.ServeTLS(s.lis, "", "")
	} else {
		err = s.http.Serve(s.lis)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for open requests until ctx ends, then
// closes what is left (long Watch streams).
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	return err
}
