package state

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Event is one change to a component instance or a finding.
type Event struct {
	Type v1.WatchEventType
	// Component is the instance changed; nil when Row is set.
	Component *v1.ComponentInstance
	// Row is, for an instance its row keeps encoded, the row: Instance
	// decodes it, once for every subscriber.
	Row     *Component
	Finding *v1.Finding
	// Seq is the event's position in the change feed, set when it is
	// published: unique to this process, increasing by one per event. Events
	// that were not published (the current state sent to a new watcher) have
	// none.
	Seq uint64
	// forms holds what subscribers derive from the event (its wire
	// encodings), computed once for all of them.
	forms *forms
	// size is what the event costs the history, in bytes.
	size int64
}

// EventForms is how many derived forms an event can hold.
const EventForms = 2

type forms struct {
	once [EventForms]sync.Once
	val  [EventForms]any
	// decoded is Row's instance, decoded once.
	decodeOnce sync.Once
	decoded    *v1.ComponentInstance
	// group holds forms derived from a run of events that begins with
	// this one (see GroupForm), allocated when first asked for.
	group atomic.Pointer[groupForms]
	// b is the broker whose history holds the event, charged for each form
	// when it is computed; charged is what they cost, or released once
	// the history let the event go.
	b       *Broker
	charged atomic.Int64
}

// released marks forms whose event the history let go of: forms computed
// after that are no longer the history's to count.
const released = math.MinInt64

// charge adds n bytes of newly computed forms to the history's cost.
func (f *forms) charge(n int) {
	if f == nil || f.b == nil || n <= 0 {
		return
	}
	for {
		x := f.charged.Load()
		if x < 0 {
			return
		}
		if f.charged.CompareAndSwap(x, x+int64(n)) {
			f.b.bytes.Add(int64(n))
			return
		}
	}
}

// release marks the event let go of and returns what its forms cost.
func (f *forms) release() int64 {
	if f == nil {
		return 0
	}
	return max(f.charged.Swap(released), 0)
}

// IsComponent reports whether the event is a component instance's.
func (e Event) IsComponent() bool { return e.Component != nil || e.Row != nil }

// Instance returns the instance a component event is about. One kept
// encoded is decoded, once for every subscriber of a published event.
func (e Event) Instance() *v1.ComponentInstance {
	if e.Row == nil {
		return e.Component
	}
	if e.forms == nil {
		return e.Row.Instance()
	}
	e.forms.decodeOnce.Do(func() {
		e.forms.decoded = e.Row.Instance()
		// A decoded instance holds about three times its encoding.
		e.forms.charge(3 * e.Row.EncodingSize(false))
	})
	return e.forms.decoded
}

// Where returns a component event's cluster, node and component.
func (e Event) Where() (cluster, node, component string) {
	if e.Row != nil {
		return e.Row.Cluster, e.Row.Node, e.Row.Component
	}
	if e.Component != nil {
		return e.Component.Cluster, e.Component.Node, e.Component.Component
	}
	return "", "", ""
}

// GroupForms is how many forms of a run of events one event can hold.
const GroupForms = 6

type groupForms struct {
	once [GroupForms]sync.Once
	val  [GroupForms]any
}

// GroupForm returns a form derived from a run of published events that
// begins with e (the encoding of the run as one part of a batch), calling
// make for it only once however many subscribers ask, as Form does for one
// event. Callers agree on which runs they ask for: the run of GroupEvents
// events whose first sequence number is a multiple of GroupEvents. It returns
// nil for an event that was not published. make returns the form and the
// bytes it holds, which the history counts while it holds the event.
func (e Event) GroupForm(slot int, make func() (any, int)) any {
	if e.forms == nil {
		return nil
	}
	g := e.forms.group.Load()
	if g == nil {
		e.forms.group.CompareAndSwap(nil, &groupForms{})
		g = e.forms.group.Load()
	}
	g.once[slot].Do(func() {
		var n int
		g.val[slot], n = make()
		e.forms.charge(n)
	})
	return g.val[slot]
}

// GroupEvents is the length of the runs of events GroupForm is asked for.
const GroupEvents = 256

// Form returns the event's derived form number slot, calling make for it only
// once however many subscribers ask. Events that were not published compute
// it on every call. make returns the form and the bytes it holds, which the
// history counts while it holds the event.
func (e Event) Form(slot int, make func() (any, int)) any {
	if e.forms == nil {
		v, _ := make()
		return v
	}
	e.forms.once[slot].Do(func() {
		var n int
		e.forms.val[slot], n = make()
		e.forms.charge(n)
	})
	return e.forms.val[slot]
}

// DefaultHistory is how many recent events the broker keeps for subscribers
// that fall behind: four times a 10,000-node fleet's whole first load, or
// a burst of 10,000 node updates that watchers of a fleet view hold back
// (query.Server.IngestFirst) with room to spare. The ring that holds them
// grows as it fills, from initialRing.
const DefaultHistory = 1 << 19

// initialRing is the size of a new broker's ring.
const initialRing = 1 << 12

