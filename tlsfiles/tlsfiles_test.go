package tlsfiles

import (
	"context"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/kubeatlas/kubeatlas/aggregator/auth"
)

// pki writes certificates the way an operator rotates them: into a new file
// renamed over the old, so a reader never sees half a file.
type pki struct {
	t   *testing.T
	dir string
}

func (p pki) issue(ca *auth.CA, base, cn string, server bool) {
	p.t.Helper()
	now := time.Now()
	is, err := ca.Issue(pkix.Name{CommonName: cn}, server, []string{"127.0.0.1"}, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		p.t.Fatal(err)
	}
	tmp := p.t.TempDir()
	if err := auth.WritePEM(tmp, base, is.Cert, is.Key); err != nil {
		p.t.Fatal(err)
	}
	for _, ext := range []string{".crt", ".key"} {
		if err := os.Rename(filepath.Join(tmp, base+ext), filepath.Join(p.dir, base+ext)); err != nil {
			p.t.Fatal(err)
		}
	}
}

func (p pki) trust(base string, cas ...*auth.CA) {
	p.t.Helper()
	var data []byte
	for _, ca := range cas {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...)
	}
	tmp := filepath.Join(p.dir, base+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, base+".crt")); err != nil {
		p.t.Fatal(err)
	}
}

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

func newCA(t *testing.T, name string) *auth.CA {
	ca, err := auth.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// server is a gRPC server over tlsfiles credentials that remembers the
// client certificate of each call.
type server struct {
	addr    string
	mu      sync.Mutex
	clients []string
}

func startServer(t *testing.T, src *Source) *server {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{addr: lis.Addr().String()}
	gs := grpc.NewServer(grpc.Creds(src.ServerCredentials()), grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			cn := "<none>"
			if p, ok := peer.FromContext(ctx); ok {
				if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
					cn = ti.State.VerifiedChains[0][0].Subject.CommonName
				}
			}
			s.mu.Lock()
			s.clients = append(s.clients, cn)
			s.mu.Unlock()
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return s
}

func (s *server) lastClient() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clients[len(s.clients)-1]
}

// call makes one call on a new connection and returns the server's
// certificate name.
func call(t *testing.T, addr string, creds credentials.TransportCredentials) (string, error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var p peer.Peer
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		return "", err
	}
	return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].Subject.CommonName, nil
}

func TestRotationNeedsNoRestart(t *testing.T) {
	p := pki{t: t, dir: t.TempDir()}
	ca := newCA(t, "ca-1")
	p.trust("ca", ca)
	p.issue(ca, "server", "server-1", true)
	p.issue(ca, "agent", "agent-1", false)
	srvSrc, err := Load(Files{CA: p.path("ca.crt"), Cert: p.path("server.crt"), Key: p.path("server.key")})
	if err != nil {
		t.Fatal(err)
	}
	cliSrc, err := Load(Files{CA: p.path("ca.crt"), Cert: p.path("agent.crt"), Key: p.path("agent.key")})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, srvSrc)
	creds := cliSrc.ClientCredentials("127.0.0.1")
	if name, err := call(t, srv.addr, creds); err != nil || name != "server-1" || srv.lastClient() != "agent-1" {
		t.Fatalf("first call: server %q, client %q, %v", name, srv.lastClient(), err)
	}

	// Both certificates rotate; the next connection uses the new ones.
	p.issue(ca, "server", "server-2", true)
	p.issue(ca, "agent", "agent-2", false)
	for _, src := range []*Source{srvSrc, cliSrc} {
		if changed, err := src.Reload(); err != nil || !changed {
			t.Fatalf("reload: changed %v, %v", changed, err)
		}
	}
	if name, err := call(t, srv.addr, creds); err != nil || name != "server-2" || srv.lastClient() != "agent-2" {
		t.Fatalf("after rotation: server %q, client %q, %v", name, srv.lastClient(), err)
	}
	if changed, err := srvSrc.Reload(); err != nil || changed {
		t.Fatalf("reload of unchanged files: changed %v, %v", changed, err)
	}

	// A new CA: the server's certificate from it is refused until the
	// client trusts it too, then accepted, with no restart.
	ca2 := newCA(t, "ca-2")
	p.issue(ca2, "server", "server-3", true)
	p.trust("ca", ca, ca2) // the server trusts agents of either CA
	if _, err := srvSrc.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, srv.addr, creds); err == nil {
		t.Fatal("a client that does not trust the new CA accepted it")
	}
	if _, err := cliSrc.Reload(); err != nil {
		t.Fatal(err)
	}
	if name, err := call(t, srv.addr, creds); err != nil || name != "server-3" {
		t.Fatalf("after the CA bundle grew: server %q, %v", name, err)
	}

	// A broken file is refused with the file's name and never its
	// contents; the previous certificate stays in use.
	key, _ := os.ReadFile(p.path("agent.key"))
	if err := os.WriteFile(p.path("agent.crt"), []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := cliSrc.Reload()
	if err == nil || changed || !strings.Contains(err.Error(), "agent.crt") || strings.Contains(err.Error(), string(key[40:60])) {
		t.Fatalf("broken certificate: changed %v, %v", changed, err)
	}
	if name, err := call(t, srv.addr, creds); err != nil || name != "server-3" || srv.lastClient() != "agent-2" {
		t.Fatalf("after a broken file: server %q, client %q, %v", name, srv.lastClient(), err)
	}
	if _, refused := cliSrc.Reloads(); refused != 1 {
		t.Fatalf("refused %d reads, want 1", refused)
	}
}

func TestWatchPicksUpARotation(t *testing.T) {
	p := pki{t: t, dir: t.TempDir()}
	ca := newCA(t, "ca")
	p.trust("ca", ca)
	p.issue(ca, "server", "server-1", true)
	src, err := Load(Files{Cert: p.path("server.crt"), Key: p.path("server.key")})
	if err != nil {
		t.Fatal(err)
	}
	src.Watch(10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer src.Close()
	p.issue(ca, "server", "server-2", true)
	deadline := time.Now().Add(10 * time.Second)
	for src.Certificate().Subject.CommonName != "server-2" {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never reloaded the rotated certificate")
		}
		time.Sleep(5 * time.Millisecond)
	}
	src.Close()
	src.Close() // twice is fine
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	p := pki{t: t, dir: t.TempDir()}
	ca := newCA(t, "ca")
	p.issue(ca, "server", "s", true)
	other := newCA(t, "other")
	is, err := other.Issue(pkix.Name{CommonName: "x"}, true, nil, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.WritePEM(p.dir, "other", is.Cert, is.Key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.path("empty.crt"), []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		files Files
		want  string
	}{
		{Files{CA: p.path("missing.crt")}, "missing.crt"},
		{Files{CA: p.path("empty.crt")}, "no PEM certificates in the CA file"},
		{Files{Cert: p.path("server.crt")}, "go together"},
		{Files{Cert: p.path("server.crt"), Key: p.path("other.key")}, "server.crt and key"},
		{Files{Cert: p.path("server.crt"), Key: p.path("missing.key")}, "missing.key"},
	} {
		if _, err := Load(c.files); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.files, err, c.want)
		}
	}
	// With no CA, a client trusts the system's roots.
	src, err := Load(Files{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := src.ClientConfig("x"); cfg.RootCAs != nil || len(cfg.Certificates) != 0 {
		t.Fatal("an empty Files set roots or a certificate")
	}
	if src.Certificate() != nil || !src.NotAfter().IsZero() {
		t.Fatal("an empty Files has a certificate")
	}
}
