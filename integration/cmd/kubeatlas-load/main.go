// Command kubeatlas-load starts a real kubeatlas-aggregator on loopback and
// drives it with simulated agents; see BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kubeatlas/kubeatlas/integration/load"
)

func main() {
	var cfg load.Config
	aggBin := flag.String("aggregator", "kubeatlas-aggregator", "the aggregator binary to start")
	flag.IntVar(&cfg.Clusters, "clusters", 10, "clusters")
	flag.IntVar(&cfg.Nodes, "nodes", 1000, "simulated nodes in all")
	flag.IntVar(&cfg.Processes, "processes", 300, "processes per node")
	flag.DurationVar(&cfg.Interval, "interval", 10*time.Second, "scan and heartbeat interval")
	flag.Float64Var(&cfg.Churn, "churn", 0.01, "share of each node's processes replaced per interval")
	flag.DurationVar(&cfg.Steady, "steady", time.Minute, "how long the steady phase runs")
	flag.IntVar(&cfg.Watchers, "watchers", 0, "Watch clients during the run")
	timeout := flag.Duration("timeout", 20*time.Minute, "the run stops by itself after this")
	flag.Parse()
	if err := run(*aggBin, cfg, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "kubeatlas-load:", err)
		os.Exit(1)
	}
}

func run(aggBin string, cfg load.Config, timeout time.Duration) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	agg := exec.Command(aggBin, "--insecure", "--listen", addr, "--metrics-addr", "", "--heartbeat-interval", cfg.Interval.String(), "--log-level", "warn")
	agg.Stderr = os.Stderr
	agg.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := agg.Start(); err != nil {
		return err
	}
	defer func() { _ = agg.Process.Signal(syscall.SIGTERM); _ = agg.Wait() }()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, timeout)
	defer cancel2()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	for {
		hctx, hc := context.WithTimeout(ctx, time.Second)
		_, err := healthpb.NewHealthClient(conn).Check(hctx, &healthpb.HealthCheckRequest{})
		hc()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("aggregator not healthy: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cfg.Server, cfg.AggregatorPID = addr, agg.Process.Pid
	rep, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Println(rep)
	return nil
}
