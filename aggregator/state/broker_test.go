package state

import (
	"fmt"
	"sync"
	"testing"
	"time"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func events(from, n int) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = Event{Type: v1.WatchEventType_WATCH_EVENT_TYPE_MODIFIED, Component: &v1.ComponentInstance{Id: fmt.Sprint(from + i)}}
	}
	return out
}

func ids(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Component.Id
	}
	return out
}

func TestBrokerReadsInOrderAtEachPace(t *testing.T) {
	b := NewBroker()
	b.SetRetainBytes(0)
	b.SetHistory(8)
	b.Publish(events(-5, 5)) // before anyone subscribed: never read
	fast, slow := b.Subscribe(), b.Subscribe()
	defer fast.Close()
	defer slow.Close()
	b.Publish(events(0, 3))
	got, lagged := fast.Read(nil, 2)
	if lagged || fmt.Sprint(ids(got)) != "[0 1]" {
		t.Fatalf("first read %v lagged %v", ids(got), lagged)
	}
	// More was waiting than asked for: Ready says so.
	select {
	case <-fast.Ready:
	default:
		t.Fatal("Ready not set while events wait")
	}
	b.Publish(events(3, 3))
	got, _ = fast.Read(nil, 100)
	if fmt.Sprint(ids(got)) != "[2 3 4 5]" {
		t.Fatalf("second read %v", ids(got))
	}
	got, _ = slow.Read(nil, 100)
	if fmt.Sprint(ids(got)) != "[0 1 2 3 4 5]" {
		t.Fatalf("slow reader %v", ids(got))
	}
	if got, lagged := slow.Read(nil, 100); len(got) != 0 || lagged {
		t.Fatalf("nothing new, read %v lagged %v", ids(got), lagged)
	}
	if b.Dropped() != 0 {
		t.Fatalf("dropped %d", b.Dropped())
	}
}

func TestBrokerLagLosesOnlyWhatTheHistoryCannotHold(t *testing.T) {
	b := NewBroker()
	b.SetHistory(4)
	s := b.Subscribe()
	defer s.Close()
	b.Publish(events(0, 4))
	if got, lagged := s.Read(nil, 100); lagged || len(got) != 4 {
		t.Fatalf("a full history is still readable: %v lagged %v", ids(got), lagged)
	}
	b.Publish(events(4, 6))
	got, lagged := s.Read(nil, 100)
	if !lagged || len(got) != 0 {
		t.Fatalf("fell 6 behind a history of 4: %v lagged %v", ids(got), lagged)
	}
	if b.Dropped() != 6 {
		t.Fatalf("dropped %d, want 6", b.Dropped())
	}
	b.Publish(events(10, 1))
	if got, lagged := s.Read(nil, 100); lagged || fmt.Sprint(ids(got)) != "[10]" {
		t.Fatalf("after the lag: %v lagged %v", ids(got), lagged)
	}
}

