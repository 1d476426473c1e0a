package query

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func TestInvalidEnumFiltersAreRefused(t *testing.T) {
	s, _ := seed(t)
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"how":          func() error { _, err := s.ListComponents(ctx, &v1.ListComponentsRequest{How: 99}); return err },
		"agent state":  func() error { _, err := s.ListNodes(ctx, &v1.ListNodesRequest{AgentState: 42}); return err },
		"kind":         func() error { _, err := s.ListFindings(ctx, &v1.ListFindingsRequest{Kind: 1234}); return err },
		"min severity": func() error { _, err := s.ListFindings(ctx, &v1.ListFindingsRequest{MinSeverity: -3}); return err },
	} {
		if err := call(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

func TestPageTokensAreBoundToTheirRequest(t *testing.T) {
	s, _ := seed(t)
	ctx := context.Background()
	first, err := s.ListComponents(ctx, &v1.ListComponentsRequest{Cluster: "seed", PageSize: 2})
	if err != nil || first.NextPageToken == "" {
		t.Fatalf("%v %v", first, err)
	}
	// The same filters with another page size: fine (AIP-158).
	if _, err := s.ListComponents(ctx, &v1.ListComponentsRequest{Cluster: "seed", PageSize: 5, PageToken: first.NextPageToken}); err != nil {
		t.Fatalf("same filters refused: %v", err)
	}
	// Other filters: refused.
	_, err = s.ListComponents(ctx, &v1.ListComponentsRequest{Cluster: "seed", Component: "kubelet", PageSize: 2, PageToken: first.NextPageToken})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("token reused with other filters: %v", err)
	}
	// Another List's token: refused.
	_, err = s.ListNodes(ctx, &v1.ListNodesRequest{Cluster: "seed", PageToken: first.NextPageToken})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a ListComponents token taken by ListNodes: %v", err)
	}
}

func TestPagesStopBeforeTheClientLimit(t *testing.T) {
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	e := apply.New(st, apply.Config{})
	// 40 processes of 200 KiB each: 8 MiB, more than a 4 MiB message.
	var procs []*v1.Process
	for i := 1; i <= 40; i++ {
		procs = append(procs, &v1.Process{Pid: int32(i), Argv: []string{"/bin/x", strings.Repeat("a", 200<<10)}})
	}
	if err := e.ApplyInventory(apply.Inventory{Cluster: "c", Node: "n", Identity: &v1.NodeIdentity{Cluster: "c", NodeName: "n"}, Processes: procs}); err != nil {
		t.Fatal(err)
	}
	s := NewServer(st)
	req := &v1.ListProcessesRequest{PageSize: 1000}
	seen := 0
	for pages := 0; ; pages++ {
		resp, err := s.ListProcesses(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if size := proto.Size(resp); size > 4<<20 {
			t.Fatalf("page of %d bytes", size)
		}
		seen += len(resp.Processes)
		if resp.NextPageToken == "" {
			break
		}
		req.PageToken = resp.NextPageToken
		if pages > 40 {
			t.Fatal("paging does not end")
		}
	}
	if seen != 40 {
		t.Fatalf("%d processes over all pages, want 40", seen)
	}
}

func TestErrorsDoNotEchoHugeNames(t *testing.T) {
	s, _ := seed(t)
	huge := strings.Repeat("x", 1<<20)
	for _, err := range []error{
		func() error {
			_, err := s.GetCluster(context.Background(), &v1.GetClusterRequest{Name: huge})
			return err
		}(),
		func() error {
			_, err := s.GetNode(context.Background(), &v1.GetNodeRequest{Name: huge, Cluster: huge})
			return err
		}(),
		func() error {
			_, err := s.ListComponents(context.Background(), &v1.ListComponentsRequest{Component: huge})
			return err
		}(),
	} {
		if err == nil || len(err.Error()) > 1024 {
			t.Errorf("error of %d bytes", len(err.Error()))
		}
	}
}
