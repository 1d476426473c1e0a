package collect

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestBootTimeFromProcStat(t *testing.T) {
	for _, c := range []struct {
		stat string
		want time.Time
		ok   bool
	}{
		{"cpu  1 2 3 4 5 6 7 8 9 10\nintr 5\nbtime 1700000000\nprocesses 9\n", time.Unix(1_700_000_000, 0), true},
		{"cpu  1 2 3 4 5 6 7 8 9 10\nprocesses 9\n", time.Time{}, false},
		{"btime 99999999999999999\n", time.Time{}, false},
		{"btime nonsense\n", time.Time{}, false},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(c.stat), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := bootTime(dir)
		if (err == nil) != c.ok || !got.Equal(c.want) {
			t.Errorf("%q: %v, %v", c.stat, got, err)
		}
	}
	if bt, err := bootTime("/proc"); err != nil || time.Since(bt) < 0 {
		t.Fatalf("this machine's boot time: %v, %v", bt, err)
	}
}

func TestParsePasswd(t *testing.T) {
	names := parsePasswd([]byte("root:x:0:0:root:/root:/bin/bash\nalias:x:0:0::/:\n#comment\n\n:x:5:5::/:\nbad:x:notanumber:1::/:\nnobody:x:65534:65534::/:/sbin/nologin\n\xff:x:7:7::/:\n"))
	for uid, want := range map[uint32]string{0: "root", 65534: "nobody", 7: "\uFFFD"} {
		if names[uid] != want {
			t.Errorf("uid %d: %q, want %q", uid, names[uid], want)
		}
	}
	if _, ok := names[5]; ok {
		t.Error("a line without a name gave one")
	}
}
