package hostfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSpecialFilesFailFast(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Read(fifo, 10); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("fifo: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO hangs")
	}
	if _, err := Read("/dev/zero", 10); err == nil {
		t.Fatal("/dev/zero read as a file")
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAll(big, 99); err == nil {
		t.Fatal("a file over the limit was read whole")
	}
	if b, err := Read("/proc/self/stat", 1<<20); err != nil || len(b) == 0 {
		t.Fatalf("procfs: %v", err)
	}
}

// Procfs files report size 0 and may be long; Read grows to take them whole,
// and stops at max.
func TestReadGrowsAndStops(t *testing.T) {
	want, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	got, err := Read("/proc/self/maps", 1<<20)
	if err != nil || len(got) < 512 || len(got) < len(want)/2 {
		t.Fatalf("read %d bytes of about %d: %v", len(got), len(want), err)
	}
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 10_000), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, max := range []int64{0, 1, 511, 4096, 10_000, 20_000} {
		got, err := Read(path, max)
		if err != nil || int64(len(got)) != min(max, 10_000) {
			t.Errorf("max %d: read %d bytes, %v", max, len(got), err)
		}
	}
}

func TestReadProc(t *testing.T) {
	want, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	got, err := ReadProc("/proc/self/maps", 1<<20)
	if err != nil || len(got) < len(want)/2 || !bytes.HasPrefix(want, got[:64]) {
		t.Fatalf("read %d bytes of about %d: %v", len(got), len(want), err)
	}
	if got, err := ReadProc("/proc/self/maps", 100); err != nil || len(got) != 100 {
		t.Fatalf("max 100: %d bytes, %v", len(got), err)
	}
	if got, err := ReadProc("/proc/self/cgroup", 64<<10); err != nil || !bytes.Contains(got, []byte(":")) {
		t.Fatalf("cgroup: %q, %v", got, err)
	}
	// A FIFO with no writer neither hangs nor fails the agent.
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _, _ = ReadProc(fifo, 100); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ReadProc hung on a FIFO")
	}
	if _, err := ReadProc("/proc/self/nonexistent", 100); err == nil {
		t.Fatal("no error for a missing file")
	}
}

func TestReadProcOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(path, []byte("a\x00b\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := uint32(os.Geteuid())
	if os.Geteuid() == 0 {
		want = 4242
		if err := os.Chown(path, int(want), int(want)); err != nil {
			t.Fatal(err)
		}
	}
	data, uid, err := ReadProcOwner(path, 1<<10)
	if err != nil || string(data) != "a\x00b\x00" || uid != want {
		t.Fatalf("ReadProcOwner = %q, %d, %v; want the data and uid %d", data, uid, err, want)
	}
	if _, _, err := ReadProcOwner(filepath.Join(t.TempDir(), "gone"), 1<<10); err == nil {
		t.Fatal("a missing file read without error")
	}
}
