package harness

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kubeatlas/kubeatlas/aggregator/server"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Aggregator is a running kubeatlas-aggregator.
type Aggregator struct {
	Addr string
	// MetricsAddr serves /metrics, /healthz and /readyz.
	MetricsAddr string
	Proc        *Process
	args        []string
	dir         string
	bins        Binaries
	t           testing.TB // the test that owns the process
	conn        *grpc.ClientConn
	// Client asks its InventoryService.
	Client v1.InventoryServiceClient
}

// StartAggregator starts the aggregator on a loopback port, plaintext, with
// the given extra flags (e.g. --kube NAME=KUBECONFIG).
func StartAggregator(t testing.TB, bins Binaries, extra ...string) *Aggregator {
	t.Helper()
	a := &Aggregator{dir: t.TempDir(), bins: bins, t: t}
	// The ports are free when picked, but another process on the machine may
	// take one before the aggregator binds it: then the aggregator starts
	// again on others.
	for attempt := 1; ; attempt++ {
		a.Addr, a.MetricsAddr = "127.0.0.1:"+strconv.Itoa(FreePort(t)), "127.0.0.1:"+strconv.Itoa(FreePort(t))
		a.args = append([]string{"--insecure", "--listen", a.Addr, "--metrics-addr", a.MetricsAddr,
			"--heartbeat-interval", "1s", "--agent-grace", "3s", "--log-level", "debug"}, extra...)
		err := a.start()
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			t.Logf("starting the aggregator again: %v", err)
			continue
		}
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(a.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a.conn, a.Client = conn, v1.NewInventoryServiceClient(conn)
	return a
}

// Start (re)starts the aggregator process and waits until it is healthy. The
// process belongs to the test that started the aggregator first, whichever
// (sub)test restarts it.
func (a *Aggregator) Start(t testing.TB) {
	t.Helper()
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
}

func (a *Aggregator) start() error {
	a.Proc = StartProcess(a.t, a.dir, "kubeatlas-aggregator", a.bins.Aggregator, a.args...)
	err := Eventually(30*time.Second, 100*time.Millisecond, func() error {
		if a.Proc.Exited() {
			return fmt.Errorf("aggregator exited")
		}
		conn, err := grpc.NewClient(a.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health: %v", resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("aggregator not healthy: %v\n%s", err, Tail(a.Proc.Log, 30))
	}
	return nil
}

// RunAggregator runs an aggregator server in the test's own process, on
// loopback ports, until the test ends; cfg's addresses and logger default
// to loopback and silence. Its heap and CPU are the test's.
func RunAggregator(t testing.TB, cfg server.Config) *server.Aggregator {
	t.Helper()
	if cfg.GRPCAddr == "" && cfg.Listener == nil {
		cfg.GRPCAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	agg, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agg.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return agg
}
