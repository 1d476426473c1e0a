// Package webview tests the web view in a real browser: Debian's chromium,
// driven over the DevTools protocol by chromedp, against real aggregators.
package webview

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromium finds Debian's chromium, installing it when it is missing (as
// .ci/run does), and skips the test where it cannot be had.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() == 0 {
		cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "chromium")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("installing chromium: %v\n%s", err, out)
		}
		if p, err := exec.LookPath("chromium"); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: apt-get install chromium")
	return ""
}

// Browser is one headless chromium with a tab, stopped when the test ends.
type Browser struct {
	t   testing.TB
	ctx context.Context
	dir string // screenshots
	n   int

	mu       sync.Mutex
	received map[network.RequestID]int64 // encoded bytes per request
	finished map[network.RequestID]int64
}

// NewBrowser starts chromium for the test. It reaches nothing but loopback:
// every host name other than 127.0.0.1 fails to resolve, and the
// background services that would call out are off.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root in CI
		chromedp.WindowSize(1600, 1000),
		chromedp.Flag("ignore-certificate-errors", true), // the tests' own CA
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-features", "OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater"),
	)
	b := &Browser{t: t, received: map[network.RequestID]int64{}, finished: map[network.RequestID]int64{}}
	b.dir = filepath.Join(ArtifactsDir(), strings.ReplaceAll(t.Name(), "/", "_"))
	// Each run's screenshots replace the last run's.
	if err := os.RemoveAll(b.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", b.dir)
	// A browser that dies while it starts (it happens on a loaded machine)
	// is started again, twice at most.
	var (
		ctx                 context.Context
		cancel, cancelAlloc context.CancelFunc
		err                 error
	)
	for attempt := 1; attempt <= 3; attempt++ {
		var actx context.Context
		actx, cancelAlloc = chromedp.NewExecAllocator(context.Background(), append(opts, chromedp.UserDataDir(t.TempDir()))...)
		ctx, cancel = chromedp.NewContext(actx)
		err = chromedp.Listen(ctx, b.record)
		if err == nil {
			_, err = chromedp.Call(ctx, network.Enable, network.EnableParams{})
		}
		if err == nil {
			break
		}
		cancel()
		cancelAlloc()
		t.Logf("starting chromium, attempt %d: %v", attempt, err)
	}
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	b.ctx = ctx
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // kills the browser process and waits for it
	})
	return b
}

// record counts the bytes each request received.
func (b *Browser) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventDataReceived:
		b.received[e.RequestID] += e.EncodedDataLength
	case *network.EventLoadingFinished:
		b.finished[e.RequestID] = int64(e.EncodedDataLength)
	}
}

// ArtifactsDir is where tests keep screenshots: $KUBEATLAS_ARTIFACTS, or
// kubeatlas-artifacts in the temporary directory; each test has a folder
// named after it.
func ArtifactsDir() string {
	if d := os.Getenv("KUBEATLAS_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "kubeatlas-artifacts")
}

// Do runs steps with a deadline.
func (b *Browser) Do(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// Open loads url as a new page: by way of about:blank, so that it is a fresh
// document whatever the tab showed before.
func (b *Browser) Open(url string) error {
	return b.Do(60*time.Second, chromedp.Navigate("about:blank"), chromedp.Navigate(url))
}

// Eval evaluates a script in the page and decodes its value into T.
func Eval[T any](b *Browser, script string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](script))
}

// Screenshot saves the whole page as <n>-<name>.png (quality 100 is PNG).
func (b *Browser) Screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.n++
	path := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// ResetTransfer forgets the bytes counted so far.
func (b *Browser) ResetTransfer() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.received)
	clear(b.finished)
}

// Transfer is what the page received over the wire since ResetTransfer:
// compressed bodies and headers of finished requests, and the bytes of
// streams still open.
func (b *Browser) Transfer() (bytes int64, requests int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := map[network.RequestID]bool{}
	for id := range b.received {
		ids[id] = true
	}
	for id := range b.finished {
		ids[id] = true
	}
	for id := range ids {
		bytes += max(b.received[id], b.finished[id])
	}
	return bytes, len(ids)
}

// WaitReady waits until the page has drawn view, and returns the
// milliseconds from the navigation's start until it had.
func (b *Browser) WaitReady(view string, timeout time.Duration) (int, error) {
	sel := chromedp.CSS(fmt.Sprintf(`body[data-view=%q][data-ready]`, view))
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.WaitVisible(sel))
	var attr chromedp.AttributeResult
	if err == nil {
		attr, err = chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("body"), "data-ready"))
	}
	if err != nil {
		page, _ := Eval[string](b, `(document.body.dataset.view||'') + ' | ' + (document.body.dataset.error||'') + ' | ' + document.getElementById('main').innerText.slice(0, 400)`)
		return 0, fmt.Errorf("waiting for the %s view: %w (page: %s)", view, err, page)
	}
	var n int
	_, _ = fmt.Sscan(attr.Value, &n)
	return n, nil
}

// ClearCache empties the browser's HTTP cache, so that the next navigation
// fetches everything.
func (b *Browser) ClearCache() error {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	_, err := chromedp.Call(ctx, network.ClearBrowserCache, cdp.Empty{})
	return err
}
