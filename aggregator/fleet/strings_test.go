package fleet

import (
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Every string of a node summary, in nested messages and lists too, moves
// into one buffer, and the summary stays what it was, unknown fields and
// all.
func TestShareStringsKeepsTheMessage(t *testing.T) {
	n := &v1.Node{Cluster: "c1", Name: "node-1", Roles: []string{"control-plane", "", "worker"}, KubeletVersion: "v1.37.2",
		InternalIps: []string{"10.0.0.1"}, LastSeen: timestamppb.Now(),
		Identity: &v1.NodeIdentity{Hostname: "node-1", MachineId: "abc", BootId: "def", OsImage: "Debian"},
		Kubelet:  &v1.KubeletInfo{ConfigPath: "/var/lib/kubelet/config.yaml", KubeadmFlags: []string{"--a", "--b"}, Errors: []string{"x"}}}
	n.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), "unknown"))
	want := proto.CloneOf(n)
	shareStrings(n.ProtoReflect())
	if !proto.Equal(n, want) {
		t.Fatalf("changed:\n got %v\nwant %v", n, want)
	}
	strs := []string{n.Cluster, n.Name, n.KubeletVersion, n.InternalIps[0], n.Identity.Hostname, n.Identity.MachineId,
		n.Identity.BootId, n.Identity.OsImage, n.Kubelet.ConfigPath, n.Kubelet.KubeadmFlags[0], n.Kubelet.KubeadmFlags[1],
		n.Kubelet.Errors[0], n.Roles[0], n.Roles[2]}
	total := 0
	for _, s := range strs {
		total += len(s)
	}
	// All lie in one buffer of exactly their total size.
	lo, hi := uintptr(unsafe.Pointer(unsafe.StringData(strs[0]))), uintptr(0)
	for _, s := range strs {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		lo, hi = min(lo, p), max(hi, p+uintptr(len(s)))
	}
	if hi-lo != uintptr(total) {
		t.Fatalf("the strings span %d bytes, not one buffer of %d", hi-lo, total)
	}
	if n.Roles[1] != "" {
		t.Fatalf("an empty role became %q", n.Roles[1])
	}
	// Nothing to share leaves the message alone.
	empty := &v1.Node{InApi: true}
	shareStrings(empty.ProtoReflect())
	if !proto.Equal(empty, &v1.Node{InApi: true}) {
		t.Fatal(empty)
	}
}
