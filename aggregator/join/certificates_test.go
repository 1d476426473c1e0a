package join

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func cert(path string, notBefore, notAfter time.Time, uses ...*v1.CertificateUse) *v1.Certificate {
	return &v1.Certificate{Path: path, Subject: "CN=" + path, Issuer: "CN=kubernetes", NotBefore: timestamppb.New(notBefore),
		NotAfter: timestamppb.New(notAfter), Uses: uses}
}

func TestCertificateFindings(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	apiserver := &v1.CertificateUse{Component: "kube-apiserver", Implementation: "kube-apiserver", Pid: 10, Flag: "tls-cert-file"}
	kubelet := &v1.CertificateUse{Component: "kubelet", Implementation: "kubelet", Pid: 11, Flag: "tlsCertFile"}
	a := reporting()
	a.Certificates = []*v1.Certificate{
		cert("/pki/fine.crt", now.Add(-day), now.Add(365*day), apiserver),
		cert("/pki/soon.crt", now.Add(-day), now.Add(29*day), apiserver, kubelet),
		cert("/pki/edge.crt", now.Add(-day), now.Add(30*day)),
		cert("/pki/past.crt", now.Add(-400*day), now.Add(-3*day), kubelet),
		cert("/pki/future.crt", now.Add(day), now.Add(400*day), apiserver),
		{Path: "/pki/missing.crt", Error: "/pki/missing.crt: no such file or directory", Uses: []*v1.CertificateUse{apiserver}},
	}
	in := NodeInput{Cluster: "c", Node: &state.Node{ID: "c/n1", Cluster: "c", Name: "n1", Agent: a}, Procs: []*v1.Process{}, Now: now}
	got := map[string]*v1.Finding{}
	for _, f := range Node(in).Findings {
		got[f.Kind.Word()+" "+f.Subject] = f
	}
	want := map[string]v1.Severity{
		"certificate-expiring /pki/soon.crt":  v1.Severity_SEVERITY_WARNING,
		"certificate-expiring /pki/edge.crt":  v1.Severity_SEVERITY_WARNING, // exactly 30 days: within
		"certificate-expired /pki/past.crt":   v1.Severity_SEVERITY_CRITICAL,
		"certificate-expired /pki/future.crt": v1.Severity_SEVERITY_CRITICAL, // not valid yet
	}
	if len(got) != len(want) {
		t.Errorf("findings %v, want %v", keysOf(got), want)
	}
	for k, sev := range want {
		f := got[k]
		if f == nil {
			t.Errorf("no %s", k)
			continue
		}
		if f.Severity != sev || len(f.Evidence) != 1 || f.Evidence[0].Kind != v1.EvidenceKind_EVIDENCE_KIND_CERTIFICATE {
			t.Errorf("%s: %v", k, f)
		}
	}
	if s := got["certificate-expiring /pki/soon.crt"].GetSummary(); !strings.Contains(s, "expires in 29 days") ||
		!strings.Contains(s, "used by kube-apiserver --tls-cert-file, kubelet tlsCertFile") {
		t.Errorf("summary %q does not say when, or which components will fail", s)
	}
	if s := got["certificate-expired /pki/past.crt"].GetSummary(); !strings.Contains(s, "expired 3 days ago") {
		t.Errorf("summary %q", s)
	}
	// A wider window, and no clock (zero Now): no certificate findings.
	in.Settings.CertificateExpiring = 400 * day
	if n := len(Node(in).Findings); n != 5 {
		t.Errorf("with a 400-day window: %d findings, want 5", n)
	}
	in.Now = time.Time{}
	if n := len(Node(in).Findings); n != 0 {
		t.Errorf("with no clock: %d findings", n)
	}
}

func keysOf(m map[string]*v1.Finding) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
