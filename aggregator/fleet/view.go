package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// View materialises the fleet bucket into a state store.
type View struct {
	Conn    Conn
	Applier *apply.Applier
	// StaleAfter and UnreachableAfter are how old a cluster's record may
	// grow before the cluster is marked STALE (15s) and UNREACHABLE (5m).
	StaleAfter, UnreachableAfter time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// OnSynced, if set, is called each time the bucket's current contents
	// have been applied, with how long that took.
	OnSynced func(time.Duration)

	// Synced is set while the view holds the bucket's contents and
	// follows its changes.
	Synced atomic.Bool
	// Backlog, if set, is marked busy while records wait in the bucket
	// watch, and clear once none has waited for backlogIdle.
	Backlog *state.Backlog
	// CommitWait is how long a record that arrives alone waits for others
	// to share its transaction (DefaultCommitWait; negative: none).
	CommitWait time.Duration

	// Applied counts the records applied, Refused those refused.
	Applied, Refused atomic.Int64
	// Commits counts the transactions that applied them.
	Commits atomic.Int64
}

func (v *View) defaults() {
	v.Conn.defaults()
	if v.StaleAfter <= 0 {
		v.StaleAfter = 15 * time.Second
	}
	if v.UnreachableAfter <= 0 {
		v.UnreachableAfter = 5 * time.Minute
	}
	if v.Now == nil {
		v.Now = time.Now
	}
	if v.CommitWait == 0 {
		v.CommitWait = DefaultCommitWait
	}
}

// Run follows the bucket until ctx ends.
func (v *View) Run(ctx context.Context) error {
	v.defaults()
	log := v.Conn.Logger
	nc, err := v.Conn.connect(nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	go v.freshness(ctx)
	repeat(ctx, log, "fleet view: following the bucket failed; starting again", func(ctx context.Context) error {
		defer v.Synced.Store(false)
		return v.follow(ctx, js)
	})
	return nil
}

// freshness marks clusters stale and unreachable as their records age.
func (v *View) freshness(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed, err := v.Applier.SetFleetFreshness(v.Now(), v.StaleAfter, v.UnreachableAfter)
			if err != nil {
				v.Conn.Logger.Error("fleet view: marking freshness", "error", err)
			}
			for _, c := range changed {
				row, _ := v.Applier.Store().View().Cluster(nil, c)
				if row != nil {
					v.Conn.Logger.Info("fleet view: cluster freshness changed", "cluster", c, "freshness", row.Freshness.String(),
						"publisher", row.Publisher, "updated", row.UpdatedAt)
				}
			}
		}
	}
}

// follow applies the bucket's current contents, drops what the store holds
// beyond them, then applies changes until the watch ends.
func (v *View) follow(ctx context.Context, js jetstream.JetStream) error {
	start := time.Now()
	kv, err := js.KeyValue(ctx, v.Conn.Bucket)
	if err != nil {
		return fmt.Errorf("opening bucket %q: %w", v.Conn.Bucket, err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watching bucket %q: %w", v.Conn.Bucket, err)
	}
	defer func() { _ = w.Stop() }()
	defer v.Backlog.Set(false)
	// idle fires when no records have waited for backlogIdle since the
	// last batch of several was applied.
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer idle.Stop()
	seen := map[string]bool{}
	initial := true
	var pending []jetstream.KeyValueEntry
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-idle.C:
			if len(w.Updates()) > 0 {
				// Records still wait: the backlog lasts.
				idle.Reset(backlogIdle)
				continue
			}
			v.Backlog.Set(false)
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("the watch ended")
			}
			// Records that wait behind this one are applied with it, in
			// one transaction, up to maxBatch.
			batch := append(pending[:0], e)
		drain:
			for e != nil && len(batch) < maxBatch {
				select {
				case next, ok := <-w.Updates():
					if !ok {
						break drain
					}
					batch = append(batch, next)
					e = next
				default:
					break drain
				}
			}
			backlog := len(batch) > 1
			if !backlog && e != nil && v.CommitWait > 0 {
				// A record that came alone waits for others to share
				// its transaction.
				batch = gather(ctx, w.Updates(), batch, v.CommitWait)
			}
			pending = batch
			if backlog {
				// Records waited behind the first: the view has a backlog.
				v.Backlog.Set(true)
			}
			for len(batch) > 0 {
				n := 0
				for n < len(batch) && batch[n] != nil {
					if initial {
						seen[batch[n].Key()] = true
					}
					n++
				}
				v.applyBatch(batch[:n])
				if n == len(batch) {
					break
				}
				// The current contents are in: anything else held is gone.
				if initial {
					initial = false
					if err := v.dropUnseen(seen); err != nil {
						return err
					}
					v.Synced.Store(true)
					took := time.Since(start)
					v.Conn.Logger.Info("fleet view: caught up with the bucket", "keys", len(seen), "took", took.Round(time.Millisecond))
					// A key per node, each holding its record's subject:
					// not needed again while this watch lasts.
					seen = nil
					if v.OnSynced != nil {
						v.OnSynced(took)
					}
				}
				batch = batch[n+1:]
			}
			clear(pending)
			if backlog {
				// Counted from the end of the batch, which can take
				// longer than backlogIdle to apply.
				idle.Reset(backlogIdle)
			}
		}
	}
}

