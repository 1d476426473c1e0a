package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTokensRefusesFilesEveryoneMayRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tokens")
	if err := os.WriteFile(p, []byte("# ops\nabc\n\ndef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTokens(p); err == nil || !strings.Contains(err.Error(), "every user") {
		t.Fatalf("a world-readable token file: %v", err)
	}
	if err := os.Chmod(p, 0o440); err != nil {
		t.Fatal(err)
	}
	toks, err := ReadTokens(p)
	if err != nil || strings.Join(toks, ",") != "abc,def" {
		t.Fatalf("got %v %v", toks, err)
	}
	if _, err := ReadTokens(dir); err == nil {
		t.Fatal("a directory read as a token file")
	}
}
