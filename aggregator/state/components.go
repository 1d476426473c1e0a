package state

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

	"github.com/google/btree"
	"github.com/hashicorp/go-memdb"
	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Component instances are the store's largest table: a fleet view holds
// over a million. Their storage is laid out for that:
//
//   - One go-memdb row per node holds the node's instances (nodeComponents),
//     so the radix trees carry one entry per node, not four per instance.
//   - The two orders that queries page through, by cluster and by
//     component, are copy-on-write B-trees of row pointers. One go-memdb row
//     (componentOrder) holds both, and each write transaction clones them
//     lazily, so a view keeps seeing the orders of its own snapshot and
//     costs a few bytes an instance.
//   - An instance published by another aggregator stays in its encoded
//     form and is decoded when read (Instance).

// Component is one component instance's row.
type Component struct {
	Cluster, Node string
	// Component is the instance's component name, InstanceID its ID.
	Component, InstanceID string
	// enc holds the node's encoded instances, when the row keeps its
	// instance encoded: its basic fields are enc.buf[basicFrom:basicTo],
	// the rest is detailFrom:detailTo of enc's detail. inst is the decoded
	// instance, when the row does not keep it encoded.
	enc                                      *nodeEncoding
	basicFrom, basicTo, detailFrom, detailTo uint32
	inst                                     *v1.ComponentInstance
	// sizes caches the wire size of the instance in each view (slot by the
	// caller), computed on first use: a row's instance never changes.
	sizes [2]atomic.Int32
	// rank is the component's rank, or pivotRank on a search key, whose
	// InstanceID is then the whole sort key it stands for.
	rank int32
}

// nodeEncoding is a node's encoded instances as its rows keep them. buf
// holds each instance's basic fields, all that the basic view sends (and
// that `where` reads), one instance after another; then, from detail on,
// the rest of each instance (its flags, its evidence and any field
// protobuf would keep as unknown), one after another, in one s2 block when
// compressed. A node's instances repeat flag names, paths and images, and
// the block holds their detail in a fraction of its size; reads that need
// the detail decompress the node's block.
type nodeEncoding struct {
	buf        []byte
	detail     int
	compressed bool
}

const pivotRank = -1

func pivot(key string) *Component { return &Component{InstanceID: key, rank: pivotRank} }

// NewComponent wraps an instance with its keys.
func NewComponent(inst *v1.ComponentInstance) *Component {
	return &Component{Cluster: inst.Cluster, Node: inst.Node, Component: inst.Component, InstanceID: inst.Id,
		rank: int32(v1.ComponentRank(inst.Component)), inst: inst}
}

