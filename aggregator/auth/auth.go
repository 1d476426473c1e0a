package auth

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Policy says who may do what. The zero Policy (plaintext, --insecure)
// allows everything.
type Policy struct {
	// Enforce is true when the server runs TLS: agents must show their node's
	// certificate, queries a client certificate or a token.
	Enforce bool
	// Tokens are the bearer tokens query clients may use.
	Tokens []string
}

// ReadTokens reads a token file: one token a line, blank lines and lines
// starting with # ignored.
//
// A token file that any user of the machine may read is refused: the tokens
// in it grant what a query client may see. (A Secret volume needs
// defaultMode 0440 or tighter.)
func ReadTokens(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("token file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("token file %s is readable by every user (mode %04o): chmod o-r it (a Secret volume: defaultMode 0440)", path, fi.Mode().Perm())
	}
	if fi.Size() > 1<<20 {
		return nil, fmt.Errorf("token file %s is %d bytes, over 1 MiB", path, fi.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading token file: %w", err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("token file %s holds no token", path)
	}
	return out, nil
}

// peerCert returns the verified client certificate of a call, if any.
func peerCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return ti.State.VerifiedChains[0][0]
}

// AuthorizeAgent lets an agent report for (cluster, node) only with a
// certificate issued to that node of that cluster.
func (p Policy) AuthorizeAgent(ctx context.Context, cluster, node string) error {
	if !p.Enforce {
		return nil
	}
	c := peerCert(ctx)
	if c == nil {
		return errors.New("no client certificate")
	}
	if !slices.Contains(c.Subject.Organization, OrgAgent) {
		return fmt.Errorf("certificate %q is not an agent's", c.Subject.CommonName)
	}
	if c.Subject.CommonName != node || !slices.Contains(c.Subject.Organization, OrgClusterPrefix+cluster) {
		return fmt.Errorf("certificate of node %q may not report for %s/%s", c.Subject.CommonName, cluster, node)
	}
	return nil
}

// authorizeQuery lets a query through with a client certificate or a token.
func (p Policy) authorizeQuery(ctx context.Context) error {
	if !p.Enforce {
		return nil
	}
	if c := peerCert(ctx); c != nil {
		if slices.Contains(c.Subject.Organization, OrgClient) {
			return nil
		}
		return status.Errorf(codes.PermissionDenied, "certificate %q is not a query client's", c.Subject.CommonName)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		tok, ok := strings.CutPrefix(v, "Bearer ")
		if !ok {
			continue
		}
		for _, want := range p.Tokens {
			if subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1 {
				return nil
			}
		}
		return status.Error(codes.Unauthenticated, "unknown bearer token")
	}
	return status.Error(codes.Unauthenticated, "queries need a client certificate or a bearer token")
}

// guarded says whether a method needs query credentials: the inventory API
// does; health and reflection do not, and agent streams authorize themselves.
func guarded(method string) bool {
	return strings.HasPrefix(method, "/kubeatlas.v1.InventoryService/")
}

// UnaryInterceptor checks query credentials.
func (p Policy) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if guarded(info.FullMethod) {
			if err := p.authorizeQuery(ctx); err != nil {
				return nil, err
			}
		}
		return h(ctx, req)
	}
}

// StreamInterceptor checks query credentials on streams (Watch).
func (p Policy) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if guarded(info.FullMethod) {
			if err := p.authorizeQuery(ss.Context()); err != nil {
				return err
			}
		}
		return h(srv, ss)
	}
}
