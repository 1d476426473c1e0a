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
