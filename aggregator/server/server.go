// Package server runs the aggregator: the gRPC server (AgentService,
// InventoryService, health, reflection), the Kubernetes watchers, liveness
// checks and the metrics endpoint, with graceful shutdown.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/auth"
	"github.com/kubeatlas/kubeatlas/aggregator/bundle"
	"github.com/kubeatlas/kubeatlas/aggregator/fleet"
	"github.com/kubeatlas/kubeatlas/aggregator/ingest"
	"github.com/kubeatlas/kubeatlas/aggregator/join"
	"github.com/kubeatlas/kubeatlas/aggregator/kube"
	"github.com/kubeatlas/kubeatlas/aggregator/query"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	"github.com/kubeatlas/kubeatlas/client/ui"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1/descriptors"
)

// Config configures the aggregator.
type Config struct {
	// Listener accepts gRPC connections; if nil, GRPCAddr is listened on.
	Listener net.Listener
	GRPCAddr string
	// MetricsAddr serves /metrics, /healthz and /readyz; empty disables it.
	MetricsAddr string
	// Profiling also serves Go's /debug/pprof/ endpoints on MetricsAddr.
	Profiling bool
	// UIAddr serves the web view at /ui/ and the InventoryService to it;
	// empty disables it.
	UIAddr string
	// UITLS, when set, serves the web view over TLS. Its client
	// certificates reach the same authorization as gRPC clients'.
	UITLS *tls.Config
	// Creds secures gRPC; nil means plaintext (only with an explicit --insecure).
	Creds credentials.TransportCredentials
	// Kube lists the clusters whose API servers are watched.
	Kube []kube.Source
	// Auth says who may report and query; the zero value allows all
	// (plaintext development servers only).
	Auth auth.Policy
	// Ingest and Settings configure agent streams and findings.
	Ingest   ingest.Config
	Settings join.Settings
	// ShutdownGrace bounds graceful shutdown.
	ShutdownGrace time.Duration
	// AgentGrace is how long after start agents have to reconnect before
	// nodes without one are findings (0: at once).
	AgentGrace time.Duration
	// WatchHistoryBytes bounds the events kept for watchers that fall
	// behind (state.DefaultHistoryBytes).
	WatchHistoryBytes int64
	// WatchResumeBytes is how much of the newest history is kept for
	// watchers that resume (WatchRequest.resume_index): 0 means
	// state.DefaultRetainBytes, a negative value keeps none.
	WatchResumeBytes int64
	// WatchIngestFirst is, in a fleet view, how long watchers hold back
	// their sends while records wait to be applied (query.Server.IngestFirst):
	// 0 means query.DefaultIngestFirst, a negative value never holds back.
	WatchIngestFirst time.Duration
	// Bundles are offline bundles loaded at start, as clusters of their own.
	Bundles []string
	// FleetPublish, when its URL is set, publishes this aggregator's
	// clusters into the fleet bucket.
	FleetPublish *fleet.Publisher
	// FleetView, when set, makes this a fleet view: it follows the fleet
	// bucket and serves it, with no agents, API servers or bundles of its own.
	FleetView *fleet.View
	Logger    *slog.Logger
}

// Aggregator is a running aggregator.
type Aggregator struct {
	cfg     Config
	Store   *state.Store
	Applier *apply.Applier
	Ingest  *ingest.Server
	grpc    *grpc.Server
	lis     net.Listener
	metrics *http.Server
	mlis    net.Listener
	ui      *ui.Server
	health  *health.Server
	query   *query.Server
	synced  atomic.Int32 // API sources whose informers have synced
}

