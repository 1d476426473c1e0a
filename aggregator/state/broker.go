package state

import (
	"sync"
	"sync/atomic"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Event is one change to a component instance or a finding.
type Event struct {
	Type      v1.WatchEventType
	Component *v1.ComponentInstance
	Finding   *v1.Finding
	// forms holds what subscribers derive from the event (its wire
	// encodings), computed once for all of them.
	forms *forms
}

// EventForms is how many derived forms an event can hold.
const EventForms = 2

type forms struct {
	once [EventForms]sync.Once
	val  [EventForms]any
}

// Form returns the event's derived form number slot, calling make for it only
// once however many subscribers ask. Events that were not published compute
// it on every call.
func (e Event) Form(slot int, make func() any) any {
	if e.forms == nil {
		return make()
	}
	e.forms.once[slot].Do(func() { e.forms.val[slot] = make() })
	return e.forms.val[slot]
}

// DefaultHistory is how many recent events the broker keeps for subscribers
// that fall behind: more than a 10,000-node fleet's whole first load.
const DefaultHistory = 1 << 17

// Broker fans committed changes out to subscribers. It keeps the most recent
// events in one ring shared by every subscriber, and each subscriber reads
// from it at its own pace with its own cursor, so publishing costs the same
// however many subscribers there are and never blocks. A subscriber that
// falls further behind than the ring holds loses events and is told so by
// Read; it must then re-read the state.
type Broker struct {
	mu      sync.Mutex
	ring    []Event
	next    uint64 // sequence number of the next event published
	subs    map[*Subscription]struct{}
	dropped atomic.Uint64
}

// NewBroker returns a broker with no subscribers that keeps DefaultHistory events.
func NewBroker() *Broker {
	return &Broker{subs: map[*Subscription]struct{}{}, ring: make([]Event, DefaultHistory)}
}

// SetHistory changes how many events the broker keeps. It forgets the events
// kept so far, so it is meant for set-up, before anyone subscribes.
func (b *Broker) SetHistory(n int) {
	if n < 1 {
		n = 1
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ring = make([]Event, n)
	for s := range b.subs {
		s.cursor = b.next
	}
}

// Subscription reads events in commit order.
type Subscription struct {
	// Ready receives a value when events may be waiting to be read.
	Ready  chan struct{}
	cursor uint64 // sequence number of the next event to read
	b      *Broker
}

// Subscribe returns a subscription that reads events published from now on.
func (b *Broker) Subscribe() *Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &Subscription{Ready: make(chan struct{}, 1), cursor: b.next, b: b}
	b.subs[s] = struct{}{}
	return s
}

// Close removes the subscription.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
}

// Read appends to buf up to max of the events published since the last read,
// in order. lagged reports that events were lost because the subscriber fell
// further behind than the broker's history; reading then resumes with the
// events published after this call.
func (s *Subscription) Read(buf []Event, max int) (events []Event, lagged bool) {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	size := uint64(len(b.ring))
	if b.next-s.cursor > size {
		b.dropped.Add(b.next - s.cursor)
		s.cursor = b.next
		return buf, true
	}
	for ; s.cursor < b.next && max > 0; s.cursor, max = s.cursor+1, max-1 {
		buf = append(buf, b.ring[s.cursor%size])
	}
	if s.cursor < b.next {
		// More is waiting than was asked for: make sure the reader comes back.
		s.notify()
	}
	return buf, false
}

func (s *Subscription) notify() {
	select {
	case s.Ready <- struct{}{}:
	default:
	}
}

// Publish appends events to the history and wakes every subscriber, without
// blocking.
func (b *Broker) Publish(events []Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) == 0 {
		// Nobody reads: keep only the sequence, not the events.
		b.next += uint64(len(events))
		return
	}
	fs := make([]forms, len(events))
	size := uint64(len(b.ring))
	for i := range events {
		ev := events[i]
		ev.forms = &fs[i]
		b.ring[b.next%size] = ev
		b.next++
	}
	for s := range b.subs {
		s.notify()
	}
}

// Dropped returns how many events slow subscribers lost.
func (b *Broker) Dropped() uint64 { return b.dropped.Load() }

// Subscribers returns the number of subscribers.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}
