package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// model is what the store should hold: instances by "<cluster>/<node>/<id>".
type model map[string]*v1.ComponentInstance

func clusterKey(in *v1.ComponentInstance) string {
	return ComponentKeyPrefix(in.Cluster, in.Component) + in.Node + "\x00" + in.Id
}

func fleetKey(in *v1.ComponentInstance) string {
	return in.Component + "\x00" + in.Cluster + "\x00" + in.Node + "\x00" + in.Id
}

// checkOrders compares every read of the view's instances with the model.
func checkOrders(t *testing.T, v *View, m model, rng *rand.Rand) {
	t.Helper()
	var want []*v1.ComponentInstance
	for _, in := range m {
		want = append(want, in)
	}
	for _, o := range []struct {
		order ComponentOrder
		key   func(*v1.ComponentInstance) string
		row   func(*Component) string
	}{{ByCluster, clusterKey, (*Component).ClusterSortKey}, {ByComponent, fleetKey, (*Component).FleetSortKey}} {
		slices.SortFunc(want, func(a, b *v1.ComponentInstance) int { return strings.Compare(o.key(a), o.key(b)) })
		var got []string
		for c := range v.Components(nil, o.order, "") {
			if c.Instance().Id != c.InstanceID || o.row(c) != o.key(c.Instance()) {
				t.Fatalf("row %q holds instance %q", o.row(c), o.key(c.Instance()))
			}
			got = append(got, o.row(c))
		}
		var keys []string
		for _, in := range want {
			keys = append(keys, o.key(in))
		}
		if !slices.Equal(got, keys) {
			t.Fatalf("order %d:\n got %q\nwant %q", o.order, got, keys)
		}
		// Reading from any key starts at the first key not before it.
		for range 20 {
			from := ""
			if len(keys) > 0 {
				from = keys[rng.IntN(len(keys))]
				if rng.IntN(2) == 0 {
					from = from[:rng.IntN(len(from)+1)]
				}
			}
			i, _ := slices.BinarySearch(keys, from)
			var first []string
			for c := range v.Components(nil, o.order, from) {
				first = append(first, o.row(c))
				if len(first) == 3 {
					break
				}
			}
			if end := min(i+3, len(keys)); !slices.Equal(first, keys[i:end]) {
				t.Fatalf("from %q: got %q, want %q", from, first, keys[i:end])
			}
		}
	}
	// A role's instances within a cluster.
	for _, cluster := range []string{"a", "b"} {
		for _, comp := range []string{v1.ComponentKubelet, v1.ComponentEtcd, "csi"} {
			prefix := ComponentKeyPrefix(cluster, comp)
			var got, wantKeys []string
			for c := range v.ComponentsWithPrefix(nil, prefix) {
				got = append(got, c.ClusterSortKey())
			}
			for _, in := range want {
				if k := clusterKey(in); strings.HasPrefix(k, prefix) {
					wantKeys = append(wantKeys, k)
				}
			}
			slices.Sort(wantKeys)
			if !slices.Equal(got, wantKeys) {
				t.Fatalf("prefix %q: got %q, want %q", prefix, got, wantKeys)
			}
		}
	}
	// A node's instances, by ID.
	nodes := map[[2]string][]string{}
	for _, in := range m {
		k := [2]string{in.Cluster, in.Node}
		nodes[k] = append(nodes[k], in.Id)
	}
	for k, ids := range nodes {
		slices.Sort(ids)
		var got []string
		for c := range v.ComponentsOn(nil, k[0], k[1]) {
			got = append(got, c.InstanceID)
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("node %v: got %q, want %q", k, got, ids)
		}
	}
	if n := v.componentCount(); n != len(m) {
		t.Fatalf("%d instances counted, want %d", n, len(m))
	}
}

func randomInstance(rng *rand.Rand, cluster, node string, gen int) *v1.ComponentInstance {
	comps := []string{v1.ComponentKubelet, v1.ComponentEtcd, v1.ComponentKubeProxy, "csi", v1.ComponentAPIServer, "vendor-agent", "vendor\x00agent", "vendor\x00", "vendor"}
	comp := comps[rng.IntN(len(comps))]
	id := fmt.Sprintf("%s/%s/%d", node, comp, rng.IntN(3))
	if rng.IntN(3) == 0 {
		// An ID that another component's instance may take later.
		id = fmt.Sprintf("%s/any/%d", node, rng.IntN(3))
	}
	return &v1.ComponentInstance{Cluster: cluster, Node: node, Component: comp, Id: id,
		RestartCount: int32(gen), Pid: int32(rng.IntN(5))}
}

