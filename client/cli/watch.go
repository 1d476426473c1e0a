package cli

import (
	"context"
	"errors"
	"io"
	"math"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubeatlas/kubeatlas/client/printer"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func newWatchCmd(o *options) *cobra.Command {
	var component string
	var noComponents, noFindings bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print the current components and findings, then every change as it happens",
		Long: `Print the current components and findings, then every change as it happens.
When the connection to the aggregator drops, watch reconnects and resumes after
the last change it printed (RESUMED); when the aggregator no longer holds the
changes since, it prints RESYNC and the whole state again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := o.format()
			if err != nil {
				return err
			}
			// A watch runs until interrupted: no answer deadline.
			o.timeout = 0
			req := &v1.WatchRequest{Cluster: o.cluster, Component: component,
				SkipComponents: noComponents, SkipFindings: noFindings, View: f.ComponentView(), MaxBatch: 500,
				Filter: orFilters(filters)}
			return o.run(cmd, func(ctx context.Context, c *conn) error {
				return watch(ctx, c, req, func(ev *v1.WatchResponse) error { return printer.Event(cmd.OutOrStdout(), f, ev) },
					func(err error, in time.Duration) error {
						return printer.Reconnecting(cmd.ErrOrStderr(), err, in, req.ResumeIndex)
					})
			})
		},
	}
	cmd.Flags().StringVar(&component, "component", "", "only this component")
	cmd.Flags().BoolVar(&noComponents, "no-components", false, "do not show component changes")
	cmd.Flags().BoolVar(&noFindings, "no-findings", false, "do not show finding changes")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, `a CEL expression over each event's object: component or finding, e.g. 'component.how == "DEPLOYMENT_KIND_STATIC_POD"'; repeated filters are ORed`)
	return cmd
}

// watch runs req until ctx ends or the aggregator ends it, calling handle for
// every event. When the connection drops (Unavailable), it says so through
// lost, waits and watches again from the last index it handled.
func watch(ctx context.Context, c *conn, req *v1.WatchRequest, handle func(*v1.WatchResponse) error, lost func(error, time.Duration) error) error {
	backoff := retryBackoff()
	for {
		progressed, err := watchOnce(ctx, c, req, handle)
		switch {
		case ctx.Err() != nil, err == nil:
			return nil
		case status.Code(err) != codes.Unavailable:
			return err
		}
		if progressed {
			backoff = retryBackoff()
		}
		delay := backoff.Step()
		if err := lost(err, delay); err != nil {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// retryBackoff is how watch waits between reconnects: from half a second,
// doubling up to 30 s, with up to a fifth more as jitter.
func retryBackoff() *wait.Backoff {
	return &wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.2, Cap: 30 * time.Second, Steps: math.MaxInt32}
}

// watchOnce runs one Watch stream and keeps req.ResumeIndex at the last
// index handled. progressed says whether any event arrived.
func watchOnce(ctx context.Context, c *conn, req *v1.WatchRequest, handle func(*v1.WatchResponse) error) (progressed bool, err error) {
	st, err := c.client.Watch(ctx, req)
	if err != nil {
		return false, err
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return progressed, nil
			}
			return progressed, err
		}
		progressed = true
		for _, ev := range resp.Events() {
			if err := handle(ev); err != nil {
				return progressed, err
			}
			switch {
			case ev.Type == v1.WatchEventType_WATCH_EVENT_TYPE_RESYNC:
				// What was handled no longer counts until the next SYNCED.
				req.ResumeIndex = 0
			case ev.Resumable():
				req.ResumeIndex = ev.Index
			}
		}
	}
}
