package state

import (
	"testing"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func TestCommitPublishesAndAbortDoesNot(t *testing.T) {
	s, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	sub := s.Broker().Subscribe()
	defer sub.Close()
	inst := &v1.ComponentInstance{Id: "n1/kubelet", Cluster: "c", Node: "n1", Component: v1.ComponentKubelet}

	// Aborted: nothing is stored, nothing is published.
	txn := s.WriteTxn()
	if err := txn.Insert(TableComponents, NewComponent(inst)); err != nil {
		t.Fatal(err)
	}
	txn.Abort()
	if evs, _ := sub.Read(nil, 10); len(evs) != 0 {
		t.Fatalf("an aborted transaction published %d events", len(evs))
	}
	if raw, _ := s.Snapshot().First(TableComponents, IndexID, "c/n1/kubelet"); raw != nil {
		t.Fatal("an aborted transaction stored a row")
	}

	// Committed: stored, published once, the table's index moves.
	before := s.LatestIndex()
	txn = s.WriteTxn()
	defer txn.Abort() // after Commit, does nothing
	if err := txn.Insert(TableComponents, NewComponent(inst)); err != nil {
		t.Fatal(err)
	}
	txn.Commit()
	evs, lagged := sub.Read(nil, 10)
	if lagged || len(evs) != 1 || evs[0].Type != v1.WatchEventType_WATCH_EVENT_TYPE_ADDED || evs[0].Component.Id != inst.Id {
		t.Fatalf("published %v (lagged %v)", evs, lagged)
	}
	if s.LatestIndex() != before+1 {
		t.Fatalf("index %d, want %d", s.LatestIndex(), before+1)
	}
	raw, _ := s.Snapshot().First(TableIndex, IndexID, TableComponents)
	if raw == nil || raw.(*IndexEntry).Value != before+1 {
		t.Fatalf("index row %v", raw)
	}

	// A transaction that changes nothing publishes nothing and keeps the index.
	txn = s.WriteTxn()
	txn.Commit()
	if evs, _ := sub.Read(nil, 10); len(evs) != 0 || s.LatestIndex() != before+1 {
		t.Fatal("an empty transaction published or moved the index")
	}

	// Deleting publishes DELETED.
	txn = s.WriteTxn()
	if _, err := txn.DeleteAll(TableComponents, IndexID, "c/n1/kubelet"); err != nil {
		t.Fatal(err)
	}
	txn.Commit()
	if evs, _ := sub.Read(nil, 10); len(evs) != 1 || evs[0].Type != v1.WatchEventType_WATCH_EVENT_TYPE_DELETED {
		t.Fatalf("delete published %v", evs)
	}
}
