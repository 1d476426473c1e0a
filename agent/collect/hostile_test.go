package collect

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
)

// TestHostileCommandLines runs processes whose command lines any local user
// could start, and scans them with the real collector: no panic, every
// string valid UTF-8 (so the inventory marshals), and no secret in it.
func TestHostileCommandLines(t *testing.T) {
	argvs := [][]string{
		// Case folding changes byte lengths: offsets from a lower-cased copy
		// must never index the original.
		{"/bin/bash", "bash", "-c", "sleep 300; :", strings.Repeat("\u023a", 10) + "bearer "},
		// Cut at 200 bytes, the é would be split.
		{"/bin/sleep", "kube-proxy --x=" + strings.Repeat("a", 184) + "é", "300"},
		// argv holds any bytes.
		{"/bin/bash", "bash", "-c", "sleep 300; :", "--token=\xff\xfeS3CR3TBYTES", "\xfe\xff"},
		// A process title rewritten into argv[0].
		{"/bin/sleep", "kube-apiserver --token=S3CR3TTITLE --etcd-servers=https://root:S3CR3TPASS@10.0.0.1:2379", "300"},
		// A secret inside an sh -c script.
		{"/bin/sh", "sh", "-c", "sleep 300; /usr/bin/curl -H 'Authorization: Bearer S3CR3TSHELL' --password -S3CR3TDASH"},
	}
	var pids []int
	for _, a := range argvs {
		cmd := exec.Command(a[0])
		cmd.Args = a[1:]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		pids = append(pids, cmd.Process.Pid)
	}
	c, err := New(Config{Cluster: "c", MaxArgvBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, p := range inv.Processes {
		for _, pid := range pids {
			if int(p.Pid) == pid {
				found++
			}
		}
	}
	if found != len(pids) {
		t.Fatalf("found %d of the %d processes", found, len(pids))
	}
	b, err := proto.Marshal(inv)
	if err != nil {
		t.Fatalf("the inventory does not marshal: %v", err)
	}
	if bytes.Contains(b, []byte("S3CR3T")) {
		for _, p := range inv.Processes {
			if strings.Contains(strings.Join(p.Argv, " "), "S3CR3T") {
				t.Errorf("secret sent: %q", p.Argv)
			}
		}
	}
	for _, p := range inv.Processes {
		for _, a := range p.Argv {
			if !utf8.ValidString(a) {
				t.Errorf("invalid UTF-8 in %q", p.Argv)
			}
		}
	}
}
