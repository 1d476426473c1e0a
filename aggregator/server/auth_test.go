package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/kubeatlas/kubeatlas/aggregator/auth"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

type pki struct {
	ca, other *auth.CA
	server    *auth.Issued
}

func tlsCert(i *auth.Issued) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{i.Cert.Raw}, PrivateKey: i.Key, Leaf: i.Cert}
}

func startTLS(t *testing.T) (*Aggregator, *pki) {
	t.Helper()
	ca, err := auth.NewCA("kubeatlas-test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := auth.NewCA("someone-else", time.Hour)
	srv, err := ca.Issue(ClientSubjectForServer(), true, []string{"127.0.0.1", "localhost"}, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{tlsCert(srv)}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	agg, err := New(Config{Listener: lis, Creds: creds, Auth: auth.Policy{Enforce: true, Tokens: []string{"s3cret-token"}}, ShutdownGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agg.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return agg, &pki{ca: ca, other: other, server: srv}
}

// ClientSubjectForServer names the aggregator's serving certificate.
func ClientSubjectForServer() pkixName { return pkixName{CommonName: "kubeatlas-aggregator"} }

type token string

func (t token) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (token) RequireTransportSecurity() bool { return true }

func dial(t *testing.T, agg *Aggregator, p *pki, cert *auth.Issued, tok string) *grpc.ClientConn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{tlsCert(cert)}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	if tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(token(tok)))
	}
	conn, err := grpc.NewClient(agg.Addr(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func issue(t *testing.T, ca *auth.CA, subject pkixName, notAfter time.Time) *auth.Issued {
	t.Helper()
	i, err := ca.Issue(subject, false, nil, time.Now().Add(-2*time.Hour), notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// connectAs opens an agent stream for (cluster, node) and returns how it ended.
func connectAs(t *testing.T, conn *grpc.ClientConn, cluster, node string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := v1.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{Identity: &v1.NodeIdentity{Cluster: cluster, NodeName: node}}}}); err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}

func TestAgentsMayReportOnlyForTheirNode(t *testing.T) {
	agg, p := startTLS(t)
	later := time.Now().Add(time.Hour)
	nodeA := dial(t, agg, p, issue(t, p.ca, auth.AgentSubject("prod", "node-a"), later), "")
	if err := connectAs(t, nodeA, "prod", "node-a"); err != nil {
		t.Fatalf("own node refused: %v", err)
	}
	for name, tc := range map[string]struct {
		conn          *grpc.ClientConn
		cluster, node string
		code          codes.Code
	}{
		"another node":       {nodeA, "prod", "node-b", codes.PermissionDenied},
		"another cluster":    {nodeA, "staging", "node-a", codes.PermissionDenied},
		"no certificate":     {dial(t, agg, p, nil, ""), "prod", "node-a", codes.PermissionDenied},
		"client certificate": {dial(t, agg, p, issue(t, p.ca, auth.ClientSubject("alice"), later), ""), "prod", "node-a", codes.PermissionDenied},
		"expired":            {dial(t, agg, p, issue(t, p.ca, auth.AgentSubject("prod", "node-a"), time.Now().Add(-time.Hour)), ""), "prod", "node-a", codes.Unavailable},
		// A Go client offers no certificate the server's CAs did not sign.
		"unknown CA": {dial(t, agg, p, issue(t, p.other, auth.AgentSubject("prod", "node-a"), later), ""), "prod", "node-a", codes.PermissionDenied},
	} {
		if err := connectAs(t, tc.conn, tc.cluster, tc.node); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", name, err, tc.code)
		}
	}
}

func TestQueriesNeedCredentials(t *testing.T) {
	agg, p := startTLS(t)
	later := time.Now().Add(time.Hour)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		conn *grpc.ClientConn
		code codes.Code
	}{
		"nothing":            {dial(t, agg, p, nil, ""), codes.Unauthenticated},
		"wrong token":        {dial(t, agg, p, nil, "guess"), codes.Unauthenticated},
		"token":              {dial(t, agg, p, nil, "s3cret-token"), codes.OK},
		"client certificate": {dial(t, agg, p, issue(t, p.ca, auth.ClientSubject("alice"), later), ""), codes.OK},
		"agent certificate":  {dial(t, agg, p, issue(t, p.ca, auth.AgentSubject("prod", "n"), later), ""), codes.PermissionDenied},
		"expired client":     {dial(t, agg, p, issue(t, p.ca, auth.ClientSubject("bob"), time.Now().Add(-time.Minute)), ""), codes.Unavailable},
	} {
		_, err := v1.NewInventoryServiceClient(tc.conn).ListClusters(ctx, &v1.ListClustersRequest{})
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", name, err, tc.code)
		}
	}
}