// NewEncodedComponents wraps a node's encoded instances in rows that keep
// them encoded: they hold a fraction of the decoded form's memory and
// decode when read. Each encoding is checked as protobuf would check it
// (well formed, strings valid UTF-8) and must name cluster and node, an ID
// and a component. The rows are one allocation, their IDs and component
// names are read in place, and raw is not kept: the rows hold the node's
// instances in a nodeEncoding of their own.
func NewEncodedComponents(cluster, node string, raw [][]byte) ([]*Component, error) {
	bs, ds := getScratch(0), getScratch(0)
	defer putScratch(bs)
	defer putScratch(ds)
	basic, detail := (*bs)[:0], (*ds)[:0]
	// Each row's basic fields and detail, from and to.
	spans := make([][4]uint32, len(raw))
	for i, b := range raw {
		if err := checkEncoded(b, instanceDescriptor, 0); err != nil {
			return nil, fmt.Errorf("instance %d: %w", i, err)
		}
		bFrom, dFrom := len(basic), len(detail)
		eachSplitField(b, func(field []byte, isBasic bool) {
			if isBasic {
				basic = append(basic, field...)
			} else {
				detail = append(detail, field...)
			}
		})
		if len(basic)+len(detail) > math.MaxUint32 {
			return nil, fmt.Errorf("the node's instances take over 4 GiB")
		}
		spans[i] = [4]uint32{uint32(bFrom), uint32(len(basic)), uint32(dFrom), uint32(len(detail))}
	}
	*bs, *ds = basic, detail // grown, for the next node
	basicLen := len(basic)
	rows := make([]Component, len(raw))
	out := make([]*Component, len(raw))
	enc := &nodeEncoding{detail: basicLen}
	var z []byte
	if len(detail) > 0 {
		zs := getScratch(s2.MaxEncodedLen(len(detail)))
		defer putScratch(zs)
		if z = s2.Encode(*zs, detail); len(z) < len(detail) {
			enc.compressed = true
		} else {
			z = detail
		}
	}
	enc.buf = make([]byte, 0, basicLen+len(z))
	enc.buf = append(enc.buf, basic...)
	for i := range raw {
		from, to := spans[i][0], spans[i][1]
		var c, n, comp, id string
		_ = eachField(enc.buf[from:to], func(num protowire.Number, v []byte, _ uint64) error {
			switch num {
			case fieldCluster:
				c = alias(v)
			case fieldNode:
				n = alias(v)
			case fieldComponent:
				comp = alias(v)
			case fieldID:
				id = alias(v)
			}
			return nil
		})
		switch {
		case c != cluster || n != node:
			return nil, fmt.Errorf("instance %d is of %s/%s, not of %s/%s", i, c, n, cluster, node)
		case id == "":
			return nil, fmt.Errorf("instance %d has no id", i)
		case comp == "":
			return nil, fmt.Errorf("instance %s has no component", id)
		}
		rows[i] = Component{Cluster: cluster, Node: node, Component: internComponent(comp), InstanceID: id,
			rank: int32(v1.ComponentRank(comp)), enc: enc, basicFrom: from, basicTo: to,
			detailFrom: spans[i][2], detailTo: spans[i][3]}
		out[i] = &rows[i]
	}
	enc.buf = append(enc.buf, z...)
	return out, nil
}

// scratchPool holds buffers for building and decompressing encodings.
var scratchPool sync.Pool

func getScratch(n int) *[]byte {
	if b, ok := scratchPool.Get().(*[]byte); ok && cap(*b) >= n {
		return b
	}
	b := make([]byte, 0, max(n, 4096))
	return &b
}

func putScratch(b *[]byte) {
	if cap(*b) <= 1<<20 {
		scratchPool.Put(b)
	}
}

var instanceDescriptor = (&v1.ComponentInstance{}).ProtoReflect().Descriptor()

// checkEncoded checks an encoded message as protobuf's decoder would: every
// field well formed, every string of a known field valid UTF-8, every
// message field a valid message. A known field with a wire type its kind
// cannot have is an unknown field to protobuf, and is let be.
func checkEncoded(b []byte, md protoreflect.MessageDescriptor, depth int) error {
	if depth > 32 {
		return errors.New("messages nested too deep")
	}
	fields := md.Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		val := b[:m]
		b = b[m:]
		fd := fields.ByNumber(num)
		if fd == nil || typ != protowire.BytesType {
			continue
		}
		v, _ := protowire.ConsumeBytes(val)
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				return fmt.Errorf("field %s: invalid UTF-8", fd.Name())
			}
		case protoreflect.MessageKind:
			if err := checkEncoded(v, fd.Message(), depth+1); err != nil {
				return fmt.Errorf("field %s: %w", fd.Name(), err)
			}
		case protoreflect.BytesKind:
		default:
			// Packed numbers: each must be whole.
			if fd.IsList() {
				if err := checkPacked(v, fd.Kind()); err != nil {
					return fmt.Errorf("field %s: %w", fd.Name(), err)
				}
			}
		}
	}
	return nil
}

