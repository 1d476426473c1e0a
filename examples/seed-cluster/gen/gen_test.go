package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestCommittedBundleIsGenerated fails when examples/seed-cluster differs from
// what the generator writes: regenerate with
// go run ./examples/seed-cluster/gen -out examples/seed-cluster.
func TestCommittedBundleIsGenerated(t *testing.T) {
	out := t.TempDir()
	if err := run(out); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join("..", rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from the generator's output; regenerate the bundle", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("generator wrote only %d files", n)
	}
}