// New builds an aggregator and opens its listeners.
func New(cfg Config) (*Aggregator, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	joinHist := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "kubeatlas_join_duration_seconds", Help: "Time to re-join one node.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
	})
	reg.MustRegister(joinHist)
	store, err := state.NewStore()
	if err != nil {
		return nil, err
	}
	if cfg.WatchHistoryBytes > 0 {
		store.Broker().SetHistoryBytes(cfg.WatchHistoryBytes)
	}
	if cfg.WatchResumeBytes != 0 {
		store.Broker().SetRetainBytes(max(cfg.WatchResumeBytes, 0))
	}
	if err := cfg.Ingest.Validate(); err != nil {
		return nil, err
	}
	if cfg.FleetView != nil && (len(cfg.Kube) > 0 || len(cfg.Bundles) > 0 || cfg.FleetPublish != nil) {
		return nil, errors.New("a fleet view (--fleet-from) serves what the fleet bucket holds: it takes no --kube, --bundle or --fleet-publish")
	}
	var ing *ingest.Server
	eng := apply.New(store, apply.Config{Settings: cfg.Settings, Logger: cfg.Logger, AwaitAgents: cfg.AgentGrace > 0,
		ObserveJoin: func(d time.Duration) { joinHist.Observe(d.Seconds()) },
		Forgotten:   func(cluster, node, reason string) { ing.Forgotten(cluster, node, reason) }})
	reg.MustRegister(newStoreCollector(store))
	icfg := cfg.Ingest
	icfg.Logger = cfg.Logger
	icfg.Metrics = ingest.NewMetrics(reg)
	if cfg.Auth.Enforce {
		icfg.Authorize = cfg.Auth.AuthorizeAgent
	}
	ing = ingest.NewServer(eng, icfg)
	maxMsg := icfg.MaxMessageBytes
	if maxMsg == 0 {
		maxMsg = 4 << 20
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMsg + 1024),
		grpc.ForceServerCodecV2(query.Codec{}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 20 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.UnaryInterceptor(cfg.Auth.UnaryInterceptor()),
		grpc.StreamInterceptor(cfg.Auth.StreamInterceptor()),
	}
	if cfg.Creds != nil {
		opts = append(opts, grpc.Creds(cfg.Creds))
	}
	gs := grpc.NewServer(opts...)
	if cfg.FleetView == nil {
		// A fleet view takes no agents: its rows come from the bucket.
		v1.RegisterAgentServiceServer(gs, ing)
	} else {
		cfg.FleetView.Applier = eng
	}
	if p := cfg.FleetPublish; p != nil {
		p.Store = store
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kubeatlas_fleet_puts_total",
			Help: "Keys this aggregator put into the fleet bucket."}, func() float64 { return float64(p.Puts.Load()) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kubeatlas_fleet_synced",
			Help: "1 while everything this aggregator holds is published to the fleet bucket."}, func() float64 { return b2f(p.Synced.Load()) }))
	}
	if v := cfg.FleetView; v != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kubeatlas_fleet_records_applied_total",
			Help: "Fleet bucket records this fleet view applied."}, func() float64 { return float64(v.Applied.Load()) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kubeatlas_fleet_records_refused_total",
			Help: "Fleet bucket records this fleet view refused (undecodable, or naming another key's cluster or node)."}, func() float64 { return float64(v.Refused.Load()) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kubeatlas_fleet_transactions_total",
			Help: "Transactions in which this fleet view applied bucket records."}, func() float64 { return float64(v.Commits.Load()) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kubeatlas_fleet_synced",
			Help: "1 while this fleet view holds the bucket's contents and follows its changes."}, func() float64 { return b2f(v.Synced.Load()) }))
		v.Backlog = &state.Backlog{}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kubeatlas_fleet_backlog",
			Help: "1 while records wait to be applied in this fleet view's bucket watch (its watchers hold back meanwhile)."}, func() float64 { return b2f(v.Backlog.Busy()) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kubeatlas_fleet_backlogs_total",
			Help: "Times records began to wait in this fleet view's bucket watch."}, func() float64 { return float64(v.Backlog.Periods()) }))
	}
	for _, dir := range cfg.Bundles {
		sum, err := bundle.Load(eng, dir)
		if err != nil {
			return nil, fmt.Errorf("loading bundle %s: %w", dir, err)
		}
		cfg.Logger.Info("bundle loaded", "dir", dir, "cluster", sum.Cluster, "nodes", sum.Nodes, "snapshots", sum.Snapshots)
	}
	qs := query.NewServer(store)
	qs.FleetView = cfg.FleetView != nil
	if cfg.FleetView != nil {
		// Watchers leave the CPU to the bucket watch while it has a backlog.
		qs.Backlog = cfg.FleetView.Backlog
		if cfg.WatchIngestFirst != 0 {
			qs.IngestFirst = max(cfg.WatchIngestFirst, 0)
		}
	}
	v1.RegisterInventoryServiceServer(gs, qs)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	files, err := descriptors.WithComments()
	if err != nil {
		return nil, err
	}
	ropts := reflection.ServerOptions{Services: gs, DescriptorResolver: descriptors.Resolver{API: files}}
	reflectionv1.RegisterServerReflectionServer(gs, reflection.NewServerV1(ropts))
	reflectionv1alpha.RegisterServerReflectionServer(gs, reflection.NewServer(ropts))
	a := &Aggregator{cfg: cfg, Store: store, Applier: eng, Ingest: ing, grpc: gs, health: hs, query: qs}
	a.lis = cfg.Listener
	if a.lis == nil {
		if a.lis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return nil, fmt.Errorf("listening on %s: %w", cfg.GRPCAddr, err)
		}
	}
	if cfg.MetricsAddr != "" {
		if a.mlis, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			a.lis.Close()
			return nil, fmt.Errorf("listening for metrics on %s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		mux.HandleFunc("/readyz", a.readyz)
		if cfg.Profiling {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		a.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	}
	if cfg.UIAddr != "" {
		if cfg.Creds != nil && cfg.UITLS == nil {
			a.close()
			return nil, errors.New("the web view of a TLS aggregator needs TLS too (UITLS)")
		}
		h, err := ui.NewHandler(gs)
		if err != nil {
			a.close()
			return nil, err
		}
		if a.ui, err = ui.Listen(cfg.UIAddr, h, cfg.UITLS, cfg.Logger); err != nil {
			a.close()
			return nil, err
		}
	}
	return a, nil
}

// close closes the listeners New opened, when New fails after opening them.
func (a *Aggregator) close() {
	a.lis.Close()
	if a.mlis != nil {
		a.mlis.Close()
	}
}

// UIURL is the web view's address, or "".
func (a *Aggregator) UIURL() string {
	if a.ui == nil {
		return ""
	}
	return a.ui.URL()
}

// Addr is the gRPC listen address.
func (a *Aggregator) Addr() string { return a.lis.Addr().String() }

// MetricsAddr is the metrics listen address, or "".
func (a *Aggregator) MetricsAddr() string {
	if a.mlis == nil {
		return ""
	}
	return a.mlis.Addr().String()
}

// Run serves until ctx ends, then shuts down gracefully.
func (a *Aggregator) Run(ctx context.Context) error {
	log := a.cfg.Logger
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errCh := make(chan error, 4+len(a.cfg.Kube))
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.grpc.Serve(a.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errCh <- fmt.Errorf("gRPC server: %w", err)
		}
	}()
	if a.metrics != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.metrics.Serve(a.mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errCh <- fmt.Errorf("metrics server: %w", err)
			}
		}()
	}
	if a.ui != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.ui.Serve(); err != nil {
				errCh <- fmt.Errorf("web view: %w", err)
			}
		}()
	}
	if a.cfg.FleetView == nil {
		// A fleet view has no agents to watch over, and joins nothing.
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Ingest.Run(ctx)
		}()
	}
	if a.cfg.AgentGrace > 0 && a.cfg.FleetView == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(a.cfg.AgentGrace)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := a.Applier.SettleAgents(); err != nil {
				log.Error("ending the agent grace period", "error", err)
			}
			log.Info("agent grace period over: nodes without agents are findings now", "grace", a.cfg.AgentGrace)
		}()
	}
	for _, src := range a.cfg.Kube {
		w := &kube.Watcher{Source: src, Applier: a.Applier, Logger: log, Synced: func() { a.synced.Add(1) }}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(ctx); err != nil {
				errCh <- err
			}
		}()
	}
	if p := a.cfg.FleetPublish; p != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				errCh <- fmt.Errorf("fleet publisher: %w", err)
			}
		}()
	}
	if v := a.cfg.FleetView; v != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := v.Run(ctx); err != nil {
				errCh <- fmt.Errorf("fleet view: %w", err)
			}
		}()
	}
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	log.Info("kubeatlas-aggregator serving", "grpc", a.Addr(), "metrics", a.MetricsAddr(), "ui", a.UIURL(), "clusters", len(a.cfg.Kube))
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errCh:
	}
	log.Info("shutting down")
	a.health.Shutdown()
	// Long-lived streams end now with Unavailable, so that graceful stop
	// need not wait for agents and watchers to hang up.
	a.Ingest.Shutdown()
	a.query.Shutdown()
	cancel()
	stopped := make(chan struct{})
	go func() {
		a.grpc.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(a.cfg.ShutdownGrace)
	select {
	case <-stopped:
		t.Stop()
	case <-t.C:
		a.grpc.Stop()
		<-stopped
	}
	if a.metrics != nil {
		sctx, scancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
		_ = a.metrics.Shutdown(sctx)
		scancel()
	}
	if a.ui != nil {
		// The page's Watch streams ended with the query server's.
		sctx, scancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
		_ = a.ui.Shutdown(sctx)
		scancel()
	}
	wg.Wait()
	return runErr
}

// Ready reports whether every API source has synced its informers.
func (a *Aggregator) Ready() bool {
	if v := a.cfg.FleetView; v != nil {
		return v.Synced.Load()
	}
	return int(a.synced.Load()) >= len(a.cfg.Kube)
}

func (a *Aggregator) readyz(w http.ResponseWriter, _ *http.Request) {
	if v := a.cfg.FleetView; v != nil && !v.Synced.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "waiting for the fleet bucket")
		return
	}
	if n := int(a.synced.Load()); n < len(a.cfg.Kube) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "waiting for API sources to sync: %d of %d\n", n, len(a.cfg.Kube))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// storeCollector reports store sizes at scrape time.
type storeCollector struct {
	store *state.Store
	desc  *prometheus.Desc
}

func newStoreCollector(s *state.Store) *storeCollector {
	return &storeCollector{store: s, desc: prometheus.NewDesc("kubeatlas_store_rows", "Rows in the state store, by table.", []string{"table"}, nil)}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	for table, n := range c.store.Counts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), table)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
