package collect

import (
	"os"
	"slices"

	"github.com/shirou/gopsutil/v4/process"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/kubeatlas/kubeatlas/agent/hostfile"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/safetext"
)

// poison sets every string field of m, at any depth, to invalid UTF-8: one
// element in each repeated field, one message in each message field. It
// returns how many strings it set.
func poison(m protoreflect.Message, depth int) int {
	if depth > 4 {
		return 0
	}
	n := 0
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			continue // Process has none; a map would need its own case here.
		case fd.Kind() == protoreflect.StringKind && fd.IsList():
			m.Mutable(fd).List().Append(protoreflect.ValueOfString("bad\xff"))
			n++
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString("bad\xfe"))
			n++
		case fd.Kind() == protoreflect.MessageKind && fd.IsList():
			l := m.Mutable(fd).List()
			e := l.NewElement()
			n += poison(e.Message(), depth+1)
			l.Append(e)
		case fd.Kind() == protoreflect.MessageKind:
			n += poison(m.Mutable(fd).Message(), depth+1)
		}
	}
	return n
}

// TestValidTextCoversProcess: validText leaves nothing for the reflective
// safetext.Message to fix, for every string field Process has today.
func TestValidTextCoversProcess(t *testing.T) {
	p := &v1.Process{}
	set := poison(p.ProtoReflect(), 0)
	if set < 10 {
		t.Fatalf("poisoned only %d strings; the walk is broken", set)
	}
	if got := safetext.Message(proto.Clone(p)); got != set {
		t.Fatalf("safetext.Message fixed %d strings, want %d", got, set)
	}
	validText(p)
	if left := safetext.Message(p); left != 0 {
		t.Fatalf("validText left %d invalid strings in a process record; cover the new field", left)
	}
	if !utf8.ValidString(p.User) || p.User != "bad\uFFFD" {
		t.Fatalf("user = %q", p.User)
	}
}

// TestSplitCmdline: the command line splits as gopsutil's CmdlineSlice
// splits it, and the scan's user is the owner ps shows.
func TestSplitCmdline(t *testing.T) {
	for _, tc := range []struct {
		data string
		want []string
	}{
		{"", nil},
		{"kubelet\x00--config=k.yaml\x00", []string{"kubelet", "--config=k.yaml"}},
		{"a\x00\x00b\x00\x00", []string{"a", "", "b"}},
		{"\x00\x00", []string{""}},
		{"nginx: master process", []string{"nginx: master process"}},
	} {
		if got := splitCmdline([]byte(tc.data)); !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("splitCmdline(%q) = %q; want %q", tc.data, got, tc.want)
		}
	}
	want, err := (&process.Process{Pid: int32(os.Getpid())}).CmdlineSlice()
	if err != nil {
		t.Fatal(err)
	}
	raw, uid, err := hostfile.ReadProcOwner("/proc/self/cmdline", maxCmdline)
	if err != nil {
		t.Fatal(err)
	}
	if got := splitCmdline(raw); !slices.Equal(got, want) {
		t.Fatalf("own cmdline = %q; gopsutil says %q", got, want)
	}
	if uid != uint32(os.Geteuid()) {
		t.Fatalf("owner of own cmdline = %d, want euid %d", uid, os.Geteuid())
	}
}
