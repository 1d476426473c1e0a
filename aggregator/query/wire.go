package query

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
	"weak"

	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/safetext"
)

// Codec is the server's gRPC codec: protobuf, except that a message already
// in wire form is sent as it is. Watch encodes each change once and sends the
// same bytes to every watcher. Install it with grpc.ForceServerCodecV2; under
// any other codec single events are marshalled as usual and batches are
// refused.
type Codec struct{}

var protoCodec = encoding.GetCodecV2(protocodec.Name)

// Name implements encoding.CodecV2.
func (Codec) Name() string { return protocodec.Name }

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	switch e := v.(type) {
	case *encodedResponse:
		if e.wire != nil {
			return mem.BufferSlice{mem.SliceBuffer(e.wire)}, nil
		}
	case *encodedBatch:
		return e.parts, nil
	case *v1.ListComponentsResponse:
		if buf, ok := takeAnswer(e); ok {
			return marshalLent(e, buf)
		}
	}
	return protoCodec.Marshal(v)
}

// answerPool lends ListComponents answers the buffer their kept encodings
// are copied into: a page of 1,000 basic instances takes about 240 KiB, and
// a page is at most a few MiB.
var answerPool = mem.NewTieredBufferPool(16<<10, 64<<10, 256<<10, 1<<20, 4<<20)

// lentAnswers maps an answer on its way out to the pooled buffer its
// unknown fields lie in, until Codec marshals it. Its keys are weak: an
// answer never marshalled (an in-process caller's) is collected as usual,
// its buffer with it, and a cleanup drops its entry.
var lentAnswers sync.Map // weak.Pointer[v1.ListComponentsResponse] → *[]byte

// lendAnswer records that resp's unknown fields lie in buf, of answerPool.
func lendAnswer(resp *v1.ListComponentsResponse, buf *[]byte) {
	key := weak.Make(resp)
	lentAnswers.Store(key, buf)
	runtime.AddCleanup(resp, func(key weak.Pointer[v1.ListComponentsResponse]) { lentAnswers.Delete(key) }, key)
}

// takeAnswer returns the buffer lent to resp, if any, and forgets it. Only
// an answer with unknown fields can have one.
func takeAnswer(resp *v1.ListComponentsResponse) (*[]byte, bool) {
	if len(resp.ProtoReflect().GetUnknown()) == 0 {
		return nil, false
	}
	buf, ok := lentAnswers.LoadAndDelete(weak.Make(resp))
	if !ok {
		return nil, false
	}
	return buf.(*[]byte), true
}

// marshalLent sends an answer whose instances lie in a lent buffer: its
// other fields, encoded, then the buffer as it is, which grpc returns to the
// pool once it has written it. The answer keeps its other fields but no
// longer its instances, so that nothing reads the buffer after that (grpc's
// binary log would marshal the answer again).
func marshalLent(resp *v1.ListComponentsResponse, buf *[]byte) (mem.BufferSlice, error) {
	m := resp.ProtoReflect()
	unknown := m.GetUnknown()
	m.SetUnknown(nil)
	head, err := protoCodec.Marshal(resp)
	if err != nil {
		answerPool.Put(buf)
		return nil, err
	}
	if len(unknown) == 0 || unsafe.SliceData(unknown) != unsafe.SliceData(*buf) {
		// Not in the buffer after all: sent as it is, and the buffer,
		// which nothing holds, goes back.
		answerPool.Put(buf)
		return append(head, mem.SliceBuffer(unknown)), nil
	}
	*buf = unknown
	return append(head, mem.NewBuffer(buf, answerPool)), nil
}

// Unmarshal implements encoding.CodecV2. A message whose strings are not
// all valid UTF-8 (an agent can send any bytes a node's argv held) is made
// valid, U+FFFD for each bad sequence, rather than refused whole: the
// handler then sees the text and can refuse it with a clear error, or keep it.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := protoCodec.Unmarshal(data, v)
	m, ok := v.(proto.Message)
	if err == nil || !ok || !strings.Contains(err.Error(), "UTF-8") {
		return err
	}
	fixed, _, werr := safetext.Wire(data.Materialize(), m.ProtoReflect().Descriptor())
	if werr != nil {
		return err
	}
	return proto.Unmarshal(fixed, m)
}

