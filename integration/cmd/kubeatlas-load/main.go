// Command kubeatlas-load starts a real kubeatlas-aggregator on loopback and
// drives it with simulated agents; see BENCHMARKS.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kubeatlas/kubeatlas/integration/load"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
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
	view := flag.String("watch-view", "full", "the view the watchers ask for: full or basic")
	flag.IntVar(&cfg.WatchBatch, "watch-batch", 500, "the most events a watcher takes per response (WatchRequest.max_batch); 0 for one each")
	flag.StringVar(&cfg.ProfileDir, "profile-dir", "", "save the aggregator's CPU profiles of the full load and the steady state, and its heap profile, here")
	flag.DurationVar(&cfg.LoadProfile, "load-profile", 10*time.Second, "how long the CPU profile of the full load runs")
	probe := flag.String("probe", "", "run only the query probe against this aggregator address and print its latencies as JSON (used by the load run itself)")
	probeFor := flag.Duration("probe-for", time.Minute, "how long -probe runs")
	inProcess := flag.Bool("queries-in-process", false, "ask the queries under load from the generator process instead of a process of their own")
	flag.DurationVar(&cfg.SlowQuery, "slow", 0, "print each where-etcd query slower than this, with the time")
	aggCPUs := flag.String("aggregator-cpus", "", "pin the aggregator to these CPUs, e.g. 0 or 0-1 (default: no pinning)")
	genCPUs := flag.String("generator-cpus", "", "pin this generator to these CPUs, e.g. 1")
	timeout := flag.Duration("timeout", 20*time.Minute, "the run stops by itself after this")
	flag.Parse()
	if *probe != "" {
		if err := runProbe(*probe, *probeFor, cfg.SlowQuery); err != nil {
			fmt.Fprintln(os.Stderr, "kubeatlas-load -probe:", err)
			os.Exit(1)
		}
		return
	}
	if !*inProcess {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "kubeatlas-load:", err)
			os.Exit(1)
		}
		cfg.ProbeCommand = []string{exe, "-slow", cfg.SlowQuery.String()}
	}
	switch *view {
	case "full":
		cfg.WatchView = v1.ComponentView_COMPONENT_VIEW_FULL
	case "basic":
		cfg.WatchView = v1.ComponentView_COMPONENT_VIEW_BASIC
	default:
		fmt.Fprintf(os.Stderr, "kubeatlas-load: -watch-view %q: use full or basic\n", *view)
		os.Exit(2)
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "kubeatlas-load:", err)
			os.Exit(1)
		}
	}
	if *genCPUs != "" {
		if err := pin(0, *genCPUs); err != nil {
			fmt.Fprintln(os.Stderr, "kubeatlas-load: -generator-cpus:", err)
			os.Exit(2)
		}
	}
	if err := run(*aggBin, *aggCPUs, cfg, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "kubeatlas-load:", err)
		os.Exit(1)
	}
}

// runProbe asks the queries of load.Probe for a while and prints the
// latencies as JSON.
func runProbe(server string, d, slow time.Duration) error {
	conn, err := grpc.NewClient(server, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return json.NewEncoder(os.Stdout).Encode(load.Probe(ctx, conn, slow))
}

// pin sets the CPU affinity of a process (0: this one) to a list such as "0", "1-3" or "0,2".
func pin(pid int, list string) error {
	var set unix.CPUSet
	for _, part := range strings.Split(list, ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return fmt.Errorf("CPU list %q: %w", list, err)
		}
		b := a
		if found {
			if b, err = strconv.Atoi(hi); err != nil {
				return fmt.Errorf("CPU list %q: %w", list, err)
			}
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	if set.Count() == 0 {
		return fmt.Errorf("CPU list %q is empty", list)
	}
	// Every thread of a Go process must be moved, not just the calling one.
	if pid == 0 {
		pid = os.Getpid()
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}

func run(aggBin, aggCPUs string, cfg load.Config, timeout time.Duration) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	maddr := ml.Addr().String()
	ml.Close()
	agg := exec.Command(aggBin, "--insecure", "--listen", addr, "--metrics-addr", maddr, "--profiling",
		"--heartbeat-interval", cfg.Interval.String(), "--log-level", "warn")
	agg.Stderr = os.Stderr
	if os.Getenv("KUBEATLAS_LOAD_GCTRACE") != "" {
		// The aggregator's GC trace, stamped with the time, next to -slow's lines.
		agg.Env = append(os.Environ(), "GODEBUG=gctrace=1")
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		agg.Stderr = pw
		defer pw.Close()
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				fmt.Fprintf(os.Stderr, "%s aggregator: %s\n", time.Now().Format("15:04:05.000"), sc.Text())
			}
		}()
	}
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
	if aggCPUs != "" {
		if err := pin(agg.Process.Pid, aggCPUs); err != nil {
			return fmt.Errorf("-aggregator-cpus: %w", err)
		}
	}
	cfg.Server, cfg.AggregatorPID, cfg.MetricsURL = addr, agg.Process.Pid, "http://"+maddr
	rep, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Println(rep)
	return nil
}
