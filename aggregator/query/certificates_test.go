package query

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func TestListCertificates(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	e := apply.New(st, apply.Config{Now: func() time.Time { return now }})
	for _, node := range []string{"a", "b"} {
		var certs []*v1.Certificate
		for i := range 5 {
			certs = append(certs, &v1.Certificate{Path: fmt.Sprintf("/pki/%d.crt", i), IsCa: i == 0,
				NotBefore: timestamppb.New(now.Add(-day)), NotAfter: timestamppb.New(now.Add(time.Duration(i*20) * day)),
				Uses: []*v1.CertificateUse{{Component: "etcd", Flag: "cert-file"}}})
		}
		certs = append(certs, &v1.Certificate{Path: "/pki/gone.crt", Error: "/pki/gone.crt: no such file or directory"})
		if err := e.ApplyInventory(apply.Inventory{Cluster: "c", Node: node, Identity: &v1.NodeIdentity{Cluster: "c", NodeName: node},
			Certificates: certs, State: v1.AgentState_AGENT_STATE_REPORTING, SeenAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	s := NewServer(st)
	s.Now = func() time.Time { return now }
	ctx := context.Background()
	list := func(req *v1.ListCertificatesRequest) ([]string, error) {
		var out []string
		for {
			resp, err := s.ListCertificates(ctx, req)
			if err != nil {
				return nil, err
			}
			for _, c := range resp.Certificates {
				out = append(out, c.Node+":"+c.Certificate.Path)
			}
			if resp.NextPageToken == "" {
				return out, nil
			}
			req.PageToken = resp.NextPageToken
		}
	}
	all, err := list(&v1.ListCertificatesRequest{PageSize: 4})
	if err != nil || len(all) != 12 || all[0] != "a:/pki/0.crt" || all[6] != "b:/pki/0.crt" || all[11] != "b:/pki/gone.crt" {
		t.Errorf("every certificate in pages of 4: %v, %v", all, err)
	}
	// 0.crt expired today, 1.crt expires in 20 days, 2.crt in 40.
	soon, err := list(&v1.ListCertificatesRequest{Node: "b", ExpiringWithin: durationpb.New(30 * day)})
	if err != nil || fmt.Sprint(soon) != "[b:/pki/0.crt b:/pki/1.crt]" {
		t.Errorf("expiring within 30 days on b: %v, %v", soon, err)
	}
	cas, err := list(&v1.ListCertificatesRequest{Filter: `certificate.is_ca && "etcd" in certificate.components && certificate.not_after <= timestamp("2026-12-01T00:00:00Z")`})
	if err != nil || fmt.Sprint(cas) != "[a:/pki/0.crt b:/pki/0.crt]" {
		t.Errorf("filtered: %v, %v", cas, err)
	}
	for _, req := range []*v1.ListCertificatesRequest{
		{Filter: "certificate.nope"},
		{ExpiringWithin: durationpb.New(-day)},
	} {
		if _, err := s.ListCertificates(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%v: %v, want InvalidArgument", req, err)
		}
	}
	n, err := s.GetNode(ctx, &v1.GetNodeRequest{Cluster: "c", Name: "a"})
	if err != nil || n.Node.CertificateCount != 6 {
		t.Errorf("GetNode: certificate_count %d, %v", n.GetNode().GetCertificateCount(), err)
	}
}