// encodedResponse is a WatchResponse with its wire form. It is a proto
// message itself, so a codec that does not know it marshals the response.
type encodedResponse struct {
	// resp is the response; nil for one built from the encoding a row
	// keeps, which is decoded from wire if ever needed.
	resp *v1.WatchResponse
	wire []byte
	// framed is wire as an element of a batch: behind its field tag and
	// length, so that every watcher's batch takes it as it is.
	framed []byte
}

// ProtoReflect makes the response a proto message.
func (e *encodedResponse) ProtoReflect() protoreflect.Message { return e.message().ProtoReflect() }

// message returns the response itself.
func (e *encodedResponse) message() *v1.WatchResponse {
	if e.resp != nil {
		return e.resp
	}
	m := &v1.WatchResponse{}
	_ = proto.Unmarshal(e.wire, m) // made by encodeEvent from a checked encoding
	return m
}

// Forms of an event, see state.Event.Form.
const (
	formFull = iota
	formBasic
)

// encodeEvent returns the event as a WatchResponse in the given view, encoded
// once for every watcher that asks for the same view.
func encodeEvent(ev state.Event, view v1.ComponentView) *encodedResponse {
	slot := formFull
	if view == v1.ComponentView_COMPONENT_VIEW_BASIC && ev.IsComponent() {
		slot = formBasic
	}
	return ev.Form(slot, func() (any, int) {
		r := buildEvent(ev, view)
		return r, r.cost()
	}).(*encodedResponse)
}

// cost is what an event's encoding holds, for the history's byte bound.
func (r *encodedResponse) cost() int { return cap(r.framed) + formOverhead }

// formOverhead is what a form holds beyond its bytes: its struct and the
// slice or buffer headers in it.
const formOverhead = 64

// buildEvent encodes the event as a WatchResponse in the given view.
func buildEvent(ev state.Event, view v1.ComponentView) *encodedResponse {
	if ev.Row != nil {
		return encodeRowEvent(ev, view)
	}
	resp := &v1.WatchResponse{Type: ev.Type, Index: ev.Seq}
	switch {
	case ev.Component != nil:
		resp.Object = &v1.WatchResponse_Component{Component: inView(ev.Component, view)}
	case ev.Finding != nil:
		resp.Object = &v1.WatchResponse_Finding{Finding: ev.Finding}
	}
	size := proto.Size(resp)
	head := protowire.SizeTag(batchField) + protowire.SizeVarint(uint64(size))
	framed := protowire.AppendTag(make([]byte, 0, head+size), batchField, protowire.BytesType)
	framed = protowire.AppendVarint(framed, uint64(size))
	framed, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(framed, resp)
	if err != nil {
		// Left to the codec, which reports the error on the stream.
		return &encodedResponse{resp: resp}
	}
	return &encodedResponse{resp: resp, wire: framed[head:], framed: framed}
}

// encodeRowEvent builds the wire form of an event of an instance its row
// keeps encoded, from that encoding: nothing is decoded or encoded again.
func encodeRowEvent(ev state.Event, view v1.ComponentView) *encodedResponse {
	basic := view == v1.ComponentView_COMPONENT_VIEW_BASIC
	framed := appendRowEvent(make([]byte, 0, rowEventSize(ev, basic)), ev, basic)
	head := len(framed) - watchResponseSize(ev, rowInstanceSize(ev, basic))
	return &encodedResponse{wire: framed[head:], framed: framed}
}

// rowInstanceSize is the size of the instance in an event of a row kept
// encoded. The row caches it in each view, as ListComponents's pager does.
func rowInstanceSize(ev state.Event, basic bool) int {
	slot := formFull
	if basic {
		slot = formBasic
	}
	return ev.Row.Size(slot, func() int { return ev.Row.EncodingSize(basic) })
}

