package query

import (
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Codec is the server's gRPC codec: protobuf, except that a message already
// in wire form is sent as it is. Watch encodes each change once and sends the
// same bytes to every watcher. Install it with grpc.ForceServerCodecV2; under
// any other codec the messages are marshalled as usual.
type Codec struct{}

var protoCodec = encoding.GetCodecV2(protocodec.Name)

// Name implements encoding.CodecV2.
func (Codec) Name() string { return protocodec.Name }

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encodedResponse); ok && e.wire != nil {
		return mem.BufferSlice{mem.SliceBuffer(e.wire)}, nil
	}
	return protoCodec.Marshal(v)
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error { return protoCodec.Unmarshal(data, v) }

// encodedResponse is a WatchResponse with its wire form. It is a proto
// message itself, so a codec that does not know it marshals the response.
type encodedResponse struct {
	*v1.WatchResponse
	wire []byte
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
	if view == v1.ComponentView_COMPONENT_VIEW_BASIC && ev.Component != nil {
		slot = formBasic
	}
	return ev.Form(slot, func() any {
		resp := &v1.WatchResponse{Type: ev.Type}
		switch {
		case ev.Component != nil:
			resp.Object = &v1.WatchResponse_Component{Component: inView(ev.Component, view)}
		case ev.Finding != nil:
			resp.Object = &v1.WatchResponse_Finding{Finding: ev.Finding}
		}
		wire, err := proto.Marshal(resp)
		if err != nil {
			// Left to the codec, which reports the error on the stream.
			wire = nil
		}
		return &encodedResponse{WatchResponse: resp, wire: wire}
	}).(*encodedResponse)
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
