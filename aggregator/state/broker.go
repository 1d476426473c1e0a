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

// Broker fans committed changes out to subscribers. Publishing never blocks:
// a subscriber whose buffer is full loses events, is marked lagging and is
// told so on its Lagged channel; it must then re-read the state.
type Broker struct {
	mu      sync.Mutex
	subs    map[*Subscription]struct{}
	dropped atomic.Uint64
}

// NewBroker returns a broker with no subscribers.
func NewBroker() *Broker { return &Broker{subs: map[*Subscription]struct{}{}} }

// Subscription receives events in commit order.
type Subscription struct {
	// Events carries batches of events as they are committed.
	Events chan []Event
	// Lagged receives a value when events were dropped for this subscriber.
	Lagged chan struct{}
	b      *Broker
}

// Subscribe returns a subscription with room for buffer batches.
func (b *Broker) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = 256
	}
	s := &Subscription{Events: make(chan []Event, buffer), Lagged: make(chan struct{}, 1), b: b}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Close removes the subscription.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
}

// Publish hands events to every subscriber without blocking.
func (b *Broker) Publish(events []Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) == 0 {
		return
	}
	fs := make([]forms, len(events))
	for i := range events {
		events[i].forms = &fs[i]
	}
	for s := range b.subs {
		select {
		case s.Events <- events:
		default:
			b.dropped.Add(uint64(len(events)))
			select {
			case s.Lagged <- struct{}{}:
			default:
			}
		}
	}
}

// Dropped returns how many events were dropped for slow subscribers.
func (b *Broker) Dropped() uint64 { return b.dropped.Load() }

// Subscribers returns the number of subscribers.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}