// DefaultHistoryBytes bounds the bytes the history holds, whatever the
// number of events: a few large instances must not hold more memory than
// many small ones.
const DefaultHistoryBytes = 256 << 20

// DefaultRetainBytes is how much of the newest history the broker keeps even
// when every subscriber has read it, or when there is none, so that a watcher
// whose connection broke can resume where it stopped instead of reading the
// whole state again.
const DefaultRetainBytes = 32 << 20

// eventCost is what one event holds while it is in the history when it is
// published: the message, kept alive even after the store moved on, and the
// event's own bookkeeping. The forms subscribers derive from it (Form,
// GroupForm, Instance) are counted as they are computed.
func eventCost(e Event) int64 {
	var n int
	switch {
	case e.Row != nil:
		n = e.Row.EncodingSize(false)
	case e.Component != nil:
		n = proto.Size(e.Component)
	case e.Finding != nil:
		n = proto.Size(e.Finding)
	}
	return int64(n) + eventOverhead
}

// eventOverhead is an event's ring slot and its forms' bookkeeping.
const eventOverhead = int64(unsafe.Sizeof(Event{}) + unsafe.Sizeof(forms{}) + 8)

// Broker fans committed changes out to subscribers. It keeps the most recent
// events in one ring shared by every subscriber, and each subscriber reads
// from it at its own pace with its own cursor, so publishing costs the same
// however many subscribers there are and never blocks. A subscriber that
// falls further behind than the ring holds loses events and is told so by
// Read; it must then re-read the state.
//
// Every event has a sequence number. They begin at the broker's creation time
// in nanoseconds, so numbers from an earlier process, or from another
// replica started at another time, are not mistaken for this one's.
//
// The history is bounded in events and in bytes. Beyond the newest
// RetainBytes, kept for watchers that resume, it holds only what some
// subscriber has yet to read: older events every subscriber has read are
// released at once.
type Broker struct {
	mu          sync.Mutex
	ring        []Event
	published   []time.Duration // when each ring slot's event was published, since created
	created     time.Time
	first       uint64       // sequence number of the first event ever published
	next        uint64       // sequence number of the next event published
	tail        uint64       // sequence number of the oldest event still held
	bytes       atomic.Int64 // cost of the events held, their forms included
	maxBytes    int64
	retainBytes int64
	maxEvents   int
	subs        map[*Subscription]struct{}
	dropped     atomic.Uint64
}

// NewBroker returns a broker with no subscribers that keeps at most
// DefaultHistory events and DefaultHistoryBytes, and retains
// DefaultRetainBytes for resuming watchers.
func NewBroker() *Broker {
	start := uint64(time.Now().UnixNano())
	return &Broker{subs: map[*Subscription]struct{}{}, ring: make([]Event, initialRing), published: make([]time.Duration, initialRing),
		maxEvents: DefaultHistory, created: time.Now(), maxBytes: DefaultHistoryBytes, retainBytes: DefaultRetainBytes,
		first: start, next: start, tail: start}
}

// growLocked doubles the ring, up to maxEvents, keeping the events held at
// their sequence numbers' places in the larger ring. It reports whether
// the ring grew.
func (b *Broker) growLocked() bool {
	if len(b.ring) >= b.maxEvents {
		return false
	}
	n := min(2*len(b.ring), b.maxEvents)
	ring, published := make([]Event, n), make([]time.Duration, n)
	old := uint64(len(b.ring))
	for seq := b.tail; seq < b.next; seq++ {
		ring[seq%uint64(n)] = b.ring[seq%old]
		published[seq%uint64(n)] = b.published[seq%old]
	}
	b.ring, b.published = ring, published
	return true
}

// SetRetainBytes changes how many bytes of read history are kept for
// resuming watchers; 0 keeps only what some subscriber has yet to read.
func (b *Broker) SetRetainBytes(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.retainBytes = max(n, 0)
	b.releaseLocked(b.neededLocked())
}

// SetHistoryBytes changes the byte bound of the history; like SetHistory it
// is meant for set-up.
func (b *Broker) SetHistoryBytes(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.maxBytes = max(n, 1)
	b.releaseLocked(b.tail)
}

// HeldBytes returns the cost of the events the history holds now.
func (b *Broker) HeldBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes.Load()
}

// releaseLocked lets go of events before seq while more than the retained
// bytes are held, and of the oldest events while the history is over its
// byte bound.
func (b *Broker) releaseLocked(seq uint64) {
	for b.tail < b.next && ((b.tail < seq && b.bytes.Load() > b.retainBytes) || b.bytes.Load() > b.maxBytes) {
		b.releaseOldestLocked()
	}
}

// releaseOldestLocked lets go of the oldest event held.
func (b *Broker) releaseOldestLocked() {
	slot := &b.ring[b.tail%uint64(len(b.ring))]
	b.bytes.Add(-slot.size - slot.forms.release())
	*slot = Event{}
	b.tail++
}

// neededLocked returns the oldest sequence number a subscriber has yet to read.
func (b *Broker) neededLocked() uint64 {
	need := b.next
	for s := range b.subs {
		need = min(need, s.cursor)
	}
	return need
}

