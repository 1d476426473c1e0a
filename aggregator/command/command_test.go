package command

import (
	"strings"
	"testing"
	"time"

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
