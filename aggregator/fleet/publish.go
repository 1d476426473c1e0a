package fleet

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/aggregator/query"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Publisher publishes an aggregator's answers into the fleet bucket.
type Publisher struct {
	Conn Conn
	// Store is the aggregator's state.
	Store *state.Store
	// Heartbeat is how often every cluster's key is put again, so that a
	// fleet view sees the aggregator alive (5s).
	Heartbeat time.Duration
	// Flush is how long changes are gathered before they are published
	// (100ms).
	Flush time.Duration
	// Sweep is how often every node is compared with what was published,
	// for changes that reach no watch event (a node's agent state, its
	// process count) (10s).
	Sweep time.Duration
	// CreateBucket creates the bucket when it is missing, with Replicas
	// copies (development and demos; in production the bucket is made
	// once, by whoever runs NATS).
	CreateBucket bool
	Replicas     int

	// Puts counts the keys put; Synced is set once a full resync has
	// completed on the current connection.
	Puts   atomic.Int64
	Synced atomic.Bool

	published map[string][32]byte // key → hash of the value put in this session
	failed    atomic.Pointer[error]
}

func (p *Publisher) defaults() {
	p.Conn.defaults()
	if p.Heartbeat <= 0 {
		p.Heartbeat = 5 * time.Second
	}
	if p.Flush <= 0 {
		p.Flush = 100 * time.Millisecond
	}
	if p.Sweep <= 0 {
		p.Sweep = 10 * time.Second
	}
	if p.Replicas <= 0 {
		p.Replicas = 1
	}
}

// Run publishes until ctx ends. After any failure it reconnects and
// publishes everything again, removing the keys of its clusters that no
// longer exist.
func (p *Publisher) Run(ctx context.Context) error {
	p.defaults()
	log := p.Conn.Logger
	if p.Conn.Name == "" {
		return errors.New("a fleet publisher needs a name (--fleet-name)")
	}
	nc, err := p.Conn.connect(func(err error) { p.failed.Store(&err) })
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	repeat(ctx, log, "fleet publishing interrupted; resyncing", func(ctx context.Context) error {
		defer p.Synced.Store(false)
		return p.session(ctx, js)
	})
	return nil
}

func (p *Publisher) bucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, p.Conn.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) && p.CreateBucket {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: p.Conn.Bucket, History: 1, Replicas: p.Replicas,
			Storage: jetstream.MemoryStorage, Description: "kubeatlas fleet: clusters and nodes as their aggregators answer them"})
	}
	if err != nil {
		return nil, fmt.Errorf("opening bucket %q: %w", p.Conn.Bucket, err)
	}
	return kv, nil
}

type nodeRef struct{ cluster, node string }

// session publishes everything, then changes, until a put fails.
func (p *Publisher) session(ctx context.Context, js jetstream.JetStream) error {
	kv, err := p.bucket(ctx, js)
	if err != nil {
		return err
	}
	sub := p.Store.Broker().Subscribe()
	defer sub.Close()
	p.published = map[string][32]byte{}
	if err := p.resync(ctx, kv); err != nil {
		return err
	}
	p.Synced.Store(true)
	p.Conn.Logger.Info("fleet: published every cluster", "bucket", p.Conn.Bucket, "keys", len(p.published))
	flush := time.NewTicker(p.Flush)
	defer flush.Stop()
	beat := time.NewTicker(p.Heartbeat)
	defer beat.Stop()
	sweep := time.NewTicker(p.Sweep)
	defer sweep.Stop()
	dirty := map[nodeRef]bool{}
	var buf []state.Event
	for {
		if e := p.failed.Swap(nil); e != nil {
			return *e
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Ready:
			events, lagged := sub.Read(buf[:0], 4096)
			if lagged {
				if err := p.sweep(ctx, kv); err != nil {
					return err
				}
				continue
			}
			for _, ev := range events {
				switch {
				case ev.IsComponent():
					cluster, node, _ := ev.Where()
					dirty[nodeRef{cluster, node}] = true
				case ev.Finding != nil:
					dirty[nodeRef{ev.Finding.Cluster, ev.Finding.Node}] = true
				}
			}
			buf = events
		case <-flush.C:
			if len(dirty) == 0 {
				continue
			}
			view := p.Store.View()
			for ref := range dirty {
				if err := p.publishRef(ctx, kv, view, ref); err != nil {
					return err
				}
				delete(dirty, ref)
			}
		case <-beat.C:
			view := p.Store.View()
			for c := range view.Clusters(nil, "") {
				if err := p.putCluster(ctx, kv, view, c); err != nil {
					return err
				}
			}
		case <-sweep.C:
			if err := p.sweep(ctx, kv); err != nil {
				return err
			}
		}
	}
}

