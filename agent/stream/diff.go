// Package stream sends a node's inventory to the aggregator: a chunked
// snapshot, then deltas and heartbeats on one Connect stream, with acks,
// resyncs and reconnects.
package stream

import (
	"google.golang.org/protobuf/proto"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

type procKey struct {
	pid   int32
	start int64
}

func keyOf(p *v1.Process) procKey {
	return procKey{p.Pid, p.GetStartTime().AsTime().UnixNano()}
}

// State is what the aggregator was last sent, for diffing.
type State struct {
	procs   map[procKey]*v1.Process
	mans    map[string]*v1.StaticPodManifest
	kubelet *v1.KubeletInfo
	certs   []*v1.Certificate
}

// NewState indexes an inventory.
func NewState(inv *v1.NodeInventory) *State {
	s := &State{
		procs:   make(map[procKey]*v1.Process, len(inv.GetProcesses())),
		mans:    make(map[string]*v1.StaticPodManifest, len(inv.GetManifests())),
		kubelet: inv.GetKubelet(),
		certs:   inv.GetCertificates(),
	}
	for _, p := range inv.GetProcesses() {
		s.procs[keyOf(p)] = p
	}
	for _, m := range inv.GetManifests() {
		s.mans[m.Path] = m
	}
	return s
}

// Diff returns what changed from s to next, or nil when nothing did.
// Resource usage (RSS, CPU) is sampled when a process is first seen and is not
// itself a change: a steady node sends nothing but heartbeats.
func (s *State) Diff(next *State) *v1.Delta {
	d := &v1.Delta{}
	for k, p := range next.procs {
		old, ok := s.procs[k]
		if !ok || (old != p && !sameProcess(old, p)) {
			d.UpsertedProcesses = append(d.UpsertedProcesses, p)
		}
	}
	for k, p := range s.procs {
		if _, ok := next.procs[k]; !ok {
			d.RemovedProcesses = append(d.RemovedProcesses, &v1.ProcessKey{Pid: p.Pid, StartTime: p.StartTime})
		}
	}
	for path, m := range next.mans {
		old, ok := s.mans[path]
		if !ok || (old != m && old.Sha256 != m.Sha256) || (old != m && old.ParseError != m.ParseError) {
			d.UpsertedManifests = append(d.UpsertedManifests, m)
		}
	}
	for path := range s.mans {
		if _, ok := next.mans[path]; !ok {
			d.RemovedManifestPaths = append(d.RemovedManifestPaths, path)
		}
	}
	if !proto.Equal(s.kubelet, next.kubelet) {
		d.Kubelet = next.kubelet
	}
	if !sameCertificates(s.certs, next.certs) {
		// A node holds a few dozen certificates: a change sends them all.
		d.Certificates = &v1.CertificateSet{Certificates: next.certs}
	}
	if len(d.UpsertedProcesses) == 0 && len(d.RemovedProcesses) == 0 && len(d.UpsertedManifests) == 0 &&
		len(d.RemovedManifestPaths) == 0 && d.Kubelet == nil && d.Certificates == nil {
		return nil
	}
	sortDelta(d)
	return d
}

func sameCertificates(a, b []*v1.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func sameProcess(a, b *v1.Process) bool {
	ca, cb := proto.Clone(a).(*v1.Process), proto.Clone(b).(*v1.Process)
	ca.RssBytes, cb.RssBytes = 0, 0
	ca.CpuSeconds, cb.CpuSeconds = 0, 0
	return proto.Equal(ca, cb)
}
