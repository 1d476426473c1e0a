package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// The authorization nats-auth writes is what a real NATS server reads: one
// nkey user per name, the aggregators bound to their clusters' keys.
func TestFleetNatsAuth(t *testing.T) {
	dir := t.TempDir()
	out, err := run(t, "fleet", "nats-auth", "--aggregator", "agg-a=east.prod,west", "--aggregator", "agg-b=north", "--view", "fleet-view", "--out", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("port: -1\ninclude ./auth.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("NATS refuses auth.conf: %v", err)
	}
	if len(opts.Nkeys) != 3 {
		t.Fatalf("%d nkey users, want 3", len(opts.Nkeys))
	}
	byKey := map[string]*server.NkeyUser{}
	for _, u := range opts.Nkeys {
		byKey[u.Nkey] = u
	}
	for name, want := range map[string]string{"agg-a": "$KV.kubeatlas.east_prod.>", "agg-b": "$KV.kubeatlas.north.>", "fleet-view": ""} {
		seed, err := os.ReadFile(filepath.Join(dir, name+".nk"))
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(filepath.Join(dir, name+".nk")); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.nk is mode %v", name, fi.Mode().Perm())
		}
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		u := byKey[pub]
		if u == nil {
			t.Fatalf("no user for %s", name)
		}
		allow := u.Permissions.Publish.Allow
		hasKV := slices.ContainsFunc(allow, func(s string) bool { return strings.HasPrefix(s, "$KV.") })
		if want == "" && hasKV || want != "" && !slices.Contains(allow, want) {
			t.Errorf("%s may publish %v", name, allow)
		}
	}
	if _, err := run(t, "fleet", "nats-auth", "--aggregator", "a=x", "--aggregator", "b=x", "--out", t.TempDir()); err == nil ||
		!strings.Contains(err.Error(), "one aggregator owns a cluster") {
		t.Errorf("a cluster given twice: %v", err)
	}
}
