// Command kubeatlas-hostile is an adversarial agent: it attacks an
// aggregator for a while (see package hostile) and prints what happened.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kubeatlas/kubeatlas/integration/hostile"
)

func main() {
	var cfg hostile.Config
	flag.StringVar(&cfg.Server, "server", "127.0.0.1:7443", "the aggregator's address (plaintext)")
	flag.StringVar(&cfg.Cluster, "cluster", "hostile", "the cluster the hostile node claims")
	flag.StringVar(&cfg.Node, "node", "hostile", "the hostile node's name (attacks add suffixes)")
	flag.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to attack")
	flag.IntVar(&cfg.MessageBytes, "message-bytes", 1<<20, "size of the large messages")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := hostile.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeatlas-hostile:", err)
		os.Exit(1)
	}
	fmt.Print(res.String())
}
