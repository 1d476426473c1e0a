package printer

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update if intended):\n%s", path, got)
	}
}

// A fleet view's clusters say who publishes each and how fresh it is.
func TestFleetClusters(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	resp := &v1.ListClustersResponse{Clusters: []*v1.Cluster{
		{Name: "east.prod", Mode: v1.ClusterMode_CLUSTER_MODE_STATIC_POD, ControlPlaneNodes: []string{"cp-1"}, NodeCount: 40, ReportingNodeCount: 40,
			KubernetesVersion: "v1.30.4", Publisher: "eu-aggregator", UpdatedAt: at, Freshness: v1.Freshness_FRESHNESS_LIVE},
		{Name: "west", Mode: v1.ClusterMode_CLUSTER_MODE_MANAGED, NodeCount: 12, ReportingNodeCount: 12, FindingCount: 2,
			KubernetesVersion: "v1.29.8", Provider: "EKS", Publisher: "us-aggregator", UpdatedAt: at, Freshness: v1.Freshness_FRESHNESS_STALE},
	}}
	for _, f := range []Format{Table, Wide} {
		var b bytes.Buffer
		if err := Clusters(&b, f, resp); err != nil {
			t.Fatal(err)
		}
		golden(t, "fleet-clusters-"+string(f), b.Bytes())
	}
}
