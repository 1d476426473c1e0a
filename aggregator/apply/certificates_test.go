package apply

import (
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// A certificate turns expiring, then expired, with no report from anyone:
// CheckCertificates raises the findings as the clock passes.
func TestCertificatesExpireWithTime(t *testing.T) {
	day := 24 * time.Hour
	clock := &fakeClock{t: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}
	e := newEngine(t, Config{Now: clock.Now})
	c := &v1.Certificate{Path: "/etc/kubernetes/pki/apiserver.crt", Subject: "CN=kube-apiserver",
		NotBefore: timestamppb.New(clock.Now().Add(-day)), NotAfter: timestamppb.New(clock.Now().Add(32 * day)),
		Uses: []*v1.CertificateUse{{Component: "kube-apiserver", Flag: "tls-cert-file"}}}
	if err := e.ApplyInventory(Inventory{Cluster: "c", Node: "n", Identity: &v1.NodeIdentity{Cluster: "c", NodeName: "n"},
		Processes: someProcesses(2), Certificates: []*v1.Certificate{c}, State: v1.AgentState_AGENT_STATE_REPORTING, SeenAt: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	check := func(want ...v1.FindingKind) {
		t.Helper()
		if err := e.CheckCertificates(); err != nil {
			t.Fatal(err)
		}
		if got := findingsOf(e, "c", "n"); !slices.Equal(got, want) {
			t.Errorf("at %s: findings %v, want %v", clock.Now().Format(time.DateOnly), got, want)
		}
	}
	check()
	clock.Add(day)
	check()
	clock.Add(day + time.Minute) // 30 days less a minute left
	check(v1.FindingKind_FINDING_KIND_CERTIFICATE_EXPIRING)
	clock.Add(31 * day)
	check(v1.FindingKind_FINDING_KIND_CERTIFICATE_EXPIRED)

	// The agent reports a renewed certificate: the finding clears.
	renewed := &v1.Certificate{Path: c.Path, Subject: c.Subject, NotBefore: timestamppb.New(clock.Now()), NotAfter: timestamppb.New(clock.Now().Add(365 * day))}
	if err := e.ApplyDelta("c", "n", &v1.Delta{Certificates: &v1.CertificateSet{Certificates: []*v1.Certificate{renewed}}}, clock.Now(), 2, Limits{}); err != nil {
		t.Fatal(err)
	}
	check()
	if got := nodeRow(e, "c", "n").Agent.Certificates; len(got) != 1 || got[0] != renewed {
		t.Errorf("the delta's certificate set did not replace the old one: %v", got)
	}
	// A delta without certificates leaves them as they were.
	if err := e.ApplyDelta("c", "n", &v1.Delta{}, clock.Now(), 3, Limits{}); err != nil {
		t.Fatal(err)
	}
	if got := nodeRow(e, "c", "n").Agent.Certificates; len(got) != 1 {
		t.Errorf("a delta without certificates dropped them: %v", got)
	}
}

// A bundle's node is judged at the bundle's collection time, not today.
func TestBundleCertificatesAreJudgedWhenCollected(t *testing.T) {
	day := 24 * time.Hour
	collected := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	e := newEngine(t, Config{})
	c := &v1.Certificate{Path: "/pki/a.crt", NotBefore: timestamppb.New(collected.Add(-day)), NotAfter: timestamppb.New(collected.Add(10 * day))}
	if err := e.ApplyInventory(Inventory{Cluster: "c", Node: "n", Identity: &v1.NodeIdentity{Cluster: "c", NodeName: "n"},
		Certificates: []*v1.Certificate{c}, State: v1.AgentState_AGENT_STATE_OFFLINE, SeenAt: collected, Reference: collected}); err != nil {
		t.Fatal(err)
	}
	if got := findingsOf(e, "c", "n"); !slices.Equal(got, []v1.FindingKind{v1.FindingKind_FINDING_KIND_CERTIFICATE_EXPIRING}) {
		t.Errorf("findings %v, want one CERTIFICATE_EXPIRING as of the collection", got)
	}
}
