package query

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// While the writer has a backlog, watchers hold their events back until
// the oldest is IngestFirst old or the history is half full, and send them
// once the backlog clears; a server without a backlog never holds back.
func TestWatchYieldsToIngest(t *testing.T) {
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	backlog := &state.Backlog{}
	patient, brief, free := NewServer(st), NewServer(st), NewServer(st)
	patient.Backlog, patient.IngestFirst = backlog, time.Hour
	brief.Backlog, brief.IngestFirst = backlog, 100*time.Millisecond
	type watcher struct {
		name string
		ws   *watchStream
		seen int // component events received after SYNCED
	}
	var ws []*watcher
	done := make(chan error, 4)
	for _, w := range []struct {
		name string
		s    *Server
		req  *v1.WatchRequest
	}{
		{"patient", patient, &v1.WatchRequest{MaxBatch: 1000}},
		// A watcher of one cluster reads event by event, not in runs.
		{"patient, one cluster", patient, &v1.WatchRequest{MaxBatch: 1000, Cluster: "c"}},
		{"brief", brief, &v1.WatchRequest{MaxBatch: 1000}},
		{"free", free, &v1.WatchRequest{MaxBatch: 1000}},
	} {
		wt := &watcher{name: w.name, ws: &watchStream{ctx: ctx, sent: make(chan *v1.WatchResponse, 10000)}}
		ws = append(ws, wt)
		go func() { done <- w.s.Watch(w.req, wt.ws) }()
	}
	for st.Broker().Subscribers() != len(ws) {
		time.Sleep(time.Millisecond)
	}
	// take counts a watcher's events for up to d, failing on a RESYNC.
	take := func(w *watcher, d time.Duration) {
		t.Helper()
		deadline := time.After(d)
		for {
			select {
			case m := <-w.ws.sent:
				for _, ev := range flatten([]*v1.WatchResponse{m}) {
					if ev.Type == v1.WatchEventType_WATCH_EVENT_TYPE_RESYNC {
						t.Fatalf("%s lost events", w.name)
					}
					if ev.GetComponent() != nil {
						w.seen++
					}
				}
			case <-deadline:
				return
			}
		}
	}
	// receive takes a watcher's events until it has want, or fails.
	receive := func(w *watcher, want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); w.seen < want; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d events of %d", w.name, w.seen, want)
			}
			take(w, 10*time.Millisecond)
		}
		if w.seen != want {
			t.Fatalf("%s: %d events, want %d", w.name, w.seen, want)
		}
	}
	commits, total := 0, 0
	commit := func(n int) {
		t.Helper()
		commits++
		commitInstances(t, st, fmt.Sprintf("n%d", commits), n)
		total += n
	}

	// No backlog: every watcher has the events at once.
	commit(600)
	for _, w := range ws {
		receive(w, total)
	}

	// A backlog: the patient hold back, the brief send when the oldest
	// event is 100ms old, the free at once.
	backlog.Set(true)
	commit(600)
	commit(300)
	receive(ws[3], total)
	receive(ws[2], total)
	take(ws[0], 50*time.Millisecond)
	take(ws[1], 0)
	if ws[0].seen != total-900 || ws[1].seen != total-900 {
		t.Fatalf("while the backlog lasts, the patient took in %d and %d of 900 new events", ws[0].seen-(total-900), ws[1].seen-(total-900))
	}
	// It clears: the patient have them all.
	backlog.Set(false)
	for _, w := range ws {
		receive(w, total)
	}

	// A backlog again, and the history half full: the patient read on
	// rather than lose events.
	backlog.Set(true)
	commit(400)
	take(ws[0], 50*time.Millisecond)
	if ws[0].seen != total-400 {
		t.Fatalf("held back %d of 400 events, want all", total-ws[0].seen)
	}
	st.Broker().SetHistoryBytes(st.Broker().HeldBytes() * 3 / 2)
	for _, w := range ws {
		receive(w, total)
	}
	backlog.Set(false)
	cancel()
	for range ws {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