// SetHistory changes how many events the broker keeps. It forgets the events
// kept so far, so it is meant for set-up, before anyone subscribes.
func (b *Broker) SetHistory(n int) {
	if n < 1 {
		n = 1
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ; b.tail < b.next; b.tail++ {
		b.ring[b.tail%uint64(len(b.ring))].forms.release()
	}
	b.maxEvents = n
	b.ring = make([]Event, min(n, initialRing))
	b.published = make([]time.Duration, len(b.ring))
	b.bytes.Store(0)
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
	return b.subscribeLocked(b.next)
}

func (b *Broker) subscribeLocked(cursor uint64) *Subscription {
	s := &Subscription{Ready: make(chan struct{}, 1), cursor: cursor, b: b}
	b.subs[s] = struct{}{}
	if cursor < b.next {
		s.notify()
	}
	return s
}

// Last returns the sequence number of the newest event published: the
// position a watcher that has seen everything so far resumes after.
func (b *Broker) Last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.next - 1
}

// Resume returns a subscription that reads the events published after the
// one numbered seq, or false when the history no longer holds all of them
// (or seq is not one of this broker's numbers).
func (b *Broker) Resume(seq uint64) (*Subscription, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if seq < b.first-1 || seq >= b.next || seq+1 < b.tail {
		return nil, false
	}
	return b.subscribeLocked(seq + 1), true
}

// Close removes the subscription. Closing twice, or a nil subscription,
// does nothing.
func (s *Subscription) Close() {
	if s == nil {
		return
	}
	b := s.b
	b.mu.Lock()
	delete(b.subs, s)
	b.releaseLocked(b.neededLocked())
	b.mu.Unlock()
}

// Waiting returns how many events the subscription has yet to read, and
// how long ago the oldest of them still held was published (0 when none).
func (s *Subscription) Waiting() (n uint64, age time.Duration) {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.cursor >= b.next {
		return 0, 0
	}
	oldest := max(s.cursor, b.tail)
	if oldest < b.next {
		age = time.Since(b.created) - b.published[oldest%uint64(len(b.ring))]
	}
	return b.next - s.cursor, age
}

// Fill returns how full the history is, from 0 to 1: the larger of its
// share of the event bound and of the byte bound. A subscriber that lets
// its unread events fill the history loses the oldest.
func (b *Broker) Fill() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(float64(b.next-b.tail)/float64(b.maxEvents), float64(b.bytes.Load())/float64(b.maxBytes))
}

// Next returns the sequence number of the next event Read returns.
func (s *Subscription) Next() uint64 {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.cursor
}

// Read appends to buf up to max of the events published since the last read,
// in order. lagged reports that events were lost because the subscriber fell
// further behind than the broker's history; reading then resumes with the
// events published after this call.
func (s *Subscription) Read(buf []Event, max int) (events []Event, lagged bool) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.readLocked(buf, max)
}

// readLocked is Read, with the broker's lock held.
func (s *Subscription) readLocked(buf []Event, max int) (events []Event, lagged bool) {
	b := s.b
	size := uint64(len(b.ring))
	if s.cursor < b.tail {
		b.dropped.Add(b.next - s.cursor)
		s.cursor = b.next
		b.releaseLocked(b.neededLocked())
		return buf, true
	}
	oldest := s.cursor == b.tail
	for ; s.cursor < b.next && max > 0; s.cursor, max = s.cursor+1, max-1 {
		buf = append(buf, b.ring[s.cursor%size])
	}
	if oldest {
		// This reader held the oldest events; whatever no one needs goes.
		b.releaseLocked(b.neededLocked())
	}
	if s.cursor < b.next {
		// More is waiting than was asked for: make sure the reader comes back.
		s.notify()
	}
	return buf, false
}

// ReadRuns is Read for a reader that takes whole runs of events, those of
// run events whose first sequence number is a multiple of run. At the start
// of a run it reads whole runs only, and if there is none yet it reads
// nothing and reports how many events it holds back. Elsewhere it reads as
// Read does.
func (s *Subscription) ReadRuns(buf []Event, max int, run uint64) (events []Event, lagged bool, held int) {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.cursor >= b.tail && s.cursor%run == 0 {
		whole := (b.next - s.cursor) / run * run
		if whole == 0 {
			return buf, false, int(b.next - s.cursor)
		}
		max = min(max, int(whole))
	}
	events, lagged = s.readLocked(buf, max)
	return events, lagged, 0
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
	fs := make([]forms, len(events))
	now := time.Since(b.created)
	for i := range events {
		ev := events[i]
		fs[i].b = b
		ev.forms = &fs[i]
		ev.size = eventCost(ev)
		ev.Seq = b.next
		if b.next-b.tail == uint64(len(b.ring)) && !b.growLocked() {
			// The history is full: the oldest event goes.
			b.releaseOldestLocked()
		}
		size := uint64(len(b.ring))
		b.ring[b.next%size] = ev
		b.published[b.next%size] = now
		b.bytes.Add(ev.size)
		b.next++
	}
	b.releaseLocked(b.neededLocked())
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
