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

// Counts returns the number of rows in each table; the processes table
// counts process records, not node rows.
func (s *Store) Counts() map[string]int {
	txn := s.db.Txn(false)
	out := map[string]int{}
	for _, t := range []string{TableClusters, TableNodes, TableProcesses, TableManifests, TablePods, TableWorkloads, TableComponents, TableFindings} {
		it, err := txn.Get(t, IndexID)
		if err != nil {
			continue
		}
		n := 0
		for raw := it.Next(); raw != nil; raw = it.Next() {
			switch r := raw.(type) {
			case *Processes:
				n += len(r.Procs)
			case *Manifests:
				n += len(r.Manifests)
			default:
				n++
			}
		}
		out[t] = n
	}
	return out
}