// publishRef publishes one node, or its cluster when the node is "".
func (p *Publisher) publishRef(ctx context.Context, kv jetstream.KeyValue, view *state.View, ref nodeRef) error {
	c, _ := view.Cluster(nil, ref.cluster)
	if c == nil {
		return nil // the sweep removes what is gone
	}
	if ref.node == "" {
		return p.putCluster(ctx, kv, view, c)
	}
	n, _ := view.Node(nil, ref.cluster, ref.node)
	if n == nil {
		return p.delete(ctx, kv, nodeKey(ref.cluster, ref.node))
	}
	return p.putNode(ctx, kv, view, n)
}

// resync puts every cluster and node, then deletes the keys of its
// clusters that name nothing any more.
func (p *Publisher) resync(ctx context.Context, kv jetstream.KeyValue) error {
	if err := p.sweep(ctx, kv); err != nil {
		return err
	}
	view := p.Store.View()
	for c := range view.Clusters(nil, "") {
		keys, err := kv.ListKeysFiltered(ctx, clusterPrefix(c.Name))
		if err != nil {
			return fmt.Errorf("listing the keys of cluster %s: %w", c.Name, err)
		}
		var stale []string
		for k := range keys.Keys() {
			if _, ok := p.published[k]; !ok {
				stale = append(stale, k)
			}
		}
		_ = keys.Stop()
		for _, k := range stale {
			if err := p.delete(ctx, kv, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweep publishes every cluster and node whose record changed, and deletes
// the keys of nodes and clusters that are gone.
func (p *Publisher) sweep(ctx context.Context, kv jetstream.KeyValue) error {
	view := p.Store.View()
	live := map[string]bool{}
	for c := range view.Clusters(nil, "") {
		live[clusterKey(c.Name)] = true
		if _, ok := p.published[clusterKey(c.Name)]; !ok {
			if err := p.putCluster(ctx, kv, view, c); err != nil {
				return err
			}
		}
		for n := range view.NodesOf(nil, c.Name) {
			live[nodeKey(c.Name, n.Name)] = true
			if err := p.putNode(ctx, kv, view, n); err != nil {
				return err
			}
		}
	}
	for k := range p.published {
		if !live[k] {
			if err := p.delete(ctx, kv, k); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Publisher) putCluster(ctx context.Context, kv jetstream.KeyValue, view *state.View, c *state.Cluster) error {
	rec := &v1.FleetCluster{Cluster: query.ClusterProto(view, c), Publisher: p.Conn.Name, PublishedAt: timestamppb.Now()}
	for f := range view.FindingsOn(nil, c.Name, "") {
		rec.Findings = append(rec.Findings, f.Finding)
	}
	// A cluster's key is put every heartbeat: its age is the news.
	return p.put(ctx, kv, clusterKey(c.Name), rec, true)
}

func (p *Publisher) putNode(ctx context.Context, kv jetstream.KeyValue, view *state.View, n *state.Node) error {
	node := proto.CloneOf(query.NodeProto(view, n))
	// What changes with every heartbeat is left out, so that an unchanged
	// node is not put again.
	node.LastSeen = nil
	if node.ClockSkew != nil {
		node.ClockSkew = durationpb.New(node.ClockSkew.AsDuration().Round(time.Second))
	}
	if node.Identity != nil {
		node.Identity = proto.CloneOf(node.Identity)
		node.Identity.WallClock = nil
	}
	rec := &v1.FleetNode{Node: node}
	for c := range view.ComponentsOn(nil, n.Cluster, n.Name) {
		rec.Components = append(rec.Components, c.Instance())
	}
	for f := range view.FindingsOn(nil, n.Cluster, n.Name) {
		rec.Findings = append(rec.Findings, f.Finding)
	}
	return p.put(ctx, kv, nodeKey(n.Cluster, n.Name), rec, false)
}

func (p *Publisher) put(ctx context.Context, kv jetstream.KeyValue, key string, rec proto.Message, always bool) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(rec)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if old, ok := p.published[key]; ok && old == sum && !always {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := kv.Put(pctx, key, data); err != nil {
		delete(p.published, key)
		return fmt.Errorf("putting %s: %w", key, err)
	}
	p.published[key] = sum
	p.Puts.Add(1)
	return nil
}

func (p *Publisher) delete(ctx context.Context, kv jetstream.KeyValue, key string) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := kv.Delete(pctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	delete(p.published, key)
	return nil
}
