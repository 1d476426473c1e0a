// Package command is the kubeatlas-aggregator command line.
package command

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/credentials"

	"github.com/kubeatlas/kubeatlas/aggregator/auth"
	"github.com/kubeatlas/kubeatlas/aggregator/fleet"
	"github.com/kubeatlas/kubeatlas/aggregator/ingest"
	"github.com/kubeatlas/kubeatlas/aggregator/join"
	"github.com/kubeatlas/kubeatlas/aggregator/kube"
	"github.com/kubeatlas/kubeatlas/aggregator/query"
	"github.com/kubeatlas/kubeatlas/aggregator/server"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	"github.com/kubeatlas/kubeatlas/tlsfiles"
)

// Version is set at build time with -ldflags "-X …/aggregator/command.Version=…".
var Version = "dev"

// NewRootCmd returns the kubeatlas-aggregator command.
func NewRootCmd() *cobra.Command {
	var (
		listen, metricsAddr, uiAddr  string
		certFile, keyFile, clientCA  string
		tokenFile                    string
		plaintext, profiling         bool
		kubes                        []string
		skew, expire, hb, grace      time.Duration
		restarts                     int32
		staleAfter, maxProcs, maxMsg int
		maxMans, burst               int
		maxNodeBytes, watchBytes     int64
		resumeBytes                  int64
		ingestFirst                  time.Duration
		tlsReload                    time.Duration
		rate                         float64
		forgetAfter, agentGrace      time.Duration
		certWindow                   time.Duration
		bundles                      []string
		fl                           fleetFlags
		logLevel                     string
	)
	cmd := &cobra.Command{
		Use:           "kubeatlas-aggregator",
		Short:         "Join node agents' inventories with API-server data and answer which components run where, and how",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			creds, tlsSrc, err := serverCreds(plaintext, certFile, keyFile, clientCA)
			if err != nil {
				return err
			}
			if tlsSrc != nil {
				// A rotated serving certificate or client CA is used from the
				// next connection on.
				tlsSrc.Watch(tlsReload, log)
				defer tlsSrc.Close()
			}
			policy := auth.Policy{Enforce: !plaintext}
			if tokenFile != "" {
				if plaintext {
					return errors.New("--query-token-file needs TLS: bearer tokens are not sent in plaintext")
				}
				if policy.Tokens, err = auth.ReadTokens(tokenFile); err != nil {
					return err
				}
			}
			if !plaintext && clientCA == "" {
				return errors.New("--client-ca-file is required with TLS: agents prove their node with client certificates")
			}
			var sources []kube.Source
			seen := map[string]bool{}
			for _, k := range kubes {
				src, err := kube.ParseSource(k)
				if err != nil {
					return err
				}
				if seen[src.Name] {
					return fmt.Errorf("--kube names cluster %q twice", src.Name)
				}
				seen[src.Name] = true
				sources = append(sources, src)
			}
			pub, view, err := fl.build(log)
			if err != nil {
				return err
			}
			if view != nil && os.Getenv("GOGC") == "" {
				// A fleet view's heap is nearly all the fleet's rows, kept
				// for its life: collecting at 25% growth instead of 100%
				// keeps its peak near what it holds, for little CPU (most
				// of what it holds is encoded bytes, which the collector
				// does not scan). GOGC set in the environment wins.
				debug.SetGCPercent(FleetViewGCPercent)
			}
			var uiTLS *tls.Config
			if tlsSrc != nil && uiAddr != "" {
				uiTLS = tlsSrc.HTTPServerConfig()
			}
			agg, err := server.New(server.Config{
				Bundles: bundles, FleetPublish: pub, FleetView: view, UIAddr: uiAddr, UITLS: uiTLS,
				GRPCAddr: listen, MetricsAddr: metricsAddr, Profiling: profiling, Creds: creds, Kube: sources, Logger: log, ShutdownGrace: grace, Auth: policy,
				Settings: join.Settings{ClockSkew: skew, RestartCount: restarts, CertificateExpiring: certWindow},
				Ingest: ingest.Config{HeartbeatInterval: hb, StaleAfter: staleAfter, ExpireAfter: expire, ForgetAfter: forgetAfter,
					MaxProcesses: maxProcs, MaxManifests: maxMans, MaxMessageBytes: maxMsg, MaxNodeBytes: maxNodeBytes,
					RatePerSecond: rate, Burst: burst},
				AgentGrace: agentGrace, WatchHistoryBytes: watchBytes, WatchResumeBytes: resumeBytesOrNone(resumeBytes),
				WatchIngestFirst: ingestFirstOrNever(ingestFirst),
			})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return agg.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", ":7443", "gRPC listen address (agents and queries)")
	f.StringVar(&metricsAddr, "metrics-addr", "127.0.0.1:9102", "where /metrics, /healthz and /readyz are served (loopback by default: pprof and metrics are not for everyone); empty to disable")
	f.StringVar(&uiAddr, "ui-addr", "", "where the web view is served, at /ui/ (with TLS and the same authentication as queries when TLS is on); empty to disable")
	f.BoolVar(&profiling, "profiling", false, "also serve Go's /debug/pprof/ on the metrics address (CPU, heap and goroutine profiles)")
	f.StringVar(&certFile, "tls-cert-file", "", "server certificate")
	f.StringVar(&keyFile, "tls-key-file", "", "server key")
	f.StringVar(&clientCA, "client-ca-file", "", "CA that signs agent and client certificates (mutual TLS)")
	f.StringVar(&tokenFile, "query-token-file", "", "bearer tokens query clients may use, one a line")
	f.BoolVar(&plaintext, "insecure", false, "serve gRPC without TLS (only for development and tests)")
	f.DurationVar(&tlsReload, "tls-reload-interval", tlsfiles.DefaultReload, "how often the TLS files are read again, so that a rotated certificate or CA needs no restart (0: never)")
	f.StringArrayVar(&kubes, "kube", nil, "a cluster's API server: NAME=KUBECONFIG[:CONTEXT] or NAME=in-cluster (repeatable)")
	f.DurationVar(&skew, "clock-skew-threshold", 10*time.Second, "report nodes whose clock differs by more than this")
	f.DurationVar(&certWindow, "certificate-expiring-within", 30*24*time.Hour, "report certificates (CERTIFICATE_EXPIRING) that expire within this long")
	f.Int32Var(&restarts, "restart-threshold", 5, "report containers restarted at least this many times")
	f.DurationVar(&hb, "heartbeat-interval", 10*time.Second, "heartbeat interval assumed for agents that do not say")
	f.IntVar(&staleAfter, "stale-after", 3, "missed heartbeat intervals before a node is marked stale")
	f.DurationVar(&expire, "expire-after", 10*time.Minute, "silence before a stale node is marked expired")
	f.IntVar(&maxProcs, "max-processes", 100_000, "most processes kept for one node")
	f.IntVar(&maxMsg, "max-message-bytes", 4<<20, "largest message accepted from an agent")
	f.IntVar(&maxMans, "max-manifests", 1000, "most static pod manifests kept for one node")
	f.Int64Var(&maxNodeBytes, "max-node-bytes", ingest.DefaultMaxNodeBytes, "byte budget of one node: its stored processes and manifests, and separately a snapshot in progress (wire bytes)")
	f.Float64Var(&rate, "agent-rate", 50, "messages a second one node may send, across its streams and reconnects")
	f.IntVar(&burst, "agent-burst", 500, "messages one node may send at once above --agent-rate")
	f.DurationVar(&forgetAfter, "forget-after", 24*time.Hour, "silence after which a node with no Node in the API is forgotten (a node the API deletes is forgotten once its agent expired)")
	f.DurationVar(&agentGrace, "agent-grace", time.Minute, "after start, how long agents have to reconnect before nodes without one are findings")
	f.Int64Var(&watchBytes, "watch-history-bytes", state.DefaultHistoryBytes, "bytes of recent changes kept for watchers that fall behind")
	f.Int64Var(&resumeBytes, "watch-resume-bytes", state.DefaultRetainBytes, "bytes of the newest changes kept, read or not, so that a watcher whose link broke resumes where it stopped (0: none)")
	f.DurationVar(&ingestFirst, "watch-ingest-first", query.DefaultIngestFirst, "in a fleet view: while bucket records wait to be applied, watchers hold back their sends for up to this long, so that a burst is applied before it is fanned out (0: never)")
	f.DurationVar(&grace, "shutdown-grace", 10*time.Second, "how long shutdown waits for streams to end")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringArrayVar(&bundles, "bundle", nil, "an offline bundle directory to serve as a cluster of its own (repeatable)")
	fl.register(f)
	return cmd
}

// fleetFlags configure the fleet tier: publishing this aggregator's
// clusters into a NATS JetStream bucket, or serving the fleet view of it.
type fleetFlags struct {
	publish, from, name, bucket        string
	seed, ca, cert, key                string
	heartbeat, staleAfter, unreachable time.Duration
	commitWait                         time.Duration
	createBucket                       bool
	replicas                           int
}

// FleetViewGCPercent is a fleet view's GOGC unless the environment sets one.
const FleetViewGCPercent = 25

func (f *fleetFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.publish, "fleet-publish", "", "publish this aggregator's clusters to the fleet bucket on these NATS servers: nats://a:4222[,nats://b:4222]")
	fs.StringVar(&f.from, "fleet-from", "", "be a fleet view: serve what the fleet bucket on these NATS servers holds (no agents, --kube or --bundle); it collects garbage at GOGC=25 unless GOGC is set")
	fs.StringVar(&f.name, "fleet-name", "", "this aggregator's name in the fleet view (default: the host name)")
	fs.StringVar(&f.bucket, "fleet-bucket", fleet.DefaultBucket, "the fleet's JetStream key-value bucket")
	fs.StringVar(&f.seed, "fleet-nkey-seed", "", "an nkey seed file that authenticates to NATS")
	fs.StringVar(&f.ca, "fleet-ca-file", "", "CA that signs the NATS servers' certificates (TLS to NATS)")
	fs.StringVar(&f.cert, "fleet-cert-file", "", "client certificate for NATS servers that ask for one")
	fs.StringVar(&f.key, "fleet-key-file", "", "the client certificate's key")
	fs.DurationVar(&f.heartbeat, "fleet-heartbeat", 5*time.Second, "how often a publisher puts its clusters' keys again, to show it is alive")
	fs.DurationVar(&f.staleAfter, "fleet-stale-after", 15*time.Second, "in a fleet view: a cluster whose record is older than this is STALE")
	fs.DurationVar(&f.unreachable, "fleet-unreachable-after", 5*time.Minute, "in a fleet view: a cluster whose record is older than this is UNREACHABLE")
	fs.DurationVar(&f.commitWait, "fleet-commit-wait", fleet.DefaultCommitWait, "in a fleet view: how long a bucket record that arrives alone waits for others to share its transaction, trading that much freshness for less copying and collecting (0: none)")
	fs.BoolVar(&f.createBucket, "fleet-create-bucket", false, "create the fleet bucket if it is missing (development; in production make it once with the NATS tools)")
	fs.IntVar(&f.replicas, "fleet-replicas", 1, "copies of the bucket when --fleet-create-bucket creates it (3 on a NATS cluster)")
}

