package kubeatlasv1

import (
	"strconv"
	"strings"
)

// Words for the API's enums as answers print them. This file is the one
// place where an enum value becomes words.

// Words says how an instance runs: "host process", "static pod", "DaemonSet", …
func (h DeploymentKind) Words() string {
	switch h {
	case DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS:
		return "host process"
	case DeploymentKind_DEPLOYMENT_KIND_STATIC_POD:
		return "static pod"
	case DeploymentKind_DEPLOYMENT_KIND_DAEMONSET:
		return "DaemonSet"
	case DeploymentKind_DEPLOYMENT_KIND_DEPLOYMENT:
		return "Deployment"
	case DeploymentKind_DEPLOYMENT_KIND_STATEFULSET:
		return "StatefulSet"
	case DeploymentKind_DEPLOYMENT_KIND_REPLICASET:
		return "ReplicaSet"
	case DeploymentKind_DEPLOYMENT_KIND_JOB:
		return "Job"
	case DeploymentKind_DEPLOYMENT_KIND_BARE_POD:
		return "bare pod"
	}
	return "unknown"
}

// Word names a cluster mode for tables: "static-pod", "managed", …
func (m ClusterMode) Word() string {
	switch m {
	case ClusterMode_CLUSTER_MODE_STANDALONE:
		return "standalone"
	case ClusterMode_CLUSTER_MODE_STATIC_POD:
		return "static-pod"
	case ClusterMode_CLUSTER_MODE_SELF_HOSTED:
		return "self-hosted"
	case ClusterMode_CLUSTER_MODE_MANAGED:
		return "managed"
	}
	return "unknown"
}

// Explained names a cluster mode and says what it means.
func (m ClusterMode) Explained() string {
	switch m {
	case ClusterMode_CLUSTER_MODE_STANDALONE:
		return "STANDALONE (the control plane runs as host daemons)"
	case ClusterMode_CLUSTER_MODE_STATIC_POD:
		return "STATIC_POD (the control plane runs as static pods: manifest files run by the kubelet, with mirror pods)"
	case ClusterMode_CLUSTER_MODE_SELF_HOSTED:
		return "SELF_HOSTED (the control plane runs as pods the cluster manages itself)"
	case ClusterMode_CLUSTER_MODE_MANAGED:
		return "MANAGED (the API answers but its control plane runs on no node we see)"
	}
	return "UNKNOWN (not enough evidence)"
}

// Word names an agent state: "reporting", "no-agent", …
func (s AgentState) Word() string { return word(s.String(), "AGENT_STATE_", "-") }

// Word names a severity: "critical", "warning", …
func (s Severity) Word() string { return word(s.String(), "SEVERITY_", "_") }

// Word names a finding kind for people: "clock-skew", …
func (k FindingKind) Word() string { return word(k.String(), "FINDING_KIND_", "-") }

// Slug names a finding kind in a finding's ID: "clock_skew", …
func (k FindingKind) Slug() string { return word(k.String(), "FINDING_KIND_", "_") }

// Words names an evidence kind: "mirror annotation", …
func (k EvidenceKind) Words() string { return word(k.String(), "EVIDENCE_KIND_", " ") }

// Word names a cluster's freshness in a fleet view: "live", "stale",
// "unreachable".
func (f Freshness) Word() string { return word(f.String(), "FRESHNESS_", "-") }

// Word names a watch event type as the CLI prints it: "ADDED", "SYNCED", …
func (t WatchEventType) Word() string { return strings.TrimPrefix(t.String(), "WATCH_EVENT_TYPE_") }

// word lower-cases an enum value's name without its prefix, with sep
// between its words.
func word(name, prefix, sep string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, prefix), "_", sep))
}

// Name names a certificate in findings and tables:
// "<path>", "<path>#<index>" for the later certificates of a bundle, and
// "<path> <field>" for one inside a kubeconfig.
func (c *Certificate) Name() string {
	s := c.Path
	if c.Field != "" {
		s += " " + c.Field
	}
	if c.Index > 0 {
		s += "#" + strconv.Itoa(int(c.Index))
	}
	return s
}

// UsedBy says in words who uses a certificate:
// "kube-apiserver --tls-cert-file, kubelet tlsCertFile", or "no component
// (kept by kubeadm)" for a file found only where kubeadm keeps them.
func (c *Certificate) UsedBy() string {
	var parts []string
	seen := map[string]bool{}
	kubeadm := false
	for _, u := range c.Uses {
		var w string
		switch {
		case u.Component == "" && u.Flag == "kubeadm":
			kubeadm = true
			continue
		case strings.ContainsAny(u.Flag, ".ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
			// A config file's field, e.g. tlsCertFile.
			w = strings.TrimSpace(u.Component + " " + u.Flag)
		default:
			w = strings.TrimSpace(u.Component + " --" + u.Flag)
		}
		if !seen[w] {
			seen[w] = true
			parts = append(parts, w)
		}
	}
	if len(parts) == 0 && kubeadm {
		return "no component (kept by kubeadm)"
	}
	return strings.Join(parts, ", ")
}
