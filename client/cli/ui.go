package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeatlas/kubeatlas/client/ui"
)

// DefaultUIAddr is where `kubeatlas ui` and `kubeatlas demo --ui` listen
// unless told otherwise: loopback, since what bundles hold is not for
// everyone.
const DefaultUIAddr = "127.0.0.1:7480"

func newUICmd(o *options) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Serve the web view of offline bundles (--bundle): a fleet overview, a map of components over nodes, nodes, instances and findings",
		Long: `Serve the web view of offline bundles at http://ADDR/ui/, through the same
engine the other commands use on bundles. It runs until interrupted.

A live aggregator serves the same page itself: kubeatlas-aggregator --ui-addr ADDR.`,
		Example: `  kubeatlas --bundle examples/seed-cluster ui
  kubeatlas --bundle site-a --bundle site-b ui --listen 127.0.0.1:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(o.bundles) == 0 {
				return errors.New("ui serves offline bundles: give --bundle DIR (a live aggregator serves the page itself with --ui-addr)")
			}
			return o.serveUI(cmd, listen, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", DefaultUIAddr, "where the web view listens")
	return cmd
}

// serveUI loads the bundles (within --timeout) and serves the web view on
// listen until the command's context ends or SIGINT/SIGTERM.
func (o *options) serveUI(cmd *cobra.Command, listen string, out io.Writer) error {
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	loadCtx := ctx
	if o.timeout > 0 {
		var cancel context.CancelFunc
		loadCtx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	c, err := o.connect(loadCtx)
	if err != nil {
		return err
	}
	defer c.close()
	h, err := ui.NewHandler(c.server)
	if err != nil {
		return err
	}
	srv, err := ui.Listen(listen, h, nil, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "The web view is at %s (Ctrl-C stops it).\n", srv.URL())
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.close() // ends the page's Watch streams
	_ = srv.Shutdown(sctx)
	return <-done
}
