package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// untilWriter collects output and calls at when the output first contains
// want.
type untilWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want []string
	at   []func()
}

func (w *untilWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	for len(w.want) > 0 && strings.Contains(w.buf.String(), w.want[0]) {
		f := w.at[0]
		w.want, w.at = w.want[1:], w.at[1:]
		go f()
	}
	return n, err
}

func (w *untilWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// runUntil runs the CLI until its output holds each of wants in turn,
// calling the matching step, the last of which should end the command.
func runUntil(t *testing.T, args []string, wants []string, steps []func(cancel func())) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := &untilWriter{want: wants}
	for _, s := range steps {
		out.at = append(out.at, func() { s(cancel) })
	}
	cmd := NewRootCmd()
	cmd.SetOut(out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() == context.DeadlineExceeded {
		t.Fatalf("timed out; output so far:\n%s", out.String())
	}
	return out.String()
}

var indexes = regexp.MustCompile(`"index":"\d+"`)

// TestWatchGolden watches the bundle: the state, then SYNCED.
func TestWatchGolden(t *testing.T) {
	stop := func(cancel func()) { cancel() }
	for name, args := range map[string][]string{
		"watch":                {"watch"},
		"watch-kube-proxy":     {"watch", "--component", "kube-proxy", "--no-findings"},
		"watch-findings-json":  {"watch", "--no-components", "-o", "json"},
		"watch-apiserver-yaml": {"watch", "--component", "kube-apiserver", "--no-findings", "-o", "yaml"},
		"watch-filter":         {"watch", "--filter", `component.how == "DEPLOYMENT_KIND_STATIC_POD" || finding.severity == "SEVERITY_CRITICAL"`},
	} {
		t.Run(name, func(t *testing.T) {
			out := runUntil(t, append([]string{"--bundle", seedBundle}, args...), []string{"SYNCED"}, []func(func()){stop})
			// Indexes belong to one aggregator process.
			golden(t, name, indexes.ReplaceAllString(out, `"index":"N"`))
		})
	}
}

// proxy forwards TCP connections to target until cut, which breaks every
// connection open so far, as a flaky link would.
type proxy struct {
	lis   net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{lis: lis}
	go func() {
		for {
			in, err := lis.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() { lis.Close(); p.cut() })
	return p
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestWatchResumesAfterABrokenLink cuts the connection under a watch, changes
// the cluster meanwhile, and checks the watch comes back with RESUMED and
// only the change, not the whole state again.
func TestWatchResumesAfterABrokenLink(t *testing.T) {
	agg := startSeedAggregator(t)
	p := startProxy(t, agg.Addr())
	out := runUntil(t, []string{"--server", p.lis.Addr().String(), "--insecure", "watch", "--component", "kube-proxy", "--no-findings"},
		[]string{"SYNCED\n", "RESUMED\n", "DELETED"},
		[]func(func()){
			func(func()) {
				p.cut()
				if err := agg.Applier.DeletePod("seed", "kube-system", "kube-proxy-xgvz8"); err != nil {
					t.Error(err)
				}
			},
			func(func()) {},
			func(cancel func()) { time.Sleep(200 * time.Millisecond); cancel() },
		})
	if n := strings.Count(out, "SYNCED\n"); n != 1 {
		t.Errorf("the state was sent %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out[:strings.Index(out, "SYNCED")], "ADDED"); n != 6 {
		t.Errorf("%d ADDED lines, want the 6 kube-proxies:\n%s", n, out)
	}
	if strings.Contains(out, "RESYNC") {
		t.Errorf("resynced instead of resuming:\n%s", out)
	}
	after := out[strings.Index(out, "RESUMED"):]
	if !strings.Contains(after, "kube-proxy") || !strings.Contains(after, "zzk-1") {
		t.Errorf("no change after RESUMED:\n%s", out)
	}
}
