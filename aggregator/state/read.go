package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// Cluster returns a cluster's row, or nil.
func (s *Store) Cluster(ws memdb.WatchSet, name string) (*Cluster, error) {
	txn := s.db.Txn(false)
	ch, raw, err := txn.FirstWatch(TableClusters, IndexID, name)
	if err != nil {
		return nil, fmt.Errorf("reading cluster %s: %w", name, err)
	}
	ws.Add(ch)
	if raw == nil {
		return nil, nil
	}
	return raw.(*Cluster), nil
}
