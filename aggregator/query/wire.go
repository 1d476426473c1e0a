package query

import (
	"strings"
	"sync/atomic"

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
	}
	return protoCodec.Marshal(v)
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
	// part is framed as a batch's part, boxed once for every watcher.
	part mem.Buffer
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
	return ev.Form(slot, func() any {
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
		return &encodedResponse{resp: resp, wire: framed[head:], framed: framed, part: mem.SliceBuffer(framed)}
	}).(*encodedResponse)
}

// encodeRowEvent builds the wire form of an event of an instance its row
// keeps encoded, from that encoding: nothing is decoded or encoded again.
func encodeRowEvent(ev state.Event, view v1.ComponentView) *encodedResponse {
	basic := view == v1.ComponentView_COMPONENT_VIEW_BASIC
	slot := formFull
	if basic {
		slot = formBasic
	}
	// The row caches its size in each view, as ListComponents's pager
	// does: the event is then built in one allocation.
	n := ev.Row.Size(slot, func() int {
		b, _ := ev.Row.AppendEncoding(nil, basic)
		return len(b)
	})
	size := protowire.SizeTag(typeField) + protowire.SizeVarint(uint64(ev.Type)) +
		protowire.SizeTag(componentField) + protowire.SizeBytes(n)
	if ev.Seq != 0 {
		size += protowire.SizeTag(indexField) + protowire.SizeVarint(ev.Seq)
	}
	head := protowire.SizeTag(batchField) + protowire.SizeVarint(uint64(size))
	framed := protowire.AppendTag(make([]byte, 0, head+size), batchField, protowire.BytesType)
	framed = protowire.AppendVarint(framed, uint64(size))
	framed = protowire.AppendTag(framed, typeField, protowire.VarintType)
	framed = protowire.AppendVarint(framed, uint64(ev.Type))
	framed = protowire.AppendTag(framed, componentField, protowire.BytesType)
	framed = protowire.AppendVarint(framed, uint64(n))
	framed, _ = ev.Row.AppendEncoding(framed, basic)
	if ev.Seq != 0 {
		framed = protowire.AppendTag(framed, indexField, protowire.VarintType)
		framed = protowire.AppendVarint(framed, ev.Seq)
	}
	return &encodedResponse{wire: framed[head:], framed: framed, part: mem.SliceBuffer(framed)}
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
	return w.addFramed(enc.part, len(enc.framed))
}

// addRow adds a row's current state as an ADDED event built from the
// encoding the row keeps, with no decode and no encode, and reports whether
// it could: only into batches, and only for a row that keeps its encoding.
func (w *watchSender) addRow(c *state.Component) (bool, error) {
	if w.max <= 1 || !c.Encoded() {
		return false, nil
	}
	enc := encodeRowEvent(state.Event{Type: v1.WatchEventType_WATCH_EVENT_TYPE_ADDED, Row: c}, w.view)
	return true, w.addFramed(enc.part, len(enc.framed))
}

// addFramed adds an event, already framed as an element of a batch (part,
// of size bytes).
func (w *watchSender) addFramed(part mem.Buffer, size int) error {
	return w.addPart(part, size, 1)
}

// addPart adds events framed as elements of a batch: part, of size bytes.
func (w *watchSender) addPart(part mem.Buffer, size, events int) error {
	if w.events > 0 && (w.size+size > maxBatchBytes || w.events+events > w.max) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.parts == nil {
		w.parts = make(mem.BufferSlice, 0, min(w.max, 1024))
	}
	w.parts = append(w.parts, part)
	w.size += size
	w.events += events
	if w.events >= w.max {
		return w.flush()
	}
	return nil
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
	r, _ := run[0].GroupForm(slot, func() any {
		var encs [state.GroupEvents]*encodedResponse
		size := 0
		for i, ev := range run {
			if (ev.IsComponent() && !skipComponents) || (ev.Finding != nil && !skipFindings) {
				encs[i] = encodeEvent(ev, w.view)
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
		for _, enc := range encs {
			if enc != nil {
				b = append(b, enc.framed...)
				n++
			}
		}
		return &encodedRun{part: mem.SliceBuffer(b), size: len(b), events: n}
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
	b := &encodedBatch{parts: w.parts}
	w.parts, w.size, w.events = nil, 0, 0
	return w.stream.SendMsg(b)
}
