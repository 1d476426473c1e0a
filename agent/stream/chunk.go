package stream

import (
	"sort"

	"google.golang.org/protobuf/proto"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// DefaultChunkBytes is the payload budget of one snapshot chunk, well under
// both the 1 MiB the agent promises and gRPC's 4 MiB default.
const DefaultChunkBytes = 512 << 10

// Chunks splits an inventory into snapshot chunks of at most about budget
// bytes each. Identity, kubelet and certificates ride on the first chunk,
// stats on the last.
// There is always at least one chunk.
func Chunks(inv *v1.NodeInventory, budget int) []*v1.SnapshotChunk {
	if budget <= 0 {
		budget = DefaultChunkBytes
	}
	first := &v1.SnapshotChunk{Identity: inv.Identity, Kubelet: inv.Kubelet, Certificates: inv.Certificates}
	chunks := []*v1.SnapshotChunk{first}
	cur, size := first, proto.Size(first)
	next := func() {
		cur = &v1.SnapshotChunk{}
		chunks = append(chunks, cur)
		size = 0
	}
	for _, p := range inv.Processes {
		n := proto.Size(p) + 4
		if size+n > budget && (len(cur.Processes) > 0 || len(cur.Manifests) > 0) {
			next()
		}
		cur.Processes = append(cur.Processes, p)
		size += n
	}
	for _, m := range inv.Manifests {
		n := proto.Size(m) + 4
		if size+n > budget && (len(cur.Processes) > 0 || len(cur.Manifests) > 0) {
			next()
		}
		cur.Manifests = append(cur.Manifests, m)
		size += n
	}
	cur.Last = true
	cur.Stats = inv.Stats
	return chunks
}

func sortDelta(d *v1.Delta) {
	sort.Slice(d.UpsertedProcesses, func(i, j int) bool { return d.UpsertedProcesses[i].Pid < d.UpsertedProcesses[j].Pid })
	sort.Slice(d.RemovedProcesses, func(i, j int) bool { return d.RemovedProcesses[i].Pid < d.RemovedProcesses[j].Pid })
	sort.Slice(d.UpsertedManifests, func(i, j int) bool { return d.UpsertedManifests[i].Path < d.UpsertedManifests[j].Path })
	sort.Strings(d.RemovedManifestPaths)
}
