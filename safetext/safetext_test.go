package safetext

import (
	"strings"
	"testing"
	"unicode/utf8"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"google.golang.org/protobuf/proto"
)

func TestCutNeverSplitsARune(t *testing.T) {
	s := "kube-proxy --x=" + strings.Repeat("a", 184) + "é"
	for n := 0; n <= len(s)+1; n++ {
		c := Cut(s, n)
		if !utf8.ValidString(c) || len(c) > n || !strings.HasPrefix(s, c) {
			t.Fatalf("Cut(%d) = %q", n, c)
		}
	}
	if e := Ellipsis(s, 200); !utf8.ValidString(e) || !strings.HasSuffix(e, "…") {
		t.Fatalf("Ellipsis = %q", e)
	}
	if e := Ellipsis("short", 200); e != "short" {
		t.Fatalf("Ellipsis marked an uncut string: %q", e)
	}
}

func TestMessageMakesEveryStringValid(t *testing.T) {
	bad := "x\xff\xfe"
	p := &v1.Process{
		User: bad, Argv: []string{"ok", bad}, CgroupPath: bad,
		Components: []*v1.HostedComponent{{Component: bad, Flags: []*v1.Flag{{Name: bad, Values: []string{bad}}}}},
	}
	if n := Message(p); n != 6 {
		t.Errorf("changed %d strings, want 6", n)
	}
	if _, err := proto.Marshal(p); err != nil {
		t.Fatalf("still not marshallable: %v", err)
	}
	ev := &v1.Evidence{Attributes: map[string]string{bad: bad, "k": "v"}}
	Message(ev)
	if _, err := proto.Marshal(ev); err != nil {
		t.Fatalf("map not fixed: %v", err)
	}
	if len(ev.Attributes) != 2 || ev.Attributes["k"] != "v" {
		t.Fatalf("map lost entries: %v", ev.Attributes)
	}
}

func FuzzCut(f *testing.F) {
	f.Add("é\xff漢字", 3)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n > 1<<20 {
			return
		}
		c := Cut(s, n)
		if !utf8.ValidString(c) || (n >= 0 && len(c) > n) {
			t.Fatalf("Cut(%q, %d) = %q", s, n, c)
		}
	})
}

func TestWireMakesEveryStringValid(t *testing.T) {
	good := &v1.ConnectRequest{Payload: &v1.ConnectRequest_SnapshotChunk{SnapshotChunk: &v1.SnapshotChunk{
		Identity:  &v1.NodeIdentity{NodeName: "XXXX"},
		Processes: []*v1.Process{{Pid: 7, Argv: []string{"ok", "YYYY"}, Components: []*v1.HostedComponent{{Flags: []*v1.Flag{{Name: "ZZZZ"}}}}}},
	}}}
	b, err := proto.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"XXXX", "YYYY", "ZZZZ"} {
		b = []byte(strings.Replace(string(b), w, "a\xff\xfeb", 1))
	}
	var m v1.ConnectRequest
	if proto.Unmarshal(b, &m) == nil {
		t.Fatal("the test message is valid")
	}
	fixed, n, err := Wire(b, m.ProtoReflect().Descriptor())
	if err != nil || n != 3 {
		t.Fatalf("Wire: %d changed, %v", n, err)
	}
	if err := proto.Unmarshal(fixed, &m); err != nil {
		t.Fatal(err)
	}
	p := m.GetSnapshotChunk().Processes[0]
	if p.Pid != 7 || p.Argv[1] != "a\uFFFDb" || m.GetSnapshotChunk().Identity.NodeName != "a\uFFFDb" {
		t.Fatalf("decoded %v", &m)
	}
}

func FuzzWire(f *testing.F) {
	b, _ := proto.Marshal(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{Identity: &v1.NodeIdentity{Cluster: "c", NodeName: "n"}}}})
	f.Add(b)
	md := (&v1.ConnectRequest{}).ProtoReflect().Descriptor()
	f.Fuzz(func(t *testing.T, b []byte) {
		fixed, _, err := Wire(b, md)
		if err != nil {
			return
		}
		var m v1.ConnectRequest
		if err := proto.Unmarshal(fixed, &m); err != nil && strings.Contains(err.Error(), "UTF-8") {
			t.Fatalf("still invalid UTF-8 after Wire: %v", err)
		}
	})
}