// watchResponseSize is the size of the WatchResponse of an event whose
// instance's encoding is n bytes.
func watchResponseSize(ev state.Event, n int) int {
	size := protowire.SizeTag(typeField) + protowire.SizeVarint(uint64(ev.Type)) +
		protowire.SizeTag(componentField) + protowire.SizeBytes(n)
	if ev.Seq != 0 {
		size += protowire.SizeTag(indexField) + protowire.SizeVarint(ev.Seq)
	}
	return size
}

// rowEventSize is the size of an event of a row kept encoded, framed as an
// element of a batch.
func rowEventSize(ev state.Event, basic bool) int {
	size := watchResponseSize(ev, rowInstanceSize(ev, basic))
	return protowire.SizeTag(batchField) + protowire.SizeVarint(uint64(size)) + size
}

// appendRowEvent appends an event of a row kept encoded to b, framed as an
// element of a batch, built from the row's encoding.
func appendRowEvent(b []byte, ev state.Event, basic bool) []byte {
	n := rowInstanceSize(ev, basic)
	b = protowire.AppendTag(b, batchField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(watchResponseSize(ev, n)))
	b = protowire.AppendTag(b, typeField, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(ev.Type))
	b = protowire.AppendTag(b, componentField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b, _ = ev.Row.AppendEncoding(b, basic)
	if ev.Seq != 0 {
		b = protowire.AppendTag(b, indexField, protowire.VarintType)
		b = protowire.AppendVarint(b, ev.Seq)
	}
	return b
}

// inView returns the instance as the view shows it. The BASIC view leaves out
// the flags and the evidence; the instance itself is never changed.
func inView(in *v1.ComponentInstance, view v1.ComponentView) *v1.ComponentInstance {
	if view != v1.ComponentView_COMPONENT_VIEW_BASIC || (len(in.Flags) == 0 && len(in.Evidence) == 0) {
		return in
	}
	return &v1.ComponentInstance{
		Cluster: in.Cluster, Node: in.Node, Component: in.Component, Implementation: in.Implementation,
		How: in.How, Owner: in.Owner, Pod: in.Pod, Container: in.Container, ContainerId: in.ContainerId,
		Pid: in.Pid, SystemdUnit: in.SystemdUnit, ManifestPath: in.ManifestPath, Image: in.Image,
		Version: in.Version, HasProcess: in.HasProcess, RestartCount: in.RestartCount, Id: in.Id,
	}
}

// checkView refuses views the server does not know.
func checkView(view v1.ComponentView) bool {
	_, ok := v1.ComponentView_name[int32(view)]
	return ok
}

// encodedBatch is an encoded WatchResponse whose batch field holds events:
// each event's shared framed encoding, with no copy. Unlike encodedResponse it is no proto message: only Codec can send
// it, and any other codec refuses it rather than send an empty response.
type encodedBatch struct {
	parts mem.BufferSlice
}

// Batches are bounded in bytes as well as in events, well below the 4 MiB a
// gRPC client accepts by default.
const (
	maxBatchEvents = 1000
	maxBatchBytes  = 1 << 20
)

// watchSender sends a watcher's events one by one or in batches.
type watchSender struct {
	stream v1.InventoryService_WatchServer
	view   v1.ComponentView
	max    int
	parts  mem.BufferSlice
	// own holds events copied or built for this watcher alone, appended
	// in place into ownBuf, a buffer of ownPool; it becomes a part when a
	// shared run follows or the batch is sent, and grpc returns the buffer
	// to the pool once the batch is written.
	own    []byte
	ownBuf *[]byte
	size   int
	events int
}

func newWatchSender(stream v1.InventoryService_WatchServer, view v1.ComponentView, max int) *watchSender {
	return &watchSender{stream: stream, view: view, max: min(max, maxBatchEvents)}
}

// add sends ev, or adds it to the batch being built.
func (w *watchSender) add(ev state.Event) error {
	enc := encodeEvent(ev, w.view)
	if w.max <= 1 || enc.wire == nil {
		if err := w.flush(); err != nil {
			return err
		}
		return w.stream.SendMsg(enc)
	}
	return w.addFramed(enc.framed)
}

// addRow adds a row's current state as an ADDED event built from the
// encoding the row keeps, with no decode and no encode, and reports whether
// it could: only into batches, and only for a row that keeps its encoding.
func (w *watchSender) addRow(c *state.Component) (bool, error) {
	if w.max <= 1 || !c.Encoded() {
		return false, nil
	}
	ev := state.Event{Type: v1.WatchEventType_WATCH_EVENT_TYPE_ADDED, Row: c}
	basic := w.view == v1.ComponentView_COMPONENT_VIEW_BASIC
	size := rowEventSize(ev, basic)
	if err := w.room(size, 1); err != nil {
		return true, err
	}
	w.reserve(size, w.max-w.events)
	w.own = appendRowEvent(w.own, ev, basic)
	return true, w.added(size, 1)
}

// addFramed adds an event, already framed as an element of a batch. Its
// bytes are copied into the watcher's own: a batch of many small parts
// costs grpc an allocation a frame, and a copy of a few hundred bytes
// costs less.
func (w *watchSender) addFramed(framed []byte) error {
	if err := w.room(len(framed), 1); err != nil {
		return err
	}
	w.reserve(len(framed), 8)
	w.own = append(w.own, framed...)
	return w.added(len(framed), 1)
}

// ownPool lends watchers the buffers of their own events. Its sizes follow
// what batches hold: a few events between shared runs, or a batch of a new
// watcher's state (a thousand basic instances take about 250 KiB).
var ownPool = mem.NewTieredBufferPool(4<<10, 16<<10, 64<<10, 256<<10, maxBatchBytes)

// reserve makes room for an event of size bytes in the watcher's own
// events. A new buffer has room for n such events: a new watcher's state
// fills a batch, while changes that follow come a few at a time between
// shared runs. A full one is replaced by one twice as large, and goes back
// to the pool.
func (w *watchSender) reserve(size, n int) {
	if len(w.own)+size <= cap(w.own) {
		return
	}
	want := max(len(w.own)+size, min(maxBatchBytes, size*max(n, 1)), 2*cap(w.own))
	buf := ownPool.Get(want)
	own := append((*buf)[:0], w.own...)
	if w.ownBuf != nil {
		ownPool.Put(w.ownBuf)
	}
	w.own, w.ownBuf = own, buf
}

// addPart adds events framed as elements of a batch: part, of size bytes.
func (w *watchSender) addPart(part mem.Buffer, size, events int) error {
	if err := w.room(size, events); err != nil {
		return err
	}
	w.sealOwn()
	w.appendPart(part, events)
	return w.added(size, events)
}

// room sends the batch being built if events of size bytes would not fit.
func (w *watchSender) room(size, events int) error {
	if w.events > 0 && (w.size+size > maxBatchBytes || w.events+events > w.max) {
		return w.flush()
	}
	return nil
}

// added counts events just added and sends the batch once it is full.
func (w *watchSender) added(size, events int) error {
	w.size += size
	w.events += events
	if w.events >= w.max {
		return w.flush()
	}
	return nil
}

// sealOwn makes the watcher's own events built so far a part of the
// batch. The part returns its buffer to the pool once grpc has written it.
func (w *watchSender) sealOwn() {
	switch {
	case w.ownBuf == nil:
	case len(w.own) == 0:
		ownPool.Put(w.ownBuf)
	case unsafe.SliceData(w.own) != unsafe.SliceData(*w.ownBuf):
		// Appended past what was reserved: own left the pool's buffer,
		// which nothing else holds.
		w.appendPart(mem.SliceBuffer(w.own), w.max)
		ownPool.Put(w.ownBuf)
	default:
		*w.ownBuf = w.own
		w.appendPart(mem.NewBuffer(w.ownBuf, ownPool), w.max)
	}
	w.own, w.ownBuf = nil, nil
}

func (w *watchSender) appendPart(part mem.Buffer, events int) {
	if w.parts == nil {
		// Sized for a batch of parts like this one. grpc holds the slice
		// until the batch is written, so each batch has its own.
		w.parts = make(mem.BufferSlice, 0, min(w.max/events+1, 1024))
	}
	w.parts = append(w.parts, part)
}

// encodedRun is a run of events (state.GroupEvents of them, those a watcher
// takes) encoded as one part of a batch, shared by every watcher that takes
// the same events in the same view. part is nil if the run cannot be one
// part: an event without a wire form, or a run over maxBatchBytes.
type encodedRun struct {
	part         mem.Buffer
	size, events int
}

// runsSent counts the shared runs sent to watchers.
var runsSent atomic.Int64

// runSlot is the GroupForm slot of runs in a view, skipping components
// or findings; -1 if a watcher that skips both takes no run.
func runSlot(view v1.ComponentView, skipComponents, skipFindings bool) int {
	skip := 0
	switch {
	case skipComponents && skipFindings:
		return -1
	case skipFindings:
		skip = 1
	case skipComponents:
		skip = 2
	}
	v := 0
	if view == v1.ComponentView_COMPONENT_VIEW_BASIC {
		v = 1
	}
	return v*3 + skip
}

// addRun adds a run of events that begins at a multiple of
// state.GroupEvents as one shared part, for a watcher that takes every
// component or finding event, and reports whether it could.
func (w *watchSender) addRun(run []state.Event, skipComponents, skipFindings bool) (bool, error) {
	slot := runSlot(w.view, skipComponents, skipFindings)
	if slot < 0 || w.max < state.GroupEvents || len(run) != state.GroupEvents || run[0].Seq%state.GroupEvents != 0 ||
		run[len(run)-1].Seq != run[0].Seq+state.GroupEvents-1 {
		return false, nil
	}
	r, _ := run[0].GroupForm(slot, func() (any, int) {
		r := buildRun(run, w.view, skipComponents, skipFindings)
		return r, r.size + formOverhead
	}).(*encodedRun)
	if r == nil || r.part == nil {
		return false, nil
	}
	runsSent.Add(1)
	if r.events == 0 {
		return true, nil
	}
	return true, w.addPart(r.part, r.size, r.events)
}

// buildRun encodes a run of events as one part of a batch, or returns an
// empty run if it cannot.
func buildRun(run []state.Event, view v1.ComponentView, skipComponents, skipFindings bool) *encodedRun {
	basic := view == v1.ComponentView_COMPONENT_VIEW_BASIC
	// Events of rows kept encoded are built in the run's buffer;
	// others take their shared encoding.
	takes := func(ev state.Event) bool {
		return (ev.IsComponent() && !skipComponents) || (ev.Finding != nil && !skipFindings)
	}
	var encs [state.GroupEvents]*encodedResponse
	size := 0
	for i, ev := range run {
		switch {
		case !takes(ev):
		case ev.Row != nil:
			size += rowEventSize(ev, basic)
		default:
			encs[i] = encodeEvent(ev, view)
			if encs[i].framed == nil {
				return &encodedRun{}
			}
			size += len(encs[i].framed)
		}
	}
	if size > maxBatchBytes {
		return &encodedRun{}
	}
	b := make([]byte, 0, size)
	n := 0
	for i, ev := range run {
		switch {
		case encs[i] != nil:
			b = append(b, encs[i].framed...)
		case !takes(ev):
			continue
		default:
			b = appendRowEvent(b, ev, basic)
		}
		n++
	}
	return &encodedRun{part: mem.SliceBuffer(b), size: len(b), events: n}
}

// WatchResponse's field numbers.
var (
	watchFields    = (&v1.WatchResponse{}).ProtoReflect().Descriptor().Fields()
	typeField      = watchFields.ByName("type").Number()
	componentField = watchFields.ByName("component").Number()
	indexField     = watchFields.ByName("index").Number()
)

// batchField is WatchResponse.batch's field number.
var batchField = (&v1.WatchResponse{}).ProtoReflect().Descriptor().Fields().ByName("batch").Number()

// flush sends the batch being built, if any.
func (w *watchSender) flush() error {
	if w.events == 0 {
		return nil
	}
	w.sealOwn()
	b := &encodedBatch{parts: w.parts}
	w.parts, w.size, w.events = nil, 0, 0
	return w.stream.SendMsg(b)
}
