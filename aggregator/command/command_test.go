package command

import (
	"strings"
	"testing"
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
	for _, name := range []string{"max-node-bytes", "forget-after", "agent-grace", "agent-rate", "watch-history-bytes"} {
		if f.Lookup(name) == nil {
			t.Errorf("no --%s flag", name)
		}
	}
}
