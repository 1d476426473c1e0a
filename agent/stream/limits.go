package stream

import (
	"log/slog"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// settingsWait is how long a new stream waits for the aggregator's settings
// before it sends its snapshot with the agent's own limits.
const settingsWait = 10 * time.Second

// limits are what one stream may send: the agent's configuration, narrowed
// by the aggregator's settings.
type limits struct {
	chunk        int
	heartbeat    time.Duration
	maxProcesses int
}

// apply narrows the agent's limits to the aggregator's settings: a smaller
// message limit shrinks chunks, a heartbeat interval replaces the agent's,
// and a process limit caps what is sent.
func (c *Client) apply(st *v1.Settings) limits {
	lim := limits{chunk: c.cfg.ChunkBytes, heartbeat: c.cfg.HeartbeatInterval}
	if mb := int(st.GetMaxMessageBytes()); mb > 0 && mb/2 < lim.chunk {
		// Half the message limit leaves room for one record over budget.
		lim.chunk = max(mb/2, 1024)
	}
	if hb := st.GetHeartbeatInterval().AsDuration(); hb >= 100*time.Millisecond {
		lim.heartbeat = hb
	}
	lim.maxProcesses = int(st.GetMaxProcesses())
	c.cfg.Logger.Info("settings received", "heartbeat", lim.heartbeat, "chunk_bytes", lim.chunk, "max_processes", lim.maxProcesses)
	return lim
}

// capProcesses keeps an inventory within the aggregator's process limit.
// Processes that host components are kept first, then the lowest PIDs.
func (l limits) capProcesses(inv *v1.NodeInventory, log *slog.Logger) *v1.NodeInventory {
	if l.maxProcesses <= 0 || len(inv.Processes) <= l.maxProcesses {
		return inv
	}
	kept := make([]*v1.Process, 0, l.maxProcesses)
	for _, p := range inv.Processes {
		if len(p.Components) > 0 && len(kept) < l.maxProcesses {
			kept = append(kept, p)
		}
	}
	for _, p := range inv.Processes {
		if len(p.Components) == 0 && len(kept) < l.maxProcesses {
			kept = append(kept, p)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Pid < kept[j].Pid })
	log.Warn("more processes than the aggregator takes; sending only some", "processes", len(inv.Processes), "limit", l.maxProcesses)
	out := proto.CloneOf(inv)
	out.Processes = kept
	return out
}

// SplitDelta splits a delta into deltas of at most about budget bytes each,
// applied in order with the same result. Kubelet, stats and the wall clock
// ride on the last one. A delta within budget is returned as it is.
func SplitDelta(d *v1.Delta, budget int) []*v1.Delta {
	if budget <= 0 {
		budget = DefaultChunkBytes
	}
	if proto.Size(d) <= budget {
		return []*v1.Delta{d}
	}
	cur := &v1.Delta{}
	out := []*v1.Delta{cur}
	size := 0
	add := func(n int) {
		if size+n > budget && size > 0 {
			cur = &v1.Delta{}
			out = append(out, cur)
			size = 0
		}
		size += n
	}
	// Removals first, so a node never holds more than it will.
	for _, r := range d.RemovedProcesses {
		add(proto.Size(r) + 4)
		cur.RemovedProcesses = append(cur.RemovedProcesses, r)
	}
	for _, p := range d.RemovedManifestPaths {
		add(len(p) + 4)
		cur.RemovedManifestPaths = append(cur.RemovedManifestPaths, p)
	}
	for _, p := range d.UpsertedProcesses {
		add(proto.Size(p) + 4)
		cur.UpsertedProcesses = append(cur.UpsertedProcesses, p)
	}
	for _, m := range d.UpsertedManifests {
		add(proto.Size(m) + 4)
		cur.UpsertedManifests = append(cur.UpsertedManifests, m)
	}
	last := out[len(out)-1]
	last.Kubelet, last.Stats, last.WallClock, last.Certificates = d.Kubelet, d.Stats, d.WallClock, d.Certificates
	return out
}

// Explain says in words why a stream failed, for the operator reading the
// agent's log: a refused or expired certificate, an unknown CA, a refusal
// by the aggregator, or an unreachable address.
func Explain(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "certificate has expired") || strings.Contains(msg, "expired certificate"):
		return "a certificate has expired: this agent's (the aggregator says \"expired certificate\") or the aggregator's (\"certificate has expired\"); renew it"
	case strings.Contains(msg, "unknown certificate authority") || strings.Contains(msg, "unknown authority"):
		return "certificate authority not trusted: the aggregator does not trust this agent's CA, or --ca-file does not hold the aggregator's CA"
	case strings.Contains(msg, "bad certificate") || strings.Contains(msg, "certificate required"):
		return "the aggregator refused this agent's client certificate (missing, or not for client authentication)"
	case strings.Contains(msg, "not valid for") || strings.Contains(msg, "doesn't contain any IP SANs"):
		return "the aggregator's certificate does not name the address dialled: set --server-name"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "the aggregator speaks plaintext: use --insecure on both sides, or neither"
	}
	switch status.Code(err) {
	case codes.PermissionDenied:
		return "the aggregator refused this node identity: the certificate names another node or cluster"
	case codes.ResourceExhausted:
		return "over one of the aggregator's limits (its message says which)"
	case codes.InvalidArgument:
		return "the aggregator refused what this agent sent (its message says what)"
	case codes.Unauthenticated:
		return "the aggregator could not authenticate this agent"
	case codes.Unavailable:
		return "the aggregator is unreachable or shutting down"
	}
	return ""
}