// gather adds to batch the records that arrive within wait, up to
// maxBatch, stopping after the marker (nil) that ends the initial values.
func gather(ctx context.Context, updates <-chan jetstream.KeyValueEntry, batch []jetstream.KeyValueEntry, wait time.Duration) []jetstream.KeyValueEntry {
	t := time.NewTimer(wait)
	defer t.Stop()
	for len(batch) < maxBatch {
		select {
		case <-ctx.Done():
			return batch
		case <-t.C:
			return batch
		case e, ok := <-updates:
			if !ok {
				return batch
			}
			batch = append(batch, e)
			if e == nil {
				return batch
			}
		}
	}
	return batch
}

// DefaultCommitWait is how long a record that arrives alone waits for
// others to share its transaction. Each transaction copies the paths to
// what it changes in the store's trees; records that share one share those
// copies, and allocate less (about a tenth at 100,000 nodes). Watchers see
// a change up to this much later.
const DefaultCommitWait = 100 * time.Millisecond

// backlogIdle is how long no records must wait behind another before the
// backlog counts as cleared. It is a bound on waiting watchers only while
// the view falls behind: records that come one at a time, however often,
// never mark it busy.
const backlogIdle = 20 * time.Millisecond

// maxBatch bounds the records applied in one transaction.
const maxBatch = 256

// applyBatch applies records in one transaction. Should a write fail, the
// batch is dropped and its records are applied one by one, so that one
// record cannot take the others with it.
func (v *View) applyBatch(es []jetstream.KeyValueEntry) {
	if len(es) == 0 {
		return
	}
	b := v.Applier.FleetBatch()
	defer b.Abort()
	applied, refused := 0, 0
	for _, e := range es {
		if err := v.apply(b, e); err != nil {
			if !errors.Is(err, errWrite) || len(es) == 1 {
				refused++
				v.Conn.Logger.Warn("fleet view: refused a record", "key", e.Key(), "error", err)
				continue
			}
			b.Abort()
			for _, e := range es {
				v.applyBatch([]jetstream.KeyValueEntry{e})
			}
			return
		}
		applied++
	}
	b.Commit()
	v.Commits.Add(1)
	v.Applied.Add(int64(applied))
	v.Refused.Add(int64(refused))
}

// errWrite marks a record whose checks passed but whose writes failed.
var errWrite = errors.New("writing the record")

