// Package tlsfiles gives the agent, the aggregator and the CLI their TLS
// credentials from PEM files, and reloads the files when they change, so that
// a rotated certificate (a node's, the aggregator's, or the CA bundle) is used
// from the next connection on, with no restart.
//
// Every handshake builds its configuration from the newest files that were
// read whole and parsed; a file caught half-written, or one that does not
// parse, is reported and the previous material stays in use. Reloading does
// not touch connections already open: gRPC keeps them until they end, and a
// reconnecting client picks the new certificate up.
package tlsfiles

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// DefaultReload is how often a watching Source reads its files again.
const DefaultReload = time.Minute

// Files names the PEM files of one side of a connection.
type Files struct {
	// CA holds the certificates to trust: for a client, those that sign the
	// server's certificate (empty: the system's roots); for a server, those
	// that sign client certificates (empty: no client certificates).
	CA string
	// Cert and Key are this side's certificate chain and private key; both
	// or neither.
	Cert, Key string
}

// material is what one read of the files gave.
type material struct {
	cert                   *tls.Certificate
	roots                  *x509.CertPool
	caPEM, certPEM, keyPEM []byte
}

// Source holds the newest good material read from Files.
type Source struct {
	files Files
	cur   atomic.Pointer[material]
	// Reloads counts reloads that changed the material, Failures reads
	// that were refused.
	reloads, failures atomic.Uint64
	stop              chan struct{}
	stopOnce          sync.Once
	done              chan struct{}
}

// Load reads the files once and returns a Source over them, or a clear error
// naming the file at fault.
func Load(f Files) (*Source, error) {
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("a certificate and its key go together: give both files or neither")
	}
	s := &Source{files: f}
	m, err := s.read(nil)
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	return s, nil
}

// read reads the files and parses what changed since prev.
func (s *Source) read(prev *material) (*material, error) {
	m := &material{}
	if prev != nil {
		*m = *prev
	}
	if s.files.CA != "" {
		data, err := os.ReadFile(s.files.CA)
		if err != nil {
			return nil, fmt.Errorf("reading the CA file: %w", err)
		}
		if prev == nil || !bytes.Equal(data, prev.caPEM) {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(data) {
				return nil, fmt.Errorf("no PEM certificates in the CA file %s", s.files.CA)
			}
			m.roots, m.caPEM = pool, data
		}
	}
	if s.files.Cert != "" {
		certPEM, err := os.ReadFile(s.files.Cert)
		if err != nil {
			return nil, fmt.Errorf("reading the certificate: %w", err)
		}
		keyPEM, err := os.ReadFile(s.files.Key)
		if err != nil {
			return nil, fmt.Errorf("reading the key: %w", err)
		}
		if prev == nil || !bytes.Equal(certPEM, prev.certPEM) || !bytes.Equal(keyPEM, prev.keyPEM) {
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				// Never the contents: one of them is a private key.
				return nil, fmt.Errorf("certificate %s and key %s: %w", s.files.Cert, s.files.Key, err)
			}
			m.cert, m.certPEM, m.keyPEM = &cert, certPEM, keyPEM
		}
	}
	return m, nil
}

// Reload reads the files now. It reports whether the material changed; on
// an error the previous material stays in use.
func (s *Source) Reload() (bool, error) {
	prev := s.cur.Load()
	m, err := s.read(prev)
	if err != nil {
		s.failures.Add(1)
		return false, err
	}
	if m.roots == prev.roots && m.cert == prev.cert {
		return false, nil
	}
	s.cur.Store(m)
	s.reloads.Add(1)
	return true, nil
}

// Watch reloads the files every interval until Close, logging each change
// and each refused read. An interval of 0 or less does nothing.
func (s *Source) Watch(interval time.Duration, log *slog.Logger) {
	if interval <= 0 || s.stop != nil {
		return
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			changed, err := s.Reload()
			switch {
			case err != nil:
				log.Error("reloading TLS files; the previous certificates stay in use", "error", err)
			case changed:
				log.Info("reloaded TLS files", "cert", s.files.Cert, "ca", s.files.CA, "not_after", s.NotAfter())
			}
		}
	}()
}

// Close stops watching.
func (s *Source) Close() {
	if s.stop == nil {
		return
	}
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

// Reloads returns how many reloads changed the material, and how many reads
// were refused.
func (s *Source) Reloads() (changed, refused uint64) { return s.reloads.Load(), s.failures.Load() }

// NotAfter returns when this side's certificate expires (zero without one).
func (s *Source) NotAfter() time.Time {
	if c := s.Certificate(); c != nil {
		return c.NotAfter
	}
	return time.Time{}
}

// Certificate returns this side's current leaf certificate, or nil.
func (s *Source) Certificate() *x509.Certificate {
	m := s.cur.Load()
	if m.cert == nil {
		return nil
	}
	if m.cert.Leaf != nil {
		return m.cert.Leaf
	}
	leaf, err := x509.ParseCertificate(m.cert.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// ServerConfig returns a configuration for one server handshake: the current
// certificate, and, with a CA, client certificates verified when given.
// Agents must give one (the aggregator checks it per stream); query clients
// may use a token instead.
func (s *Source) ServerConfig() *tls.Config {
	m := s.cur.Load()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if m.cert != nil {
		cfg.Certificates = []tls.Certificate{*m.cert}
	}
	if m.roots != nil {
		cfg.ClientCAs = m.roots
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg
}

// HTTPServerConfig returns a configuration for an HTTPS server (the web
// view) that takes the newest files for every handshake, as
// ServerCredentials does for gRPC: client certificates are verified when
// given, and HTTP/2 is offered.
func (s *Source) HTTPServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cfg := s.ServerConfig()
			cfg.NextProtos = []string{"h2", "http/1.1"}
			return cfg, nil
		},
	}
}

// ClientConfig returns a configuration for one client handshake with a
// server that must be serverName (empty: the host dialled).
func (s *Source) ClientConfig(serverName string) *tls.Config {
	m := s.cur.Load()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, RootCAs: m.roots}
	if m.cert != nil {
		cfg.Certificates = []tls.Certificate{*m.cert}
	}
	return cfg
}

// ServerCredentials returns gRPC server credentials that use the newest
// files for every connection.
func (s *Source) ServerCredentials() credentials.TransportCredentials {
	return &creds{s: s, server: true}
}

// ClientCredentials returns gRPC client credentials that use the newest
// files for every connection.
func (s *Source) ClientCredentials(serverName string) credentials.TransportCredentials {
	return &creds{s: s, serverName: serverName}
}

// creds makes grpc's own TLS credentials afresh for each handshake, so the
// handshake, ALPN and the peer's AuthInfo are exactly grpc's.
type creds struct {
	s          *Source
	server     bool
	serverName string
}

func (c *creds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.s.ClientConfig(c.serverName)).ClientHandshake(ctx, authority, conn)
}

func (c *creds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.s.ServerConfig()).ServerHandshake(conn)
}

func (c *creds) Info() credentials.ProtocolInfo {
	if c.server {
		return credentials.NewTLS(c.s.ServerConfig()).Info()
	}
	return credentials.NewTLS(c.s.ClientConfig(c.serverName)).Info()
}

func (c *creds) Clone() credentials.TransportCredentials {
	cp := *c
	return &cp
}

// OverrideServerName implements the deprecated method of the interface.
func (c *creds) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}
