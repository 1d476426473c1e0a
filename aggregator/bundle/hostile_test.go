package bundle

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
)

func newEngine(t testing.TB) *apply.Applier {
	t.Helper()
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	return apply.New(st, apply.Config{})
}

// copySeed copies the reference bundle to a directory of the test's own.
func copySeed(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "seed")
	if err := os.CopyFS(dir, os.DirFS("../../examples/seed-cluster")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadWithin loads dir and fails the test if loading does not end in time.
func loadWithin(t *testing.T, dir string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := Load(newEngine(t), dir); done <- err }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("loading the bundle hangs")
		return nil
	}
}

func TestSpecialFilesAreErrorsNotHangs(t *testing.T) {
	for _, name := range []string{"bundle.yaml", "nodes/zzz.json", "api/more.yaml"} {
		t.Run("fifo as "+name, func(t *testing.T) {
			dir := copySeed(t)
			p := filepath.Join(dir, name)
			_ = os.Remove(p)
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skipf("no FIFOs here: %v", err)
			}
			err := loadWithin(t, dir)
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("got %v, want an error naming the FIFO", err)
			}
		})
		t.Run("/dev/zero as "+name, func(t *testing.T) {
			dir := copySeed(t)
			p := filepath.Join(dir, name)
			_ = os.Remove(p)
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
			if err := loadWithin(t, dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("got %v, want an error naming the device", err)
			}
		})
	}
}

func TestOversizedFilesAreRefusedBeforeReading(t *testing.T) {
	dir := copySeed(t)
	p := filepath.Join(dir, "nodes", "big.json")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse file: large, but costs no disk.
	if err := f.Truncate(maxSnapshotBytes + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := loadWithin(t, dir); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("got %v", err)
	}
}

// failingFS fails every read under one directory, as an unreadable api/ would.
type failingFS struct {
	fs.FS
	dir string
}

func (f failingFS) Open(name string) (fs.File, error) {
	if name == f.dir || strings.HasPrefix(name, f.dir+"/") {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return f.FS.Open(name)
}

func TestUnreadableAPIIsAnError(t *testing.T) {
	fsys := failingFS{os.DirFS("../../examples/seed-cluster"), "api"}
	_, err := LoadFS(newEngine(t), fsys, "seed")
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("got %v, want the permission error", err)
	}
}

func TestNamesAreValidated(t *testing.T) {
	snap := func(cluster, node string) []byte {
		return []byte(`{"identity":{"cluster":"` + cluster + `","nodeName":"` + node + `"}}`)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"node with a slash":    {"nodes/a.json": {Data: snap("x", "a/b")}},
		"cluster with a slash": {"nodes/a.json": {Data: snap("x/a", "b")}},
		"upper-case node":      {"nodes/a.json": {Data: snap("x", "Node1")}},
		"cluster in meta":      {"bundle.yaml": {Data: []byte("cluster: Has Spaces\n")}, "nodes/a.json": {Data: snap("", "n")}},
	} {
		if _, err := LoadFS(newEngine(t), fsys, "x"); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	if _, err := LoadFS(newEngine(t), fstest.MapFS{"nodes/a.json": {Data: snap("", "n")}}, "Not A Name"); err == nil ||
		!strings.Contains(err.Error(), "bundle.yaml") {
		t.Errorf("an invalid directory name was taken as the cluster: %v", err)
	}
}

func FuzzReadSnapshot(f *testing.F) {
	data, err := os.ReadFile("../../examples/seed-cluster/nodes/test.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"identity":{"nodeName":"\udc00"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fsys := fstest.MapFS{"nodes/n.json": {Data: b}}
		_, _ = LoadFS(newEngine(t), fsys, "fuzz")
	})
}
