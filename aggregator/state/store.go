package state

import (
	"fmt"
	"sync"

	"github.com/hashicorp/go-memdb"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Store is the aggregator's state. Writers use WriteTxn, its typed writes and
// Commit; readers use View (or Subscribe), whose typed reads each take a
// WatchSet first. Tables and indexes are not named outside this package.
type Store struct {
	db     *memdb.MemDB
	broker *Broker
	mu     sync.Mutex // serialises Commit's publish order with the commit order
	// counts are the rows of each of countedTables, kept by Commit under mu.
	counts [len(countedTables)]int
}

// NewStore returns an empty store.
func NewStore() (*Store, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("creating state store: %w", err)
	}
	return &Store{db: db, broker: NewBroker()}, nil
}

// Broker returns the store's change feed.
func (s *Store) Broker() *Broker { return s.broker }

// Txn is a write transaction on the store. Its Commit is the only way to
// commit, and it publishes the component and finding changes to watchers:
// the go-memdb transaction underneath is not reachable from outside state.
type Txn struct {
	Reads // reads see the transaction's own writes
	txn   *memdb.Txn
	s     *Store
	// order is the transaction's own copy of the component orders, once
	// it has changed them.
	order *componentOrder
}

// WriteTxn opens a write transaction. The caller defers Abort and calls
// Commit when done; Abort after Commit does nothing.
func (s *Store) WriteTxn() *Txn {
	txn := s.db.Txn(true)
	txn.TrackChanges()
	return &Txn{Reads: Reads{txn}, txn: txn, s: s}
}

// Abort drops the transaction's changes, unless it was committed.
func (t *Txn) Abort() { t.txn.Abort() }

// Commit commits and publishes the component and finding changes to
// watchers, in commit order.
func (t *Txn) Commit() {
	txn, s := t.txn, t.s
	changes := txn.Changes()
	if len(changes) == 0 {
		txn.Abort()
		return
	}
	var events []Event
	var delta [len(countedTables)]int
	for _, c := range changes {
		countDelta(&delta, c)
		switch c.Table {
		case tableComponents:
			var before, after *nodeComponents
			if c.Before != nil {
				before = c.Before.(*nodeComponents)
			}
			if c.After != nil {
				after = c.After.(*nodeComponents)
			}
			events = componentEvents(events, before, after)
		case tableFindings:
			events = append(events, findingEvent(c))
		}
	}
	s.mu.Lock()
	txn.Commit()
	for i, d := range delta {
		s.counts[i] += d
	}
	if len(events) > 0 {
		s.broker.Publish(events)
	}
	s.mu.Unlock()
}

// Subscribe returns a view of the state, a subscription to every change
// committed after it, and the view's position in the change feed (the
// sequence number of the last event it reflects). The three are taken
// together, so that a watcher that reads the view and then the subscription
// misses nothing and sees nothing twice.
func (s *Store) Subscribe() (*View, *Subscription, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.View(), s.broker.Subscribe(), s.broker.Last()
}

func findingEvent(c memdb.Change) Event {
	switch {
	case c.Deleted():
		return Event{Type: v1.WatchEventType_WATCH_EVENT_TYPE_DELETED, Finding: c.Before.(*Finding).Finding}
	case c.Created():
		return Event{Type: v1.WatchEventType_WATCH_EVENT_TYPE_ADDED, Finding: c.After.(*Finding).Finding}
	}
	return Event{Type: v1.WatchEventType_WATCH_EVENT_TYPE_MODIFIED, Finding: c.After.(*Finding).Finding}
}
