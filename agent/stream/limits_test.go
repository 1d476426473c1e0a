package stream

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func TestSplitDeltaKeepsEveryChangeInOrderUnderBudget(t *testing.T) {
	d := &v1.Delta{Stats: &v1.ScanStats{ProcessesSeen: 9}, WallClock: timestamppb.Now(), Kubelet: &v1.KubeletInfo{StaticPodPath: "/x"}}
	for i := 0; i < 2000; i++ {
		d.UpsertedProcesses = append(d.UpsertedProcesses, p(int32(i), "/usr/bin/some-long-program-name", "--with", "arguments"))
		d.RemovedProcesses = append(d.RemovedProcesses, &v1.ProcessKey{Pid: int32(5000 + i)})
	}
	parts := SplitDelta(d, 16<<10)
	if len(parts) < 5 {
		t.Fatalf("%d parts", len(parts))
	}
	ups, rms := 0, 0
	for i, part := range parts {
		if size := proto.Size(part); size > 17<<10 {
			t.Errorf("part %d is %d bytes", i, size)
		}
		for _, u := range part.UpsertedProcesses {
			if u.Pid != int32(ups) {
				t.Fatalf("upsert %d out of order", u.Pid)
			}
			ups++
		}
		rms += len(part.RemovedProcesses)
		if last := i == len(parts)-1; last != (part.Stats != nil) || last != (part.WallClock != nil) || last != (part.Kubelet != nil) {
			t.Errorf("part %d carries stats, clock or kubelet wrongly", i)
		}
	}
	if ups != 2000 || rms != 2000 {
		t.Fatalf("%d upserts and %d removals, want 2000 each", ups, rms)
	}
	small := &v1.Delta{UpsertedProcesses: d.UpsertedProcesses[:1]}
	if got := SplitDelta(small, 16<<10); len(got) != 1 || got[0] != small {
		t.Fatal("a small delta was split")
	}
}

func TestSettingsNarrowLimits(t *testing.T) {
	c := &Client{cfg: Config{ChunkBytes: DefaultChunkBytes, HeartbeatInterval: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)}}
	lim := c.apply(&v1.Settings{MaxMessageBytes: 64 << 10, HeartbeatInterval: durationpb.New(3 * time.Second), MaxProcesses: 2})
	if lim.chunk != 32<<10 || lim.heartbeat != 3*time.Second || lim.maxProcesses != 2 {
		t.Fatalf("limits %+v", lim)
	}
	// A larger message limit never grows chunks past the agent's own budget.
	if lim := c.apply(&v1.Settings{MaxMessageBytes: 64 << 20}); lim.chunk != DefaultChunkBytes || lim.heartbeat != 10*time.Second {
		t.Fatalf("limits %+v", lim)
	}
	inv := &v1.NodeInventory{Processes: []*v1.Process{p(1, "init"), p(2, "bash"), p(3, "kubelet")}}
	inv.Processes[2].Components = []*v1.HostedComponent{{Component: v1.ComponentKubelet}}
	capped := lim.capProcesses(inv, c.cfg.Logger)
	if len(capped.Processes) != 2 || capped.Processes[1].Pid != 3 || len(inv.Processes) != 3 {
		t.Fatalf("capped to %v", capped.Processes)
	}
}

func TestExplainNamesTheCause(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.Unavailable, "connection error: desc = \"transport: authentication handshake failed: remote error: tls: expired certificate\""), "expired"},
		{status.Error(codes.Unavailable, "x509: certificate signed by unknown authority"), "not trusted"},
		{status.Error(codes.PermissionDenied, "may not report for c/n"), "another node"},
		{errors.New("tls: first record does not look like a TLS handshake"), "plaintext"},
	} {
		if got := Explain(tt.err); !strings.Contains(got, tt.want) {
			t.Errorf("Explain(%v) = %q, want it to say %q", tt.err, got, tt.want)
		}
	}
}
