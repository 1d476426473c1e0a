package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestCertsRefusesWhatTheAggregatorWould(t *testing.T) {
	for _, args := range [][]string{
		{"--cluster", "Prod", "--node", "n1"},
		{"--cluster", "prod", "--node", "n1/evil"},
		{"--cluster", "prod", "--node", strings.Repeat("a", 300)},
		{"--client", "../ops"},
		{"--host", "h", "--valid-for", "-1h"},
		{"--host", "h", "--valid-for", "0s"},
	} {
		dir := t.TempDir()
		if _, err := run(t, append([]string{"certs", "--dir", dir}, args...)...); err == nil {
			t.Errorf("%q accepted", args)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%q wrote files before refusing", args)
		}
	}
	dir := t.TempDir()
	if _, err := run(t, "certs", "--dir", dir, "--cluster", "prod", "--node", "n1", "--client", "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "agent-n1.crt")); err != nil {
		t.Fatal(err)
	}
	// A CA that ends before the certificates would.
	if _, err := run(t, "certs", "--dir", dir, "--client", "late", "--valid-for", "87600h0m1s"); err == nil || !strings.Contains(err.Error(), "expires") {
		t.Fatalf("got %v", err)
	}
}

var rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)

func TestCertsGolden(t *testing.T) {
	dir := t.TempDir()
	norm := func(s string) string { return rfc3339.ReplaceAllString(strings.ReplaceAll(s, dir, "DIR"), "TIME") }
	out, err := run(t, "certs", "--dir", dir, "--host", "kubeatlas.example", "--cluster", "prod", "--node", "n1", "--client", "ops")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "certs", norm(out))
	out, err = run(t, "certs", "--dir", dir, "--client", "ops2")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "certs-again", norm(out))
}