func (f *fleetFlags) build(log *slog.Logger) (*fleet.Publisher, *fleet.View, error) {
	if f.publish != "" && f.from != "" {
		return nil, nil, errors.New("--fleet-publish and --fleet-from exclude each other: an aggregator publishes its clusters, a fleet view serves everyone's")
	}
	if f.heartbeat >= f.staleAfter {
		return nil, nil, fmt.Errorf("--fleet-heartbeat (%s) must be shorter than --fleet-stale-after (%s)", f.heartbeat, f.staleAfter)
	}
	if f.from != "" && f.heartbeat+f.commitWait >= f.staleAfter {
		// A heartbeat that waits out the commit wait must still come in
		// before its cluster turns stale.
		return nil, nil, fmt.Errorf("--fleet-commit-wait (%s) must be shorter than --fleet-stale-after (%s) less --fleet-heartbeat (%s)",
			f.commitWait, f.staleAfter, f.heartbeat)
	}
	name := f.name
	if name == "" {
		name, _ = os.Hostname()
	}
	conn := func(url string) fleet.Conn {
		return fleet.Conn{URL: url, Name: name, Bucket: f.bucket, NkeySeedFile: f.seed, CAFile: f.ca, CertFile: f.cert, KeyFile: f.key,
			Logger: log.With("part", "fleet")}
	}
	switch {
	case f.publish != "":
		return &fleet.Publisher{Conn: conn(f.publish), Heartbeat: f.heartbeat, CreateBucket: f.createBucket, Replicas: f.replicas}, nil, nil
	case f.from != "":
		wait := f.commitWait
		if wait <= 0 {
			wait = -1 // the view's none
		}
		return nil, &fleet.View{Conn: conn(f.from), StaleAfter: f.staleAfter, UnreachableAfter: f.unreachable, CommitWait: wait}, nil
	}
	return nil, nil, nil
}

// serverCreds returns the aggregator's transport credentials (nil in
// plaintext) and the TLS files it watches; the caller closes them.
func serverCreds(plaintext bool, certFile, keyFile, clientCA string) (credentials.TransportCredentials, *tlsfiles.Source, error) {
	if plaintext {
		if certFile != "" || keyFile != "" || clientCA != "" {
			return nil, nil, errors.New("--insecure cannot be combined with TLS flags")
		}
		return nil, nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, nil, errors.New("TLS needs --tls-cert-file and --tls-key-file (and --client-ca-file for mutual TLS); use --insecure for plaintext")
	}
	src, err := tlsfiles.Load(tlsfiles.Files{CA: clientCA, Cert: certFile, Key: keyFile})
	if err != nil {
		return nil, nil, err
	}
	return src.ServerCredentials(), src, nil
}

// ingestFirstOrNever turns the flag's 0 (never hold back) into the
// server's negative value.
func ingestFirstOrNever(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// resumeBytesOrNone turns the flag's 0 (keep none) into the server's
// negative value, since the server's 0 means the default.
func resumeBytesOrNone(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}
