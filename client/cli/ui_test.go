package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestUINeedsBundles(t *testing.T) {
	_, err := run(t, "ui", "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "--bundle") || !strings.Contains(err.Error(), "--ui-addr") {
		t.Fatalf("ui without bundles: %v", err)
	}
	_, err = run(t, "--bundle", "/nonexistent", "ui", "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Fatalf("ui with a missing bundle: %v", err)
	}
}

// syncBuffer is written by the command and read by the test.
type syncBuffer struct {
	ch chan []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.ch <- bytes.Clone(p)
	return len(p), nil
}

// TestUIServesBundles: `ui` serves the page and the API of its bundles until
// its context ends, then returns cleanly.
func TestUIServesBundles(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := NewRootCmd()
	out := &syncBuffer{ch: make(chan []byte, 16)}
	cmd.SetOut(out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--bundle", seedBundle, "ui", "--listen", "127.0.0.1:0"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	var line string
	select {
	case b := <-out.ch:
		line = string(b)
	case err := <-done:
		t.Fatalf("ui returned: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("ui did not say where it listens")
	}
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("no URL in %q", line)
	}
	url := strings.Fields(line[i:])[0]
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", strings.TrimSuffix(url, "/ui/")+"/kubeatlas.v1.InventoryService/ListClusters", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connect-Protocol-Version", "1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"name":"seed"`) {
		t.Errorf("ListClusters through the web view: %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ui after its context ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ui did not stop")
	}
}
