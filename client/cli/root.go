// Package cli is the kubeatlas command line.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/bundle"
	"github.com/kubeatlas/kubeatlas/aggregator/query"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	"github.com/kubeatlas/kubeatlas/client/printer"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/tlsfiles"
)

// Version is set at build time with -ldflags "-X …/client/cli.Version=…".
var Version = "dev"

// DefaultServer is the aggregator address used when neither --server nor
// KUBEATLAS_SERVER is set.
const DefaultServer = "localhost:7443"

type options struct {
	server, cluster, output string
	bundles                 []string
	caFile, certFile        string
	keyFile, serverName     string
	plaintext               bool
	token                   string
	timeout                 time.Duration
	// embedded, when set, is a bundle file system loaded instead of --bundle (the demo).
	embedded fs.FS
	// clock, when set, replaces time.Now (tests).
	clock func() time.Time
}

func (o *options) now() time.Time {
	if o.clock != nil {
		return o.clock()
	}
	return time.Now()
}

func (o *options) format() (printer.Format, error) { return printer.ParseFormat(o.output) }

// conn is a connection to an InventoryService, remote or in-process.
type conn struct {
	client v1.InventoryServiceClient
	// server is the in-process gRPC server of bundles (nil for a remote
	// aggregator): the web view bridges it.
	server *grpc.Server
	close  func()
	// target names what answers, for error messages.
	target string
}

// connect opens the backend: an in-process engine loaded from bundles, or
// the aggregator at --server.
func (o *options) connect(ctx context.Context) (*conn, error) {
	if len(o.bundles) > 0 || o.embedded != nil {
		return o.offline(ctx)
	}
	server := o.server
	if server == "" {
		server = os.Getenv("KUBEATLAS_SERVER")
	}
	if server == "" {
		server = DefaultServer
	}
	creds, err := o.creds()
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	tok := o.token
	if tok == "" {
		tok = os.Getenv("KUBEATLAS_TOKEN")
	}
	if tok != "" {
		if o.plaintext {
			return nil, errors.New("a bearer token is never sent in plaintext: drop --insecure or the token")
		}
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(tok)))
	}
	cc, err := grpc.NewClient(server, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", server, err)
	}
	return &conn{client: v1.NewInventoryServiceClient(cc), close: func() { cc.Close() }, target: "the aggregator at " + server}, nil
}

func (o *options) creds() (credentials.TransportCredentials, error) {
	if o.plaintext {
		if o.caFile != "" || o.certFile != "" || o.keyFile != "" {
			return nil, errors.New("--insecure cannot be combined with --ca-file, --cert-file or --key-file")
		}
		return insecure.NewCredentials(), nil
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, errors.New("--cert-file and --key-file go together")
	}
	// One command, one connection: the files are read once.
	src, err := tlsfiles.Load(tlsfiles.Files{CA: o.caFile, Cert: o.certFile, Key: o.keyFile})
	if err != nil {
		return nil, err
	}
	return src.ClientCredentials(o.serverName), nil
}

// bearer sends a token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// offline loads bundles into an in-process engine and serves it over an
// in-memory gRPC connection: the same query code the aggregator runs.
func (o *options) offline(ctx context.Context) (*conn, error) {
	store, err := state.NewStore()
	if err != nil {
		return nil, err
	}
	e := apply.New(store, apply.Config{})
	seen := map[string]string{}
	load := func(what string, f func() (*bundle.Summary, error)) error {
		sum, err := f()
		if err != nil {
			return fmt.Errorf("loading bundle %s: %w", what, err)
		}
		if prev, dup := seen[sum.Cluster]; dup {
			return fmt.Errorf("bundles %s and %s are both cluster %q", prev, what, sum.Cluster)
		}
		seen[sum.Cluster] = what
		return nil
	}
	loadAll := func() error {
		if o.embedded != nil {
			if err := load("(built in)", func() (*bundle.Summary, error) { return bundle.LoadFS(e, o.embedded, "seed") }); err != nil {
				return err
			}
		}
		for _, dir := range o.bundles {
			if err := load(dir, func() (*bundle.Summary, error) { return bundle.Load(e, dir) }); err != nil {
				return err
			}
		}
		return nil
	}
	// --timeout covers loading too: a bundle on a stuck file system must not
	// hang the CLI.
	done := make(chan error, 1)
	go func() { done <- loadAll() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("loading bundles: %w (raise --timeout for large bundles)", context.Cause(ctx))
	}
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(grpc.ForceServerCodecV2(query.Codec{}))
	v1.RegisterInventoryServiceServer(gs, query.NewServer(store))
	go func() { _ = gs.Serve(lis) }()
	cc, err := grpc.NewClient("passthrough:///bundle",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		gs.Stop()
		return nil, err
	}
	return &conn{client: v1.NewInventoryServiceClient(cc), server: gs, target: "the bundle", close: func() {
		cc.Close()
		gs.Stop()
	}}, nil
}

// friendly turns gRPC errors into plain words.
func (c *conn) friendly(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("cannot reach %s: %s", c.target, st.Message())
	case codes.NotFound:
		return fmt.Errorf("not found: %s", st.Message())
	case codes.InvalidArgument:
		return fmt.Errorf("invalid request: %s", st.Message())
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("refused by %s: %s", c.target, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s did not answer in time", c.target)
	}
	return fmt.Errorf("%s: %s", strings.ToLower(st.Code().String()), st.Message())
}

// NewRootCmd returns the kubeatlas command.
func NewRootCmd() *cobra.Command { return newRootCmd(&options{}) }

func newRootCmd(o *options) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubeatlas",
		Short: "Which Kubernetes components run where, and how, across a fleet of clusters",
		Long: `kubeatlas answers which Kubernetes components run where, and how: as host
processes, static pods, DaemonSets or Deployments, on every node of every cluster.

It asks a kubeatlas aggregator (--server), or reads offline bundles (--bundle DIR)
through the same engine. Try it without anything else: kubeatlas demo`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&o.server, "server", "", "aggregator address host:port (default $KUBEATLAS_SERVER, else "+DefaultServer+")")
	pf.StringVar(&o.cluster, "cluster", "", "only this cluster")
	pf.StringArrayVar(&o.bundles, "bundle", nil, "answer from an offline bundle directory instead of a server (repeatable, one per cluster)")
	pf.StringVarP(&o.output, "output", "o", "table", "output format: table, wide, json or yaml")
	pf.StringVar(&o.caFile, "ca-file", "", "CA bundle that signed the aggregator's certificate")
	pf.StringVar(&o.certFile, "cert-file", "", "client certificate")
	pf.StringVar(&o.keyFile, "key-file", "", "client key")
	pf.StringVar(&o.serverName, "server-name", "", "name to verify in the aggregator's certificate")
	pf.BoolVar(&o.plaintext, "insecure", false, "connect without TLS")
	pf.StringVar(&o.token, "token", "", "bearer token for the aggregator (default $KUBEATLAS_TOKEN)")
	pf.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for an answer")
	root.AddCommand(newGetCmd(o), newWhereCmd(o), newDescribeCmd(o), newWatchCmd(o), newDemoCmd(o), newUICmd(o), newCertsCmd(), newFleetCmd())
	return root
}

// run opens the backend and calls f with a deadline.
func (o *options) run(cmd *cobra.Command, f func(ctx context.Context, c *conn) error) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	c, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	return c.friendly(f(ctx, c))
}