// Publishers and readers at once, under the race detector: every reader sees
// every event exactly once and in order, or is told it lagged.
func TestBrokerConcurrent(t *testing.T) {
	b := NewBroker()
	b.SetHistory(64)
	const publishers, per = 4, 500
	var subs []*Subscription
	for i := 0; i < 3; i++ {
		subs = append(subs, b.Subscribe())
	}
	var wg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				b.Publish(events(p*per+i, 1))
			}
		}()
	}
	counts := make([]int, len(subs))
	lags := make([]bool, len(subs))
	var rg sync.WaitGroup
	done := make(chan struct{})
	for i, s := range subs {
		rg.Add(1)
		go func() {
			defer rg.Done()
			seen := map[string]bool{}
			finishing := false
			for {
				got, lagged := s.Read(nil, 7)
				if lagged {
					lags[i] = true
				}
				for _, e := range got {
					if seen[e.Component.Id] {
						t.Errorf("reader %d saw %s twice", i, e.Component.Id)
					}
					seen[e.Component.Id] = true
				}
				counts[i] += len(got)
				if len(got) == 0 {
					if finishing {
						return
					}
					select {
					case <-s.Ready:
					case <-done:
						finishing = true // one more read for what is left
					}
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	rg.Wait()
	for i, n := range counts {
		if !lags[i] && n != publishers*per {
			t.Errorf("reader %d read %d of %d events without lagging", i, n, publishers*per)
		}
		subs[i].Close()
	}
	if b.Subscribers() != 0 {
		t.Fatal("subscribers left")
	}
}

func TestBrokerHistoryIsBoundedInBytesAndReleased(t *testing.T) {
	b := NewBroker()
	big := func(n int) []Event {
		out := make([]Event, n)
		for i := range out {
			out[i] = Event{Component: &v1.ComponentInstance{Id: fmt.Sprint(i), Image: string(make([]byte, 10_000))}}
		}
		return out
	}
	b.SetHistoryBytes(200_000)
	b.SetRetainBytes(0)
	slow, fast := b.Subscribe(), b.Subscribe()
	b.Publish(big(3))
	if h := b.HeldBytes(); h <= 0 || h > 200_000 {
		t.Fatalf("holds %d bytes", h)
	}
	b.Publish(big(20)) // far over the byte bound
	if h := b.HeldBytes(); h > 200_000 {
		t.Fatalf("holds %d bytes, over the bound", h)
	}
	if _, lagged := slow.Read(nil, 100); !lagged {
		t.Fatal("the slow reader lost events without being told")
	}
	got, lagged := fast.Read(nil, 100)
	if !lagged && len(got) == 0 {
		t.Fatal("the fast reader got nothing")
	}
	// Once every reader has read everything, nothing is held.
	for {
		got, _ := fast.Read(nil, 100)
		if len(got) == 0 {
			break
		}
	}
	_, _ = slow.Read(nil, 100)
	if h := b.HeldBytes(); h != 0 {
		t.Fatalf("holds %d bytes that every reader has read", h)
	}
	b.Publish(big(2))
	slow.Close()
	fast.Close()
	if h := b.HeldBytes(); h != 0 {
		t.Fatalf("holds %d bytes with no subscriber", h)
	}
}

func TestBrokerResumesWhileItHoldsTheEvents(t *testing.T) {
	b := NewBroker()
	b.SetHistory(8)
	b.Publish(events(0, 3)) // nobody subscribed: retained for resuming
	first := b.Last() - 2
	s, ok := b.Resume(first) // after event 0
	if !ok {
		t.Fatal("could not resume inside the history")
	}
	got, lagged := s.Read(nil, 100)
	if lagged || fmt.Sprint(ids(got)) != "[1 2]" || got[0].Seq != first+1 {
		t.Fatalf("resumed with %v lagged %v", ids(got), lagged)
	}
	s.Close()
	if s, ok := b.Resume(b.Last()); !ok {
		t.Fatal("could not resume at the newest event")
	} else if got, _ := s.Read(nil, 100); len(got) != 0 {
		t.Fatalf("resumed at the newest event and read %v", ids(got))
	} else {
		s.Close()
	}
	if _, ok := b.Resume(b.Last() + 1); ok {
		t.Fatal("resumed after an event not yet published")
	}
	if _, ok := b.Resume(first - 1_000_000); ok {
		t.Fatal("resumed at a number from before this broker began")
	}
	b.Publish(events(3, 10)) // the ring of 8 lets 0..4 go
	if _, ok := b.Resume(first); ok {
		t.Fatal("resumed although events after it were released")
	}
	if s, ok := b.Resume(b.Last() - 3); !ok {
		t.Fatal("could not resume inside the history")
	} else if got, _ := s.Read(nil, 100); fmt.Sprint(ids(got)) != "[10 11 12]" {
		t.Fatalf("resumed with %v", ids(got))
	} else {
		s.Close()
	}

	// Beyond the retained bytes, what every reader has read is let go.
	b.SetRetainBytes(0)
	if _, ok := b.Resume(b.Last() - 1); ok || b.HeldBytes() != 0 {
		t.Fatalf("retains %d bytes with a retention of 0", b.HeldBytes())
	}
}

// Two brokers number their events apart, so a number from one does not
// resume at the other.
func TestBrokerNumbersAreItsOwn(t *testing.T) {
	a := NewBroker()
	a.Publish(events(0, 5))
	time.Sleep(time.Millisecond)
	b := NewBroker()
	b.Publish(events(0, 5))
	if _, ok := b.Resume(a.Last()); ok {
		t.Fatal("a broker resumed at another's number")
	}
}

// A reader of whole runs takes nothing at the start of a run until the run
// is whole, and reads as Read does in the middle of one.
func TestBrokerReadsWholeRuns(t *testing.T) {
	b := NewBroker()
	// align reads single events until the reader is at a run's start, or
	// is not.
	align := func(sub *Subscription, start bool) {
		for (sub.Next()%4 == 0) != start {
			b.Publish(events(100, 1))
			if got, _ := sub.Read(nil, 1); len(got) != 1 {
				t.Fatal("no event to align with")
			}
		}
	}
	mid := b.Subscribe()
	defer mid.Close()
	align(mid, false)
	b.Publish(events(0, 2))
	if got, lagged, held := mid.ReadRuns(nil, 100, 4); lagged || held != 0 || fmt.Sprint(ids(got)) != "[0 1]" {
		t.Fatalf("in the middle of a run: read %v, held %d", ids(got), held)
	}
	aligned := b.Subscribe()
	defer aligned.Close()
	align(aligned, true)
	select {
	case <-aligned.Ready:
	default:
	}
	b.Publish(events(200, 3))
	if got, _, held := aligned.ReadRuns(nil, 100, 4); len(got) != 0 || held != 3 {
		t.Fatalf("a run of 3 of 4: read %v, held %d", ids(got), held)
	}
	select {
	case <-aligned.Ready: // set by the publish
	default:
		t.Fatal("Ready not set by the publish")
	}
	select {
	case <-aligned.Ready:
		t.Fatal("holding back set Ready: its reader would spin")
	default:
	}
	b.Publish(events(203, 6))
	if got, _, held := aligned.ReadRuns(nil, 100, 4); fmt.Sprint(ids(got)) != "[200 201 202 203 204 205 206 207]" || held != 0 {
		t.Fatalf("two whole runs: read %v, held %d", ids(got), held)
	}
	if got, _, held := aligned.ReadRuns(nil, 100, 4); len(got) != 0 || held != 1 {
		t.Fatalf("a run of 1 of 4: read %v, held %d", ids(got), held)
	}
	// max still bounds the read; what is held back Read takes.
	b.Publish(events(209, 7))
	if got, _, _ := aligned.ReadRuns(nil, 2, 4); fmt.Sprint(ids(got)) != "[208 209]" {
		t.Fatalf("read %v", ids(got))
	}
	if got, _ := aligned.Read(nil, 100); fmt.Sprint(ids(got)) != "[210 211 212 213 214 215]" {
		t.Fatalf("read %v", ids(got))
	}
}