// checkPacked checks a packed list of numbers of kind k.
func checkPacked(b []byte, k protoreflect.Kind) error {
	for len(b) > 0 {
		var n int
		switch k {
		case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
			_, n = protowire.ConsumeFixed32(b)
		case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
			_, n = protowire.ConsumeFixed64(b)
		default:
			_, n = protowire.ConsumeVarint(b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

// internComponent returns the known component name equal to name, so that
// a million rows share a few dozen strings.
func internComponent(name string) string {
	if i := v1.ComponentRank(name); i < len(v1.Components) {
		return v1.Components[i]
	}
	return name
}

// Encoded reports whether the row keeps its instance encoded.
func (c *Component) Encoded() bool { return c.enc != nil }

// ID is the instance's identity in the store: "<cluster>/<instance id>".
func (c *Component) ID() string { return c.Cluster + "/" + c.InstanceID }

// basic returns the encoding of the instance's basic fields.
func (c *Component) basic() []byte { return c.enc.buf[c.basicFrom:c.basicTo:c.basicTo] }

// appendDetail appends the rest of the instance's encoding to b.
func (c *Component) appendDetail(b []byte) []byte {
	if c.detailTo == c.detailFrom {
		return b
	}
	if !c.enc.compressed {
		return append(b, c.enc.buf[c.enc.detail:][c.detailFrom:c.detailTo]...)
	}
	scratch := getScratch(0)
	defer putScratch(scratch)
	d := c.enc.appendDetail((*scratch)[:0])
	*scratch = d
	if len(d) < int(c.detailTo) {
		return b // made by NewEncodedComponents; this cannot happen
	}
	return append(b, d[c.detailFrom:c.detailTo]...)
}

// appendDetail appends the node's detail, decompressed, to b.
func (e *nodeEncoding) appendDetail(b []byte) []byte {
	block := e.buf[e.detail:]
	if !e.compressed {
		return append(b, block...)
	}
	n, err := s2.DecodedLen(block)
	if err != nil {
		return b
	}
	b = slices.Grow(b, n)
	d, err := s2.Decode(b[len(b):len(b)+n], block)
	if err != nil {
		return b
	}
	return b[:len(b)+len(d)]
}

// Instance returns the instance. A row that keeps it encoded decodes it on
// each call; callers that need it more than once keep the result. The
// result is never to be changed.
func (c *Component) Instance() *v1.ComponentInstance {
	if c.enc == nil {
		return c.inst
	}
	scratch := getScratch(c.EncodingSize(false))
	defer putScratch(scratch)
	b, _ := c.AppendEncoding((*scratch)[:0], false)
	in := &v1.ComponentInstance{}
	if err := proto.Unmarshal(b, in); err != nil {
		// Checked when it was written; this cannot happen. Say what is known.
		return &v1.ComponentInstance{Cluster: c.Cluster, Node: c.Node, Component: c.Component, Id: c.InstanceID}
	}
	*scratch = b
	return in
}

// InstanceBasic returns the instance, perhaps without its flags and
// evidence: a row that keeps its encoding decodes the rest only, and its
// strings share the encoding's memory, which makes it several times
// cheaper than a whole decode. The result is never to be changed.
func (c *Component) InstanceBasic() *v1.ComponentInstance {
	if c.enc == nil {
		return c.inst
	}
	in, err := decodeBasic(c.basic())
	if err != nil {
		return c.Instance()
	}
	return in
}

// AppendEncoding appends the instance's encoding to b, without its flags and
// evidence when basic, and reports whether the row keeps one (if not, b is
// returned as it was). It decodes nothing. The encoding holds the fields
// the instance was published with, the basic ones first: protobuf reads
// it as it read the published one.
func (c *Component) AppendEncoding(b []byte, basic bool) ([]byte, bool) {
	if c.enc == nil {
		return b, false
	}
	b = append(b, c.basic()...)
	if !basic {
		b = c.appendDetail(b)
	}
	return b, true
}

// EncodingSize returns the size of what AppendEncoding appends, without
// building it: a watcher's event or a page is then built in one allocation.
func (c *Component) EncodingSize(basic bool) int {
	if c.enc == nil {
		return 0
	}
	n := int(c.basicTo - c.basicFrom)
	if !basic {
		n += int(c.detailTo - c.detailFrom)
	}
	return n
}

// eachSplitField calls f with each field of an encoded instance, tag
// included, and whether the basic view keeps it: the instance's known
// fields but its flags and evidence, each with its own wire type, which is
// what decodeBasic reads.
func eachSplitField(b []byte, f func(field []byte, basic bool)) {
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if m < 0 {
			return
		}
		f(rest[:n+m], num <= fieldID && num != fieldFlags && num != fieldEvidence && basicWireTypeOK(num, typ == protowire.BytesType) &&
			(typ == protowire.BytesType || typ == protowire.VarintType))
		rest = rest[n+m:]
	}
}

// The field numbers decodeBasic reads (a test checks them against the
// descriptors).
const (
	fieldCluster        = 1
	fieldNode           = 2
	fieldComponent      = 3
	fieldImplementation = 4
	fieldHow            = 5
	fieldOwner          = 6
	fieldPod            = 7
	fieldContainer      = 8
	fieldContainerID    = 9
	fieldPid            = 10
	fieldSystemdUnit    = 11
	fieldManifestPath   = 12
	fieldImage          = 13
	fieldVersion        = 14
	fieldHasProcess     = 15
	fieldRestartCount   = 16
	fieldFlags          = 17
	fieldEvidence       = 18
	fieldID             = 19

	fieldRefKind      = 1
	fieldRefNamespace = 2
	fieldRefName      = 3
	fieldRefUID       = 4
)

// basicWireTypeOK reports whether a field decodeBasic reads has the wire
// type its number gives: length-delimited (delimited) or varint.
func basicWireTypeOK(num protowire.Number, delimited bool) bool {
	switch num {
	case fieldHow, fieldPid, fieldHasProcess, fieldRestartCount:
		return !delimited
	}
	return delimited
}

// decodeBasic decodes an encoded ComponentInstance that was checked when it
// was written (proto.Unmarshal), leaving out its flags and evidence. Its
// strings share b's memory, which must never change.
func decodeBasic(b []byte) (*v1.ComponentInstance, error) {
	in := &v1.ComponentInstance{}
	err := eachField(b, func(num protowire.Number, v []byte, x uint64) error {
		var err error
		if !basicWireTypeOK(num, v != nil) {
			// A wire type the field cannot have: protobuf keeps such a
			// field as unknown, and so it is left out here.
			return nil
		}
		switch num {
		case fieldCluster:
			in.Cluster = alias(v)
		case fieldNode:
			in.Node = alias(v)
		case fieldComponent:
			in.Component = alias(v)
		case fieldImplementation:
			in.Implementation = alias(v)
		case fieldHow:
			in.How = v1.DeploymentKind(int32(x))
		case fieldOwner:
			in.Owner, err = decodeRef(in.Owner, v)
		case fieldPod:
			in.Pod, err = decodeRef(in.Pod, v)
		case fieldContainer:
			in.Container = alias(v)
		case fieldContainerID:
			in.ContainerId = alias(v)
		case fieldPid:
			in.Pid = int32(x)
		case fieldSystemdUnit:
			in.SystemdUnit = alias(v)
		case fieldManifestPath:
			in.ManifestPath = alias(v)
		case fieldImage:
			in.Image = alias(v)
		case fieldVersion:
			in.Version = alias(v)
		case fieldHasProcess:
			in.HasProcess = x != 0
		case fieldRestartCount:
			in.RestartCount = int32(x)
		case fieldID:
			in.Id = alias(v)
		}
		return err
	})
	return in, err
}

// decodeRef decodes an ObjectRef into ref (a new one if nil): a message
// field that occurs twice is merged, as protobuf does.
func decodeRef(ref *v1.ObjectRef, b []byte) (*v1.ObjectRef, error) {
	if ref == nil {
		ref = &v1.ObjectRef{}
	}
	err := eachField(b, func(num protowire.Number, v []byte, _ uint64) error {
		if v == nil {
			return nil // every field of an ObjectRef is a string
		}
		switch num {
		case fieldRefKind:
			ref.Kind = alias(v)
		case fieldRefNamespace:
			ref.Namespace = alias(v)
		case fieldRefName:
			ref.Name = alias(v)
		case fieldRefUID:
			ref.Uid = alias(v)
		}
		return nil
	})
	return ref, err
}

// eachField calls f with each field of an encoded message: v for a
// length-delimited field, x for a varint; other wire types are skipped.
func eachField(b []byte, f func(num protowire.Number, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var m int
		switch typ {
		case protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(b); m >= 0 {
				if err := f(num, v, 0); err != nil {
					return err
				}
			}
		case protowire.VarintType:
			var x uint64
			if x, m = protowire.ConsumeVarint(b); m >= 0 {
				if err := f(num, nil, x); err != nil {
					return err
				}
			}
		default:
			m = protowire.ConsumeFieldValue(num, typ, b)
		}
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
	}
	return nil
}

// alias returns b as a string sharing its memory.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// Size returns the wire size of the instance in view slot, computing it
// with size the first time.
func (c *Component) Size(slot int, size func() int) int {
	if n := c.sizes[slot].Load(); n > 0 {
		return int(n)
	}
	n := size()
	c.sizes[slot].Store(int32(min(n, 1<<30)))
	return n
}

// ComponentKeyPrefix is the start of the ByCluster sort key of a cluster's
// instances ("" component: all of them) or of one role's.
func ComponentKeyPrefix(cluster, component string) string {
	if component == "" {
		return cluster + "\x00"
	}
	return cluster + "\x00" + strconv.Itoa(10+v1.ComponentRank(component)) + component + "\x00"
}

// ClusterSortKey is the row's key in the ByCluster order:
// "<cluster>\x00<rank><component>\x00<node>\x00<id>".
func (c *Component) ClusterSortKey() string { return string(c.appendClusterKey(nil)) }

// FleetSortKey is the row's key in the ByComponent order:
// "<component>\x00<cluster>\x00<node>\x00<id>".
func (c *Component) FleetSortKey() string { return string(c.appendFleetKey(nil)) }

// AppendSortKey appends the row's key in an order to b.
func (c *Component) AppendSortKey(order ComponentOrder, b []byte) []byte {
	if order == ByComponent {
		return c.appendFleetKey(b)
	}
	return c.appendClusterKey(b)
}

func (c *Component) appendClusterKey(b []byte) []byte {
	if c.rank == pivotRank {
		return append(b, c.InstanceID...)
	}
	b = append(b, c.Cluster...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(10+c.rank), 10)
	b = append(b, c.Component...)
	b = append(b, 0)
	b = append(b, c.Node...)
	b = append(b, 0)
	return append(b, c.InstanceID...)
}

func (c *Component) appendFleetKey(b []byte) []byte {
	if c.rank == pivotRank {
		return append(b, c.InstanceID...)
	}
	b = append(b, c.Component...)
	b = append(b, 0)
	b = append(b, c.Cluster...)
	b = append(b, 0)
	b = append(b, c.Node...)
	b = append(b, 0)
	return append(b, c.InstanceID...)
}

// The orders compare two rows field by field, which gives the order of
// their sort keys as long as no field but the last holds a '\x00' (the
// separator, and the least byte): cluster and node names never do, and a
// row whose component name does is compared by its whole key (slow). The
// rank is two digits in the key, so comparing it as a number is the same.
// A search key is compared by its whole key.

func lessByCluster(a, b *Component) bool {
	if a.slow() || b.slow() {
		var ka, kb [256]byte
		return bytes.Compare(a.appendClusterKey(ka[:0]), b.appendClusterKey(kb[:0])) < 0
	}
	switch {
	case a.Cluster != b.Cluster:
		return a.Cluster < b.Cluster
	case a.rank != b.rank:
		return a.rank < b.rank
	case a.Component != b.Component:
		return a.Component < b.Component
	case a.Node != b.Node:
		return a.Node < b.Node
	}
	return a.InstanceID < b.InstanceID
}

func lessByComponent(a, b *Component) bool {
	if a.slow() || b.slow() {
		var ka, kb [256]byte
		return bytes.Compare(a.appendFleetKey(ka[:0]), b.appendFleetKey(kb[:0])) < 0
	}
	switch {
	case a.Component != b.Component:
		return a.Component < b.Component
	case a.Cluster != b.Cluster:
		return a.Cluster < b.Cluster
	case a.Node != b.Node:
		return a.Node < b.Node
	}
	return a.InstanceID < b.InstanceID
}

// slow reports whether the row is compared by its whole sort key.
func (c *Component) slow() bool {
	return c.rank == pivotRank || strings.IndexByte(c.Component, 0) >= 0
}

func init() {
	if 10+len(v1.Components) > 99 {
		panic("state: a component rank must be two digits in a sort key")
	}
}

// nodeComponents is one node's component instances, by instance ID.
type nodeComponents struct {
	ID   string // NodeID
	Rows []*Component
}

// componentOrder holds every instance in the two orders queries read.
type componentOrder struct {
	ID                     string // orderID: the table's one row
	byCluster, byComponent *btree.BTreeG[*Component]
}

const orderID = "order"

// btreeDegree: nodes of up to 31 pointers, cheap to copy on write.
const btreeDegree = 16

func (r Reads) order(ws memdb.WatchSet) *componentOrder {
	raw, err := r.first(ws, "component order", tableComponentOrder, indexID, orderID)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*componentOrder)
}

func (r Reads) nodeComponents(ws memdb.WatchSet, cluster, node string) *nodeComponents {
	raw, err := r.first(ws, "components", tableComponents, indexID, NodeID(cluster, node))
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*nodeComponents)
}

// ComponentsOn iterates a node's component instances, by instance ID.
func (r Reads) ComponentsOn(ws memdb.WatchSet, cluster, node string) iter.Seq[*Component] {
	return func(yield func(*Component) bool) {
		if nc := r.nodeComponents(ws, cluster, node); nc != nil {
			for _, c := range nc.Rows {
				if !yield(c) {
					return
				}
			}
		}
	}
}

// ComponentOrder is an order of component instances.
type ComponentOrder int

const (
	// ByCluster orders by cluster, component, node (Component.ClusterSortKey).
	ByCluster ComponentOrder = iota
	// ByComponent orders by component, cluster, node (Component.FleetSortKey).
	ByComponent
)

// Components iterates the component instances in an order, from the first
// whose sort key is not before from.
func (r Reads) Components(ws memdb.WatchSet, order ComponentOrder, from string) iter.Seq[*Component] {
	return func(yield func(*Component) bool) {
		o := r.order(ws)
		if o == nil {
			return
		}
		t := o.byCluster
		if order == ByComponent {
			t = o.byComponent
		}
		visit := func(c *Component) bool { return yield(c) }
		if from == "" {
			t.Ascend(visit)
			return
		}
		t.AscendGreaterOrEqual(pivot(from), visit)
	}
}

// ComponentsWithPrefix iterates the instances whose cluster sort key starts
// with prefix ("<cluster>\x00<rank><component>\x00" for one role).
func (r Reads) ComponentsWithPrefix(ws memdb.WatchSet, prefix string) iter.Seq[*Component] {
	return func(yield func(*Component) bool) {
		var key [256]byte
		for c := range r.Components(ws, ByCluster, prefix) {
			if !bytes.HasPrefix(c.appendClusterKey(key[:0]), []byte(prefix)) || !yield(c) {
				return
			}
		}
	}
}

// componentCount is how many instances the store holds.
func (r Reads) componentCount() int {
	if o := r.order(nil); o != nil {
		return o.byCluster.Len()
	}
	return 0
}

// ownOrder returns the transaction's own copy of the orders, cloning the
// committed ones the first time: later writes change the copy in place,
// and views of earlier snapshots keep theirs.
func (t *Txn) ownOrder() (*componentOrder, error) {
	if t.order != nil {
		return t.order, nil
	}
	n := &componentOrder{ID: orderID}
	if cur := t.order0(); cur != nil {
		// Clone changes the tree it clones from; the committed trees,
		// which views read, are left alone by cloning copies of them.
		a, b := *cur.byCluster, *cur.byComponent
		n.byCluster, n.byComponent = a.Clone(), b.Clone()
	} else {
		n.byCluster = btree.NewG(btreeDegree, lessByCluster)
		n.byComponent = btree.NewG(btreeDegree, lessByComponent)
	}
	if err := t.put(tableComponentOrder, n); err != nil {
		return nil, err
	}
	t.order = n
	return n, nil
}

func (t *Txn) order0() *componentOrder { return t.Reads.order(nil) }

// ReplaceComponents makes rows a node's instances; of two rows with one ID
// the last counts. Watchers see only what changed: an old row for the same
// instance ID that same(old, new) finds equal stays. Rows that keep their
// instance encoded are compared by their encodings instead, and the new row
// replaces the old one all the same, unseen, so that the record the old one
// was read from can be freed. It returns the rows changed: put or removed.
func (t *Txn) ReplaceComponents(cluster, node string, rows []*Component, same func(old, new *Component) bool) (changed []*Component, err error) {
	replaced := false
	old := t.nodeComponents(nil, cluster, node)
	var oldRows []*Component
	if old != nil {
		oldRows = old.Rows
	}
	next := make([]*Component, 0, len(rows))
	byID := make(map[string]int, len(rows))
	for _, r := range rows {
		if r.Cluster != cluster || r.Node != node {
			return nil, fmt.Errorf("instance %s of %s/%s written to node %s/%s", r.InstanceID, r.Cluster, r.Node, cluster, node)
		}
		if i, ok := byID[r.InstanceID]; ok {
			next[i] = r
			continue
		}
		byID[r.InstanceID] = len(next)
		next = append(next, r)
	}
	slices.SortFunc(next, func(a, b *Component) int { return cmpString(a.InstanceID, b.InstanceID) })
	var ord *componentOrder
	// Merge old and new, both by instance ID.
	var cmp detailCmp
	i, j := 0, 0
	for i < len(oldRows) || j < len(next) {
		var o, n *Component
		switch {
		case j == len(next) || (i < len(oldRows) && oldRows[i].InstanceID < next[j].InstanceID):
			o = oldRows[i]
			i++
		case i == len(oldRows) || next[j].InstanceID < oldRows[i].InstanceID:
			n = next[j]
			j++
		default:
			o, n = oldRows[i], next[j]
			i++
			j++
		}
		if o != nil && n != nil && o == n {
			continue
		}
		unchanged := o != nil && n != nil && (sameEncoding(o, n, &cmp) || (o.enc == nil && n.enc == nil && same != nil && same(o, n)))
		if unchanged && n.enc == nil {
			next[j-1] = o
			continue
		}
		if ord == nil {
			if ord, err = t.ownOrder(); err != nil {
				return nil, err
			}
		}
		if unchanged {
			// The new row of an unchanged encoded instance: no event.
			ord.byCluster.ReplaceOrInsert(n)
			ord.byComponent.ReplaceOrInsert(n)
			replaced = true
			continue
		}
		if o != nil {
			if n == nil || n.Component != o.Component {
				// Not the same keys: the new row does not replace it.
				ord.byCluster.Delete(o)
				ord.byComponent.Delete(o)
			}
			if n == nil {
				changed = append(changed, o)
			}
		}
		if n != nil {
			ord.byCluster.ReplaceOrInsert(n)
			ord.byComponent.ReplaceOrInsert(n)
			changed = append(changed, n)
		}
	}
	if len(changed) == 0 && !replaced {
		return nil, nil
	}
	if len(next) == 0 {
		return changed, t.del(tableComponents, old)
	}
	return changed, t.put(tableComponents, &nodeComponents{ID: t.nodeID(old, cluster, node), Rows: next})
}

// nodeID is a node's ID for its row of instances: its node row's, or else
// the old row's, so that a node's rows hold one copy of it between them.
func (t *Txn) nodeID(old *nodeComponents, cluster, node string) string {
	if n, _ := t.Node(nil, cluster, node); n != nil {
		return n.ID
	}
	if old != nil {
		return old.ID
	}
	return NodeID(cluster, node)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// componentEvents appends the instance changes between two versions of a
// node's row to events.
func componentEvents(events []Event, before, after *nodeComponents) []Event {
	var o, n []*Component
	if before != nil {
		o = before.Rows
	}
	if after != nil {
		n = after.Rows
	}
	var cmp detailCmp
	i, j := 0, 0
	for i < len(o) || j < len(n) {
		switch {
		case j == len(n) || (i < len(o) && o[i].InstanceID < n[j].InstanceID):
			events = append(events, o[i].event(v1.WatchEventType_WATCH_EVENT_TYPE_DELETED))
			i++
		case i == len(o) || n[j].InstanceID < o[i].InstanceID:
			events = append(events, n[j].event(v1.WatchEventType_WATCH_EVENT_TYPE_ADDED))
			j++
		default:
			if o[i] != n[j] && !sameEncoding(o[i], n[j], &cmp) {
				events = append(events, n[j].event(v1.WatchEventType_WATCH_EVENT_TYPE_MODIFIED))
			}
			i++
			j++
		}
	}
	return events
}

// event is a change of the row's instance.
func (c *Component) event(t v1.WatchEventType) Event {
	if c.enc != nil {
		return Event{Type: t, Row: c}
	}
	return Event{Type: t, Component: c.inst}
}

// sameEncoding reports whether two rows keep the same encoded instance.
// When their nodes' detail blocks differ, it compares the decompressed
// detail, which cmp keeps for the nodes it last saw.
func sameEncoding(a, b *Component, cmp *detailCmp) bool {
	if a.enc == nil || b.enc == nil || !bytes.Equal(a.basic(), b.basic()) || a.detailTo-a.detailFrom != b.detailTo-b.detailFrom {
		return false
	}
	if a.detailTo == a.detailFrom {
		return true
	}
	if a.detailFrom == b.detailFrom && a.enc.compressed == b.enc.compressed &&
		(a.enc == b.enc || bytes.Equal(a.enc.buf[a.enc.detail:], b.enc.buf[b.enc.detail:])) {
		return true
	}
	return bytes.Equal(cmp.detail(a), cmp.detail(b))
}

// detailCmp keeps the decompressed detail of the last two nodes
// sameEncoding compared: replacing a node compares each of its rows with
// the row it replaces.
type detailCmp struct {
	enc [2]*nodeEncoding
	d   [2][]byte
	i   int
}

// detail returns the rest of the row's encoding.
func (c *detailCmp) detail(r *Component) []byte {
	for i, e := range c.enc {
		if e == r.enc {
			return c.d[i][r.detailFrom:r.detailTo]
		}
	}
	c.i = (c.i + 1) % 2
	c.enc[c.i], c.d[c.i] = r.enc, r.enc.appendDetail(nil)
	if len(c.d[c.i]) < int(r.detailTo) {
		return nil
	}
	return c.d[c.i][r.detailFrom:r.detailTo]
}
