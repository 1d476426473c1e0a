package state

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestBacklogWaitEndsWhenItClears(t *testing.T) {
	var nilBacklog *Backlog
	nilBacklog.Set(true)
	if nilBacklog.Busy() || nilBacklog.Wait(context.Background(), time.Hour) {
		t.Fatal("a nil backlog is always clear")
	}
	var b Backlog
	if b.Busy() || b.Wait(context.Background(), time.Hour) {
		t.Fatal("a new backlog is clear, and waiting on it returns at once")
	}
	b.Set(true)
	b.Set(true) // setting it again keeps the same waiters
	if !b.Busy() || b.Periods() != 1 {
		t.Fatalf("busy %v, %d periods once set", b.Busy(), b.Periods())
	}
	if start := time.Now(); !b.Wait(context.Background(), 20*time.Millisecond) || time.Since(start) < 20*time.Millisecond {
		t.Fatal("a wait on a busy backlog must last its time and report it still busy")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if !b.Wait(ctx, time.Hour) {
		t.Fatal("a cancelled wait reports the backlog still busy")
	}
	var wg sync.WaitGroup
	stillBusy := make([]bool, 4)
	for i := range stillBusy {
		wg.Go(func() { stillBusy[i] = b.Wait(context.Background(), time.Hour) })
	}
	time.Sleep(10 * time.Millisecond)
	b.Set(false)
	wg.Wait() // would take an hour if clearing did not wake them
	for i, busy := range stillBusy {
		if busy {
			t.Fatalf("waiter %d saw the backlog busy after it cleared", i)
		}
	}
	b.Set(true)
	if !b.Wait(context.Background(), time.Millisecond) || b.Periods() != 2 {
		t.Fatalf("busy again after clearing: %d periods", b.Periods())
	}
}

func TestBrokerRingGrowsAndKeepsItsOrder(t *testing.T) {
	b := NewBroker()
	b.SetRetainBytes(0)
	b.SetHistory(3 * initialRing)
	s := b.Subscribe()
	defer s.Close()
	// Published in uneven steps, so that the ring grows with events held
	// across its end.
	total := 0
	for _, n := range []int{initialRing - 5, 10, initialRing, 7, initialRing - 12} {
		b.Publish(events(total, n))
		total += n
	}
	if len(b.ring) != 3*initialRing {
		t.Fatalf("ring of %d, want it grown to its bound %d", len(b.ring), 3*initialRing)
	}
	got, lagged := s.Read(nil, 10*initialRing)
	if lagged || len(got) != total {
		t.Fatalf("read %d of %d, lagged %v", len(got), total, lagged)
	}
	for i, e := range got {
		if e.Component.Id != fmt.Sprint(i) {
			t.Fatalf("event %d is %s", i, e.Component.Id)
		}
	}
	// At its bound, the ring no longer grows: the oldest go.
	b.Publish(events(total, 3*initialRing+1))
	if len(b.ring) != 3*initialRing {
		t.Fatalf("ring grew past its bound to %d", len(b.ring))
	}
	if _, lagged := s.Read(nil, 1); !lagged {
		t.Fatal("one more event than the history holds must be lost")
	}
}

func TestBrokerWaitingAndFill(t *testing.T) {
	b := NewBroker()
	b.SetRetainBytes(0)
	b.SetHistory(100)
	s := b.Subscribe()
	defer s.Close()
	if n, age := s.Waiting(); n != 0 || age != 0 {
		t.Fatalf("nothing published: waiting %d, age %v", n, age)
	}
	b.Publish(events(0, 10))
	time.Sleep(20 * time.Millisecond)
	b.Publish(events(10, 15))
	n, age := s.Waiting()
	if n != 25 || age < 20*time.Millisecond {
		t.Fatalf("waiting %d (want 25), oldest %v old (want at least 20ms)", n, age)
	}
	if f := b.Fill(); f < 0.25 || f > 0.26 {
		t.Fatalf("25 of 100 events held: fill %v", f)
	}
	_, _ = s.Read(nil, 10)
	if n, age := s.Waiting(); n != 15 || age >= 20*time.Millisecond {
		t.Fatalf("after reading the first 10: waiting %d, oldest %v old", n, age)
	}
	_, _ = s.Read(nil, 100)
	if n, _ := s.Waiting(); n != 0 || b.Fill() != 0 {
		t.Fatalf("all read: waiting %d, fill %v", n, b.Fill())
	}
	// The byte bound counts too.
	b.SetHistoryBytes(int64(10 * eventCost(events(0, 1)[0])))
	b.Publish(events(0, 5))
	if f := b.Fill(); f < 0.49 || f > 0.51 {
		t.Fatalf("5 events of a 10-event byte bound: fill %v", f)
	}
}

// Forms count against the history when they are computed, and no longer
// once the event is let go of, even when one is computed after that.
func TestBrokerCountsFormsAsTheyAreMade(t *testing.T) {
	b := NewBroker()
	b.SetRetainBytes(0)
	b.SetHistory(16)
	s, behind := b.Subscribe(), b.Subscribe()
	b.Publish(events(0, 4))
	base := b.HeldBytes()
	if want := 4 * eventCost(events(0, 1)[0]); base != want {
		t.Fatalf("held %d bytes for 4 events, want %d", base, want)
	}
	got, _ := s.Read(nil, 4)
	made := 0
	for range 3 { // asked for by three subscribers: made and counted once
		got[0].Form(0, func() (any, int) { made++; return "a", 1000 })
		got[0].GroupForm(1, func() (any, int) { made++; return "run", 5000 })
		got[1].Form(1, func() (any, int) { made++; return "b", 300 })
	}
	if made != 3 {
		t.Fatalf("forms made %d times, want 3", made)
	}
	if held := b.HeldBytes(); held != base+6300 {
		t.Fatalf("held %d, want %d", held, base+6300)
	}
	// Every subscriber has read them (or left): they go, forms and all.
	s.Close()
	if held := b.HeldBytes(); held != base+6300 {
		t.Fatalf("held %d while a subscriber has yet to read, want %d", held, base+6300)
	}
	behind.Close()
	if held := b.HeldBytes(); held != 0 {
		t.Fatalf("held %d after every event went, want 0", held)
	}
	// A form made from an event the history let go of is not its to count.
	got[2].Form(0, func() (any, int) { return "late", 777 })
	if held := b.HeldBytes(); held != 0 {
		t.Fatalf("held %d after a late form, want 0", held)
	}
	// An event that was never published computes its form every time and
	// counts nothing.
	lone := events(9, 1)[0]
	calls := 0
	for range 2 {
		lone.Form(0, func() (any, int) { calls++; return "x", 10 })
	}
	if calls != 2 || b.HeldBytes() != 0 {
		t.Fatalf("an unpublished event's form: made %d times, held %d", calls, b.HeldBytes())
	}
}

// Forms made while events come and go, some lost to slow subscribers,
// under the race detector: once every event is let go of, nothing is
// counted any more.
func TestBrokerFormCountsSettleToZero(t *testing.T) {
	b := NewBroker()
	b.SetRetainBytes(0)
	b.SetHistory(64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		s := b.Subscribe()
		wg.Go(func() {
			defer s.Close()
			for finishing := false; ; {
				select {
				case <-s.Ready:
				case <-done:
					finishing = true
				}
				for {
					got, lagged := s.Read(nil, 50)
					for i, e := range got {
						e.Form(i%EventForms, func() (any, int) { return nil, 100 })
						e.GroupForm(i%GroupForms, func() (any, int) { return nil, 1000 })
					}
					if len(got) == 0 && !lagged {
						break
					}
				}
				if finishing {
					return
				}
			}
		})
	}
	for i := range 2000 {
		b.Publish(events(i, 1))
	}
	close(done)
	wg.Wait()
	if held := b.HeldBytes(); held != 0 {
		t.Fatalf("held %d bytes after every subscriber left", held)
	}
}
