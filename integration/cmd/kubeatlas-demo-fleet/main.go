// kubeatlas-demo-fleet shows the fleet tier on one machine: an embedded NATS
// server with JetStream, three aggregators each serving a copy of the
// reference bundle as a cluster of its own and publishing it, and a fleet
// view serving all three; then the CLI asks the fleet view. Everything is on
// loopback and stops when it is done. `make demo-fleet` runs it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubeatlas/kubeatlas/aggregator/fleet"
	aggserver "github.com/kubeatlas/kubeatlas/aggregator/server"
	"github.com/kubeatlas/kubeatlas/client/cli"
	seedcluster "github.com/kubeatlas/kubeatlas/examples/seed-cluster"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-fleet:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tmp, err := os.MkdirTemp("", "kubeatlas-demo-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(tmp, "nats"), NoSigs: true, NoLog: true})
	if err != nil {
		return err
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("NATS did not start")
	}
	url := ns.ClientURL()
	fmt.Printf("NATS with JetStream at %s\n", url)

	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	start := func(cfg aggserver.Config) (*aggserver.Aggregator, error) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		cfg.Listener, cfg.Logger = lis, log
		a, err := aggserver.New(cfg)
		if err != nil {
			lis.Close()
			return nil, err
		}
		actx, acancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = a.Run(actx); close(done) }()
		stops = append(stops, func() { acancel(); <-done })
		return a, nil
	}
	var pubs []*fleet.Publisher
	for i, name := range []string{"seed", "seed-east", "seed-west"} {
		dir := filepath.Join(tmp, name)
		if err := copyBundle(dir, name); err != nil {
			return err
		}
		p := &fleet.Publisher{Conn: fleet.Conn{URL: url, Name: fmt.Sprintf("aggregator-%d", i+1), Logger: log}, CreateBucket: true, Heartbeat: time.Second}
		a, err := start(aggserver.Config{Bundles: []string{dir}, FleetPublish: p})
		if err != nil {
			return err
		}
		pubs = append(pubs, p)
		fmt.Printf("aggregator-%d at %s serves cluster %s and publishes it\n", i+1, a.Addr(), name)
	}
	for _, p := range pubs {
		if err := wait(20*time.Second, func() bool { return p.Synced.Load() }); err != nil {
			return fmt.Errorf("a publisher never synced: %w", err)
		}
	}
	view := &fleet.View{Conn: fleet.Conn{URL: url, Name: "fleet-view", Logger: log}}
	fv, err := start(aggserver.Config{FleetView: view})
	if err != nil {
		return err
	}
	if err := wait(20*time.Second, func() bool { return view.Synced.Load() }); err != nil {
		return fmt.Errorf("the fleet view never caught up: %w", err)
	}
	fmt.Printf("fleet view at %s\n", fv.Addr())
	for _, args := range [][]string{{"get", "clusters"}, {"where", "etcd"}, {"get", "findings", "--filter", `finding.kind == "FINDING_KIND_CLOCK_SKEW"`}} {
		shown := make([]string, len(args))
		for i, a := range args {
			shown[i] = a
			if strings.ContainsAny(a, " \"") {
				shown[i] = "'" + a + "'"
			}
		}
		fmt.Printf("\n$ kubeatlas --server %s %s\n", fv.Addr(), strings.Join(shown, " "))
		cmd := cli.NewRootCmd()
		cmd.SetArgs(append([]string{"--server", fv.Addr(), "--insecure"}, args...))
		if err := cmd.ExecuteContext(ctx); err != nil {
			return err
		}
	}
	fmt.Printf("\n$ kubeatlas --server %s get processes --cluster seed-east\n", fv.Addr())
	cmd := cli.NewRootCmd()
	cmd.SetArgs([]string{"--server", fv.Addr(), "--insecure", "get", "processes", "--cluster", "seed-east"})
	cmd.SetErr(os.Stdout)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Println("Error:", err)
	}
	return nil
}

// copyBundle writes the reference bundle into dir as the cluster name.
func copyBundle(dir, name string) error {
	return fs.WalkDir(seedcluster.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out := filepath.Join(dir, path)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		data, err := fs.ReadFile(seedcluster.FS, path)
		if err != nil {
			return err
		}
		switch {
		case path == "bundle.yaml":
			data = []byte(strings.Replace(string(data), "cluster: seed", "cluster: "+name, 1))
		case strings.HasPrefix(path, "nodes/"):
			var inv v1.NodeInventory
			if err := protojson.Unmarshal(data, &inv); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			inv.Identity.Cluster = name
			if data, err = protojson.Marshal(&inv); err != nil {
				return err
			}
		}
		return os.WriteFile(out, data, 0o644)
	})
}

func wait(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
