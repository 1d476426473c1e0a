package collect

import (
	"testing"
	"unicode/utf8"
)

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (systemd) S 0 1 1 0 -1 4194560 50000 0 100 0 12 34 0 0 20 0 1 0 5 170000000 3000 18446744073709551615"))
	f.Add([]byte("7 (a) b) c) R 1 2 3"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStat(b)
		if err == nil && !utf8.ValidString(st.comm) && len(st.comm) > len(b) {
			t.Fatalf("comm longer than its input")
		}
	})
}

func FuzzParsePasswd(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/sbin/nologin\n"))
	f.Add([]byte("\xff\xfe:x:7:7::/:\n::8:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, name := range parsePasswd(b) {
			if !utf8.ValidString(name) || name == "" || len(name) > 256 {
				t.Fatalf("user name %q", name)
			}
		}
	})
}
