package state

import (
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"node-1", "n.example.com", "a", strings.Repeat("a", 253)} {
		if !ValidName(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "a..b", "a/b", "Node", "-a", "a-", ".a", strings.Repeat("a", 254), "a b", "é"} {
		if ValidName(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
