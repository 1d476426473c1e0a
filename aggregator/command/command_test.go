package command

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kubeatlas/kubeatlas/aggregator/fleet"
	"github.com/kubeatlas/kubeatlas/aggregator/query"
)

// TestExposureDefaults: what a default install listens on beyond the API.
func TestExposureDefaults(t *testing.T) {
	f := NewRootCmd().Flags()
	if d := f.Lookup("metrics-addr").DefValue; !strings.HasPrefix(d, "127.0.0.1:") {
		t.Errorf("metrics and pprof listen on %q by default, want loopback", d)
	}
	if d := f.Lookup("profiling").DefValue; d != "false" {
		t.Errorf("profiling is %s by default", d)
	}
	for _, name := range []string{"max-node-bytes", "forget-after", "agent-grace", "agent-rate", "watch-history-bytes", "watch-ingest-first"} {
		if f.Lookup(name) == nil {
			t.Errorf("no --%s flag", name)
		}
	}
}

// --watch-ingest-first=0 never holds watchers back; the server's 0 would
// mean its default.
func TestIngestFirstZeroMeansNever(t *testing.T) {
	if d := NewRootCmd().Flags().Lookup("watch-ingest-first").DefValue; d != query.DefaultIngestFirst.String() {
		t.Errorf("--watch-ingest-first defaults to %s, want %v", d, query.DefaultIngestFirst)
	}
	if got := ingestFirstOrNever(0); got >= 0 {
		t.Errorf("0 became %v, want a negative value", got)
	}
	if got := ingestFirstOrNever(3 * time.Second); got != 3*time.Second {
		t.Errorf("3s became %v", got)
	}
}

// --fleet-commit-wait=0 makes each lone record its own transaction; the
// view's 0 would mean its default.
func TestFleetCommitWaitZeroMeansNone(t *testing.T) {
	if d := NewRootCmd().Flags().Lookup("fleet-commit-wait").DefValue; d != fleet.DefaultCommitWait.String() {
		t.Errorf("--fleet-commit-wait defaults to %s, want %v", d, fleet.DefaultCommitWait)
	}
	for _, tc := range []struct {
		flag time.Duration
		want func(time.Duration) bool
	}{
		{0, func(d time.Duration) bool { return d < 0 }},
		{-time.Second, func(d time.Duration) bool { return d < 0 }},
		{40 * time.Millisecond, func(d time.Duration) bool { return d == 40*time.Millisecond }},
	} {
		f := fleetFlags{from: "nats://127.0.0.1:4222", heartbeat: time.Second, staleAfter: time.Minute, commitWait: tc.flag}
		_, view, err := f.build(slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if !tc.want(view.CommitWait) {
			t.Errorf("--fleet-commit-wait %v became %v", tc.flag, view.CommitWait)
		}
	}
	// A wait that would hold a heartbeat past the stale bound is refused.
	f := fleetFlags{from: "nats://127.0.0.1:4222", heartbeat: 5 * time.Second, staleAfter: 15 * time.Second, commitWait: 10 * time.Second}
	if _, _, err := f.build(slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--fleet-commit-wait") {
		t.Errorf("a commit wait of 10s with a 5s heartbeat and 15s stale bound: %v, want an error naming the flag", err)
	}
}