// Every order, prefix and node read agrees with a model through random
// replacements, encoded and decoded rows mixed; a view keeps its snapshot
// while later transactions change the store, and an aborted one changes
// nothing.
func TestComponentOrdersFollowReplacements(t *testing.T) {
	s := newTestStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	m := model{}
	type snapshot struct {
		v *View
		m model
	}
	var snaps []snapshot
	for gen := range 300 {
		txn := s.WriteTxn()
		next := maps(m)
		for range 1 + rng.IntN(3) {
			cluster, node := []string{"a", "b"}[rng.IntN(2)], fmt.Sprintf("n%d", rng.IntN(8))
			var rows []*Component
			for k := range next {
				if strings.HasPrefix(k, cluster+"/"+node+"/") {
					delete(next, k)
				}
			}
			for range rng.IntN(5) {
				in := randomInstance(rng, cluster, node, gen)
				if rng.IntN(2) == 0 {
					raw, err := proto.Marshal(in)
					if err != nil {
						t.Fatal(err)
					}
					enc, err := NewEncodedComponents(cluster, node, [][]byte{raw})
					if err != nil {
						t.Fatal(err)
					}
					rows = append(rows, enc...)
				} else {
					rows = append(rows, NewComponent(in))
				}
				next[cluster+"/"+in.Id] = in
			}
			if _, err := txn.ReplaceComponents(cluster, node, rows, func(a, b *Component) bool {
				return proto.Equal(a.Instance(), b.Instance())
			}); err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(5) == 0 {
			txn.Abort()
			checkOrders(t, s.View(), m, rng)
			continue
		}
		txn.Commit()
		m = next
		checkOrders(t, s.View(), m, rng)
		if gen%50 == 0 {
			snaps = append(snaps, snapshot{s.View(), m})
		}
	}
	for _, sn := range snaps {
		checkOrders(t, sn.v, sn.m, rng)
	}
}

func maps(m model) model {
	out := make(model, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// A replacement publishes exactly what changed: a new instance ADDED, a
// changed one MODIFIED, a gone one DELETED, an unchanged one nothing. An
// encoded row lets go of its decoded form once committed, and reads decode
// it again.
func TestReplaceComponentsPublishesOnlyChanges(t *testing.T) {
	s := newTestStore(t)
	sub := s.Broker().Subscribe()
	defer sub.Close()
	inst := func(id string, restarts int32) *v1.ComponentInstance {
		return &v1.ComponentInstance{Cluster: "c", Node: "n", Component: v1.ComponentKubelet, Id: "n/" + id, RestartCount: restarts,
			Flags: []*v1.Flag{{Name: "v", Values: []string{"2"}}}}
	}
	replace := func(ins ...*v1.ComponentInstance) []*Component {
		t.Helper()
		rows, _ := replaceEncoded(t, s, ins)
		return rows
	}
	events := func() []string {
		t.Helper()
		return readEvents(sub, func(e Event) string { return e.Instance().Id + " " + fmt.Sprint(e.Instance().RestartCount) })
	}
	rows := replace(inst("x", 0), inst("y", 0), inst("z", 0))
	if got := events(); !slices.Equal(got, []string{"ADDED n/x 0", "ADDED n/y 0", "ADDED n/z 0"}) {
		t.Fatalf("first put: %q", got)
	}
	replace(inst("y", 1), inst("x", 0), inst("w", 0))
	if got := events(); !slices.Equal(got, []string{"ADDED n/w 0", "MODIFIED n/y 1", "DELETED n/z 0"}) {
		t.Fatalf("second put: %q", got)
	}
	rows = replace(inst("w", 0), inst("x", 0), inst("y", 1))
	if got := events(); len(got) != 0 {
		t.Fatalf("an unchanged node published %q", got)
	}
	// The unchanged rows were replaced all the same, so that the old
	// record they were read from can go.
	i := 0
	for c := range s.View().ComponentsOn(nil, "c", "n") {
		if c != rows[i] {
			t.Fatalf("row %s is not the newest", c.InstanceID)
		}
		i++
	}
	for c := range s.View().Components(nil, ByComponent, "") {
		if !slices.Contains(rows, c) {
			t.Fatalf("the component order holds an old row of %s", c.InstanceID)
		}
	}
	var got []*v1.ComponentInstance
	for c := range s.View().ComponentsOn(nil, "c", "n") {
		got = append(got, c.Instance())
	}
	if len(got) != 3 || !proto.Equal(got[2], inst("y", 1)) {
		t.Fatalf("read back %v", got)
	}
	// Of two rows with one ID the last counts.
	replace(inst("w", 0), inst("w", 5))
	if got := events(); !slices.Equal(got, []string{"MODIFIED n/w 5", "DELETED n/x 0", "DELETED n/y 1"}) {
		t.Fatalf("duplicate IDs: %q", got)
	}
	// Encodings protobuf would refuse, or that name another node, no ID
	// or no component, are refused.
	for what, in := range map[string]*v1.ComponentInstance{
		"another node":      {Cluster: "c", Node: "m", Component: v1.ComponentKubelet, Id: "m/k"},
		"another cluster":   {Cluster: "d", Node: "n", Component: v1.ComponentKubelet, Id: "n/k"},
		"no id":             {Cluster: "c", Node: "n", Component: v1.ComponentKubelet},
		"no component":      {Cluster: "c", Node: "n", Id: "n/k"},
		"bad UTF-8 in flag": {Cluster: "c", Node: "n", Component: v1.ComponentKubelet, Id: "n/k", Flags: []*v1.Flag{{Name: "v", Values: []string{"\xff"}}}},
	} {
		b, err := proto.MarshalOptions{}.Marshal(in)
		if err != nil {
			// Marshal refuses bad UTF-8 itself: write the bytes by hand.
			b = protowire.AppendTag(nil, fieldCluster, protowire.BytesType)
			b = protowire.AppendString(b, "c")
			b = protowire.AppendTag(b, fieldNode, protowire.BytesType)
			b = protowire.AppendString(b, "n")
			b = protowire.AppendTag(b, fieldComponent, protowire.BytesType)
			b = protowire.AppendString(b, "kubelet")
			b = protowire.AppendTag(b, fieldID, protowire.BytesType)
			b = protowire.AppendString(b, "n/k")
			flag := protowire.AppendTag(nil, 2, protowire.BytesType)
			flag = protowire.AppendBytes(flag, []byte{0xff})
			b = protowire.AppendTag(b, fieldFlags, protowire.BytesType)
			b = protowire.AppendBytes(b, flag)
			var check v1.ComponentInstance
			if proto.Unmarshal(b, &check) == nil {
				t.Fatal("protobuf took bad UTF-8")
			}
		}
		if _, err := NewEncodedComponents("c", "n", [][]byte{b}); err == nil {
			t.Errorf("%s: taken", what)
		}
	}
	if _, err := NewEncodedComponents("c", "n", [][]byte{{0x0a, 0x05, 'c'}}); err == nil {
		t.Error("a cut encoding was taken")
	}
	// Rows of another node are refused.
	txn := s.WriteTxn()
	defer txn.Abort()
	if _, err := txn.ReplaceComponents("c", "other", []*Component{NewComponent(inst("v", 0))}, nil); err == nil {
		t.Fatal("a row of node n was written to node other")
	}
}

// fill sets every field of m, recursively, to a value that is not its zero.
func fill(m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.IsMap() {
			continue
		}
		value := func() protoreflect.Value {
			switch fd.Kind() {
			case protoreflect.StringKind:
				return protoreflect.ValueOfString("v-" + string(fd.Name()))
			case protoreflect.BoolKind:
				return protoreflect.ValueOfBool(true)
			case protoreflect.EnumKind:
				return protoreflect.ValueOfEnum(1)
			case protoreflect.Int32Kind:
				return protoreflect.ValueOfInt32(int32(fd.Number()) + 100)
			case protoreflect.Int64Kind:
				return protoreflect.ValueOfInt64(int64(fd.Number()) + 100)
			case protoreflect.MessageKind:
				sub := m.NewField(fd)
				if fd.IsList() {
					sub = m.Mutable(fd).List().NewElement()
				}
				if depth < 3 {
					fill(sub.Message(), depth+1)
				}
				return sub
			}
			return protoreflect.Value{}
		}
		if fd.IsList() {
			if v := value(); v.IsValid() {
				m.Mutable(fd).List().Append(v)
			}
			continue
		}
		if v := value(); v.IsValid() {
			m.Set(fd, v)
		}
	}
}

// decodeBasic reads every field of an instance but its flags and evidence,
// exactly as protobuf does, whatever fields the message gains.
func TestDecodeBasicMatchesProtobuf(t *testing.T) {
	fields := (&v1.ComponentInstance{}).ProtoReflect().Descriptor().Fields()
	for name, num := range map[protoreflect.Name]protowire.Number{"cluster": fieldCluster, "node": fieldNode, "component": fieldComponent,
		"implementation": fieldImplementation, "how": fieldHow, "owner": fieldOwner, "pod": fieldPod, "container": fieldContainer,
		"container_id": fieldContainerID, "pid": fieldPid, "systemd_unit": fieldSystemdUnit, "manifest_path": fieldManifestPath,
		"image": fieldImage, "version": fieldVersion, "has_process": fieldHasProcess, "restart_count": fieldRestartCount, "id": fieldID,
		"flags": fieldFlags, "evidence": fieldEvidence} {
		if fd := fields.ByName(name); fd == nil || fd.Number() != num {
			t.Fatalf("field %s is not number %d", name, num)
		}
	}
	full := &v1.ComponentInstance{}
	fill(full.ProtoReflect(), 0)
	basic := func(in *v1.ComponentInstance) *v1.ComponentInstance {
		out := proto.CloneOf(in)
		out.Flags, out.Evidence = nil, nil
		out.ProtoReflect().SetUnknown(nil)
		return out
	}
	check := func(what string, b []byte) {
		t.Helper()
		var want v1.ComponentInstance
		if err := proto.Unmarshal(b, &want); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got, err := decodeBasic(b)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !proto.Equal(got, basic(&want)) {
			t.Fatalf("%s:\n got %v\nwant %v", what, got, basic(&want))
		}
	}
	b, err := proto.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Flags) == 0 || len(full.Evidence) == 0 || full.Owner.GetUid() == "" {
		t.Fatalf("not every field is set: %v", full)
	}
	check("every field set", b)

	// A message field twice is merged; a field with a wire type its
	// number cannot have is an unknown field; unknown numbers are skipped.
	odd := protowire.AppendTag(nil, fieldOwner, protowire.BytesType)
	odd = protowire.AppendBytes(odd, protowire.AppendString(protowire.AppendTag(nil, fieldRefName, protowire.BytesType), "second"))
	odd = protowire.AppendTag(odd, fieldCluster, protowire.VarintType)
	odd = protowire.AppendVarint(odd, 7)
	odd = protowire.AppendTag(odd, fieldPid, protowire.BytesType)
	odd = protowire.AppendString(odd, "x")
	odd = protowire.AppendTag(odd, 99, protowire.Fixed64Type)
	odd = protowire.AppendFixed64(odd, 1)
	check("odd fields", append(slices.Clone(b), odd...))
	// The basic encoding carries no field protobuf would not read as the
	// basic instance's: nothing unknown passes through it.
	oddRows, err := NewEncodedComponents("v-cluster", "v-node", [][]byte{append(slices.Clone(b), odd...)})
	if err != nil {
		t.Fatal(err)
	}
	oddBasic, _ := oddRows[0].AppendEncoding(nil, true)
	var fromOdd v1.ComponentInstance
	if err := proto.Unmarshal(oddBasic, &fromOdd); err != nil || len(fromOdd.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("basic encoding of odd fields: %v, unknown %x", err, fromOdd.ProtoReflect().GetUnknown())
	}
	if want, _ := decodeBasic(append(slices.Clone(b), odd...)); !proto.Equal(&fromOdd, want) {
		t.Fatalf("basic encoding of odd fields:\n got %v\nwant %v", &fromOdd, want)
	}
	// Its size is known without building it, in either view.
	for _, basic := range []bool{true, false} {
		enc, _ := oddRows[0].AppendEncoding(nil, basic)
		if n := oddRows[0].EncodingSize(basic); n != len(enc) {
			t.Fatalf("encoding size (basic %v) %d, encoding %d bytes", basic, n, len(enc))
		}
	}

	// The basic encoding is the basic instance's.
	rows, err := NewEncodedComponents("v-cluster", "v-node", [][]byte{b})
	if err != nil {
		t.Fatal(err)
	}
	enc, ok := rows[0].AppendEncoding(nil, true)
	var fromEnc v1.ComponentInstance
	if !ok || proto.Unmarshal(enc, &fromEnc) != nil || !proto.Equal(&fromEnc, basic(full)) {
		t.Fatalf("basic encoding decodes to %v", &fromEnc)
	}
	// The full encoding is the basic one, then the rest as published: read
	// as protobuf reads the published one, unknown and odd fields too.
	for _, published := range [][]byte{b, append(slices.Clone(b), odd...)} {
		rows, err := NewEncodedComponents("v-cluster", "v-node", [][]byte{published})
		if err != nil {
			t.Fatal(err)
		}
		basicEnc, _ := rows[0].AppendEncoding(nil, true)
		enc, ok := rows[0].AppendEncoding([]byte("x"), false)
		if !ok || !bytes.HasPrefix(enc, append([]byte("x"), basicEnc...)) || len(enc) != 1+len(published) {
			t.Fatalf("the full encoding is %d bytes, published %d", len(enc)-1, len(published))
		}
		var want, got v1.ComponentInstance
		if err := proto.Unmarshal(published, &want); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(enc[1:], &got); err != nil || !proto.Equal(&got, &want) {
			t.Fatalf("the full encoding decodes to\n%v (%v)\nwant %v", &got, err, &want)
		}
		if !proto.Equal(rows[0].Instance(), &want) {
			t.Fatalf("the instance is %v", rows[0].Instance())
		}
	}
	if _, ok := NewComponent(full).AppendEncoding(nil, true); ok {
		t.Fatal("a decoded row gave an encoding")
	}
	// Strings share the encoding's memory.
	got, _ := decodeBasic(b)
	if unsafe.StringData(got.Id) != &b[bytes.Index(b, []byte("v-id"))] {
		t.Fatal("the ID was copied")
	}
	// A cut encoding is an error, not a panic.
	for n := range len(b) {
		if _, err := decodeBasic(b[:n]); err != nil {
			continue
		}
		var want v1.ComponentInstance
		if proto.Unmarshal(b[:n], &want) == nil {
			continue // a cut at a field's end is a shorter message
		}
		t.Fatalf("a cut at %d decoded", n)
	}
}

// A node's flags and evidence are kept in one compressed block: a change
// to one instance's detail changes the block, and still only that instance
// is published as changed. Detail that does not compress is kept as it is.
func TestNodeDetailBlock(t *testing.T) {
	s := newTestStore(t)
	sub := s.Broker().Subscribe()
	defer sub.Close()
	inst := func(i int, pid int32, flag string) *v1.ComponentInstance {
		id := fmt.Sprintf("n/kubelet/%d", i)
		return &v1.ComponentInstance{Cluster: "c", Node: "n", Component: v1.ComponentKubelet, Id: id, Pid: pid,
			Flags: []*v1.Flag{{Name: "kubeconfig", Values: []string{flag}}, {Name: "v", Values: []string{"2"}}},
			Evidence: []*v1.Evidence{{Kind: v1.EvidenceKind_EVIDENCE_KIND_PROCESS, Summary: fmt.Sprintf("pid %d: /usr/bin/kubelet --v=2", pid)},
				{Kind: v1.EvidenceKind_EVIDENCE_KIND_CGROUP, Summary: "cgroup /kubepods.slice/kubepods-burstable.slice/cri-containerd-" + id + ".scope"}}}
	}
	put := func(ins []*v1.ComponentInstance) []*Component {
		t.Helper()
		rows, raw := replaceEncoded(t, s, ins)
		for i, r := range rows {
			if !proto.Equal(r.Instance(), ins[i]) {
				t.Fatalf("row %d reads %v", i, r.Instance())
			}
			if enc, _ := r.AppendEncoding(nil, false); len(enc) != len(raw[i]) || r.EncodingSize(false) != len(raw[i]) {
				t.Fatalf("row %d: full encoding of %d bytes, sized %d, published %d", i, len(enc), r.EncodingSize(false), len(raw[i]))
			}
		}
		return rows
	}
	changed := func() []string {
		t.Helper()
		return readEvents(sub, func(e Event) string { return e.Instance().Id })
	}
	var ins []*v1.ComponentInstance
	for i := range 12 {
		ins = append(ins, inst(i, int32(100+i), "/etc/kubernetes/kubelet.conf"))
	}
	rows := put(ins)
	if got := changed(); len(got) != 12 {
		t.Fatalf("first put: %q", got)
	}
	raw := 0
	for _, in := range ins {
		raw += proto.Size(in)
	}
	if kept := len(rows[0].enc.buf); !rows[0].enc.compressed || kept > raw*3/4 {
		t.Fatalf("the node's %d bytes are kept in %d (compressed %v)", raw, kept, rows[0].enc.compressed)
	}
	// One instance's evidence changes: the block changes, one event.
	ins[5] = inst(5, 999, "/etc/kubernetes/kubelet.conf")
	put(ins)
	if got := changed(); !slices.Equal(got, []string{"MODIFIED n/kubelet/5"}) {
		t.Fatalf("one evidence changed: %q", got)
	}
	// The same detail again, in a new block: nothing.
	put(slices.Clone(ins))
	if got := changed(); len(got) != 0 {
		t.Fatalf("an unchanged node published %q", got)
	}
	// A detail of equal size but other bytes is a change.
	ins[7] = inst(7, 107, "/etc/kubernetes/kubelet.cong")
	put(ins)
	if got := changed(); !slices.Equal(got, []string{"MODIFIED n/kubelet/7"}) {
		t.Fatalf("one flag changed: %q", got)
	}
	// Detail that does not compress is kept as it is.
	rng := rand.New(rand.NewPCG(3, 4))
	noisy := func(i int) *v1.ComponentInstance {
		noise := make([]byte, 2000)
		for j := range noise {
			noise[j] = byte(' ' + rng.IntN(95))
		}
		return &v1.ComponentInstance{Cluster: "c", Node: "n", Component: v1.ComponentKubelet, Id: fmt.Sprintf("n/kubelet/%d", i),
			Flags: []*v1.Flag{{Name: string(noise)}}}
	}
	rows = put([]*v1.ComponentInstance{noisy(0), noisy(1)})
	if rows[0].enc.compressed {
		t.Fatal("noise was kept compressed")
	}
	if got := changed(); len(got) != 12 {
		t.Fatalf("after the noise: %q", got)
	}
}

// replaceEncoded makes node c/n's instances those given, encoded as a
// fleet view keeps them, and returns the rows and the encodings.
func replaceEncoded(t *testing.T, s *Store, ins []*v1.ComponentInstance) ([]*Component, [][]byte) {
	t.Helper()
	raw := make([][]byte, len(ins))
	for i, in := range ins {
		b, err := proto.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		raw[i] = b
	}
	rows, err := NewEncodedComponents("c", "n", raw)
	if err != nil {
		t.Fatal(err)
	}
	txn := s.WriteTxn()
	defer txn.Abort()
	if _, err := txn.ReplaceComponents("c", "n", rows, nil); err != nil {
		t.Fatal(err)
	}
	txn.Commit()
	return rows, raw
}

// readEvents reads what was published since the last read, each event as
// its type and what describe says of it.
func readEvents(sub *Subscription, describe func(Event) string) []string {
	evs, _ := sub.Read(nil, 100)
	var out []string
	for _, e := range evs {
		out = append(out, strings.TrimPrefix(e.Type.String(), "WATCH_EVENT_TYPE_")+" "+describe(e))
	}
	return out
}