// apply writes one entry into the store. A record must name what its key
// names: a publisher allowed to write one cluster's keys cannot put rows of
// another cluster into the view.
func (v *View) apply(b *apply.FleetBatch, e jetstream.KeyValueEntry) error {
	cluster, node, ok := parseKey(e.Key())
	if !ok {
		return errors.New("not a kubeatlas key")
	}
	if !state.ValidName(cluster) || (node != "" && !state.ValidName(node)) {
		return errors.New("the key names an invalid cluster or node")
	}
	if e.Operation() != jetstream.KeyValuePut {
		if node == "" {
			return written(b.DeleteCluster(cluster))
		}
		return written(b.DeleteNode(cluster, node))
	}
	if node == "" {
		var rec v1.FleetCluster
		if err := proto.Unmarshal(e.Value(), &rec); err != nil {
			return fmt.Errorf("decoding: %w", err)
		}
		if rec.GetCluster().GetName() != cluster {
			return fmt.Errorf("the record is for cluster %q", rec.GetCluster().GetName())
		}
		for _, f := range rec.Findings {
			if f.Cluster != cluster || f.Node != "" {
				return fmt.Errorf("a finding of %s/%s under cluster %s's key", f.Cluster, f.Node, cluster)
			}
		}
		updated := e.Created()
		return written(b.PutCluster(&rec, updated, apply.FreshnessAt(v.Now().Sub(updated), v.StaleAfter, v.UnreachableAfter)))
	}
	// The instances stay encoded: they are checked, not decoded (see
	// state.NewEncodedComponents, which also refuses an instance of
	// another cluster or node).
	var rec v1.FleetNode
	var raw [][]byte
	err := eachMessageField(e.Value(), func(num protowire.Number, v []byte) error {
		switch num {
		case fleetNodeNode:
			if rec.Node == nil {
				rec.Node = &v1.Node{}
			}
			return proto.UnmarshalOptions{Merge: true}.Unmarshal(v, rec.Node)
		case fleetNodeComponents:
			raw = append(raw, v[:len(v):len(v)])
		case fleetNodeFindings:
			f := &v1.Finding{}
			if err := proto.Unmarshal(v, f); err != nil {
				return err
			}
			rec.Findings = append(rec.Findings, f)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	if rec.GetNode().GetCluster() != cluster || rec.GetNode().GetName() != node {
		return fmt.Errorf("the record is for node %s/%s", rec.GetNode().GetCluster(), rec.GetNode().GetName())
	}
	for _, f := range rec.Findings {
		if f.Cluster != cluster || f.Node != node {
			return fmt.Errorf("a finding of %s/%s under node %s/%s's key", f.Cluster, f.Node, cluster, node)
		}
	}
	shareStrings(rec.Node.ProtoReflect())
	return written(b.PutNode(cluster, rec.Node, raw, rec.Findings))
}

// written marks an error of the batch's writes (see applyBatch).
func written(err error) error {
	if err != nil {
		return fmt.Errorf("%w: %w", errWrite, err)
	}
	return nil
}

// FleetNode's field numbers.
var (
	fleetNodeFields     = (&v1.FleetNode{}).ProtoReflect().Descriptor().Fields()
	fleetNodeNode       = fleetNodeFields.ByName("node").Number()
	fleetNodeComponents = fleetNodeFields.ByName("components").Number()
	fleetNodeFindings   = fleetNodeFields.ByName("findings").Number()
)

// eachMessageField calls f with each length-delimited field of an encoded
// message, in order; other fields are skipped. A message field that occurs
// twice is merged by its caller, as protobuf does.
func eachMessageField(b []byte, f func(num protowire.Number, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if err := f(num, v); err != nil {
				return err
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
	}
	return nil
}

// dropUnseen removes clusters and nodes whose keys were not in the bucket
// when the watch began: they were deleted while this view was away.
func (v *View) dropUnseen(seen map[string]bool) error {
	view := v.Applier.Store().View()
	var nodes [][2]string
	var clusters []string
	for c := range view.Clusters(nil, "") {
		if !seen[clusterKey(c.Name)] {
			clusters = append(clusters, c.Name)
		}
		for n := range view.NodesOf(nil, c.Name) {
			if !seen[nodeKey(c.Name, n.Name)] {
				nodes = append(nodes, [2]string{c.Name, n.Name})
			}
		}
	}
	for _, n := range nodes {
		if err := v.Applier.DeleteFleetNode(n[0], n[1]); err != nil {
			return err
		}
	}
	for _, c := range clusters {
		stillHasNodes := false
		for range view.NodesOf(nil, c) {
			stillHasNodes = true
			break
		}
		if !stillHasNodes {
			if err := v.Applier.DeleteFleetCluster(c); err != nil {
				return err
			}
		}
	}
	return nil
}
