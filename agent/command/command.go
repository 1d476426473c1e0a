// Package command is the kubeatlas-agent command line.
package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/kubeatlas/kubeatlas/agent/collect"
	"github.com/kubeatlas/kubeatlas/agent/stream"
	"github.com/kubeatlas/kubeatlas/internal/stablejson"
	"github.com/kubeatlas/kubeatlas/tlsfiles"
)

// Version is set at build time with -ldflags "-X …/agent/command.Version=…".
var Version = "dev"

type collectFlags struct {
	hostRoot string
	cluster  string
	nodeName string
}

func (f *collectFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.hostRoot, "host-root", "/", "where the host's filesystem is mounted (/proc, /sys, /etc and kubelet files are read beneath it; HOST_PROC, HOST_SYS and HOST_ETC override those three)")
	cmd.Flags().StringVar(&f.cluster, "cluster", "", "the cluster this node belongs to (required)")
	cmd.Flags().StringVar(&f.nodeName, "node-name", "", "the node's Kubernetes name (default: the kubelet's --hostname-override, else the hostname)")
}

func (f *collectFlags) collector(log *slog.Logger) (*collect.Collector, error) {
	if f.cluster == "" {
		return nil, errors.New("--cluster is required: name the cluster this node belongs to")
	}
	return collect.New(collect.Config{
		HostRoot:     f.hostRoot,
		Cluster:      f.cluster,
		NodeName:     f.nodeName,
		AgentVersion: Version,
		Logger:       log,
	})
}

// NewRootCmd returns the kubeatlas-agent command.
func NewRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "kubeatlas-agent",
		Short:         "Report this node's Kubernetes processes and static pod manifests to kubeatlas",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.AddCommand(newSnapshotCmd(), newRunCmd())
	return root
}

// snapshotHeap bounds the heap of a snapshot, which runs without a garbage
// collector below it.
const snapshotHeap = 512 << 20

func newSnapshotCmd() *cobra.Command {
	var cf collectFlags
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Scan the node once and print its inventory as protojson (the offline bundle format)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// One scan, then exit: collecting garbage on the way costs more
			// CPU than it saves, up to a bound on the heap.
			debug.SetGCPercent(-1)
			debug.SetMemoryLimit(snapshotHeap)
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			c, err := cf.collector(log)
			if err != nil {
				return err
			}
			inv, err := c.Scan(cmd.Context())
			if err != nil {
				return err
			}
			out, err := stablejson.Marshal(inv)
			if err != nil {
				return fmt.Errorf("encoding inventory: %w", err)
			}
			out = append(out, '\n')
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cf.register(cmd)
	return cmd
}

func newRunCmd() *cobra.Command {
	var (
		cf                    collectFlags
		server, metricsAddr   string
		caFile, certFile      string
		keyFile, serverName   string
		plaintext             bool
		scanEvery, heartbeats time.Duration
		logLevel              string
		tlsReload             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Stream the node's inventory to the aggregator until stopped",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			if server == "" {
				return errors.New("--server is required: the aggregator's address, e.g. kubeatlas-aggregator:7443")
			}
			creds, tlsSrc, err := clientCreds(plaintext, caFile, certFile, keyFile, serverName)
			if err != nil {
				return err
			}
			if tlsSrc != nil {
				// A rotated certificate is used from the next connection on.
				tlsSrc.Watch(tlsReload, log)
				defer tlsSrc.Close()
			}
			c, err := cf.collector(log)
			if err != nil {
				return err
			}
			conn, err := grpc.NewClient(server,
				grpc.WithTransportCredentials(creds),
				grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 60 * time.Second, Timeout: 20 * time.Second}),
			)
			if err != nil {
				return fmt.Errorf("connecting to %s: %w", server, err)
			}
			defer conn.Close()
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			client, err := stream.NewClient(conn, c, stream.Config{
				ScanInterval:      scanEvery,
				HeartbeatInterval: heartbeats,
				Logger:            log,
				Metrics:           stream.NewMetrics(reg),
			})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if metricsAddr != "" {
				srv, err := serveMetrics(metricsAddr, reg, log)
				if err != nil {
					return err
				}
				defer func() {
					sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					_ = srv.Shutdown(sctx)
				}()
			}
			log.Info("kubeatlas-agent starting", "server", server, "version", Version, "host_root", cf.hostRoot, "cluster", cf.cluster)
			return client.Run(ctx)
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "the aggregator's address, host:port (required)")
	f.StringVar(&caFile, "ca-file", "", "CA bundle that signed the aggregator's certificate")
	f.StringVar(&certFile, "cert-file", "", "this agent's client certificate")
	f.StringVar(&keyFile, "key-file", "", "this agent's client key")
	f.StringVar(&serverName, "server-name", "", "name to verify in the aggregator's certificate (default: the host of --server)")
	f.BoolVar(&plaintext, "insecure", false, "connect without TLS (only for development and tests)")
	f.DurationVar(&tlsReload, "tls-reload-interval", tlsfiles.DefaultReload, "how often the TLS files are read again, so that a rotated certificate needs no restart (0: never)")
	f.DurationVar(&scanEvery, "scan-interval", 10*time.Second, "how often the node is scanned")
	f.DurationVar(&heartbeats, "heartbeat-interval", 0, "how often a heartbeat is sent when nothing changed (default: the scan interval)")
	f.StringVar(&metricsAddr, "metrics-addr", "127.0.0.1:9101", "where /metrics and /healthz are served; empty to disable")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// clientCreds returns the agent's transport credentials, and the TLS files
// it watches (nil in plaintext); the caller closes them.
func clientCreds(plaintext bool, caFile, certFile, keyFile, serverName string) (credentials.TransportCredentials, *tlsfiles.Source, error) {
	if plaintext {
		if caFile != "" || certFile != "" || keyFile != "" {
			return nil, nil, errors.New("--insecure cannot be combined with --ca-file, --cert-file or --key-file")
		}
		return insecure.NewCredentials(), nil, nil
	}
	if caFile == "" {
		return nil, nil, errors.New("TLS needs --ca-file (and --cert-file/--key-file for mutual TLS); use --insecure for plaintext")
	}
	if (certFile == "") != (keyFile == "") {
		return nil, nil, errors.New("--cert-file and --key-file go together")
	}
	src, err := tlsfiles.Load(tlsfiles.Files{CA: caFile, Cert: certFile, Key: keyFile})
	if err != nil {
		return nil, nil, err
	}
	return src.ClientCredentials(serverName), src, nil
}

func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "error", err)
		}
	}()
	return srv, nil
}
