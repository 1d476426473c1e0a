// Package join turns a node's facts (processes and manifests from its agent;
// pods, owners and the Node object from the API server) into answers:
// component instances with how they run and why we think so, and findings.
// It is pure: it reads its inputs and returns new values.
package join

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/recognize"
	"github.com/kubeatlas/kubeatlas/safetext"
)

// Settings are the thresholds findings use.
type Settings struct {
	// ClockSkew is the largest node clock difference not reported (default 10s).
	ClockSkew time.Duration
	// RestartCount is the smallest container restart count reported (default 5).
	RestartCount int32
	// CertificateExpiring is how long before its end a certificate is
	// reported as expiring (default 30 days).
	CertificateExpiring time.Duration
}

// WithDefaults fills zero settings.
func (s Settings) WithDefaults() Settings {
	if s.ClockSkew == 0 {
		s.ClockSkew = 10 * time.Second
	}
	if s.RestartCount == 0 {
		s.RestartCount = 5
	}
	if s.CertificateExpiring == 0 {
		s.CertificateExpiring = 30 * 24 * time.Hour
	}
	return s
}

// NodeInput is everything known about one node.
type NodeInput struct {
	Cluster string
	Node    *state.Node
	// Procs and Manifests are nil when no agent ever reported.
	Procs     []*v1.Process
	Manifests []*v1.StaticPodManifest
	// Pods are the API's pods bound to the node.
	Pods []*state.Pod
	// Workload resolves an owner UID; nil when unknown.
	Workload func(uid string) *state.Workload
	// APIConnected says whether the cluster's API objects are loaded.
	APIConnected bool
	// ClusterHasAgents says whether any node of the cluster has an agent.
	ClusterHasAgents bool
	// AgentsSettled says whether agents had their chance to reconnect since
	// the aggregator started: until then a node without an agent is no finding.
	AgentsSettled bool
	// APIServerVersion is the cluster's oldest kube-apiserver version, if
	// known: what the skew policy measures against.
	APIServerVersion string
	// ServerVersion is the API server's /version gitVersion, if known.
	ServerVersion string
	Settings      Settings
	// Now is the time certificates are checked against: the aggregator's
	// clock, or a bundle's collection time. Zero checks none.
	Now time.Time
}

// NodeResult is the answer for one node.
type NodeResult struct {
	Instances []*v1.ComponentInstance
	Findings  []*v1.Finding
	Roles     []string
}

type joiner struct {
	in        NodeInput
	node      string
	reporting bool
	out       NodeResult
	used      map[*v1.Process]bool
	byCID     map[string][]*v1.Process
	byPodUID  map[string][]*v1.Process
	mirrors   map[string]*state.Pod // manifest pod key "<ns>/<name>" -> mirror pod
	ids       map[string]int
	// wrappers maps a process to the descendant that hosts the same
	// component, by "component/implementation": a wrapper script or
	// supervisor and the server it started are one instance, the server's.
	wrappers map[*v1.Process]map[string]*v1.Process
	// wrappedBy is the reverse: the wrapper of a server, for its evidence.
	wrappedBy map[*v1.Process]*v1.Process
}

// maxWrapperDepth bounds how far up the process tree a wrapper is looked for.
const maxWrapperDepth = 4

// findWrappers marks processes that host what a descendant of theirs hosts.
// A wrapper hosts the component itself (a script named like the binary, a
// shell whose command is the server), so the chain is walked through
// component processes only: a node has a handful, and the map stays small.
func (j *joiner) findWrappers() {
	var hosts map[int32]*v1.Process
	for _, p := range j.in.Procs {
		if len(p.Components) > 0 {
			if hosts == nil {
				hosts = map[int32]*v1.Process{}
			}
			hosts[p.Pid] = p
		}
	}
	for _, p := range hosts {
		a := hosts[p.Ppid]
		for depth := 0; a != nil && a != p && depth < maxWrapperDepth; depth++ {
			for _, hc := range p.Components {
				if h := hosted(a, hc.Component); h == nil || h.Implementation != hc.Implementation {
					continue
				}
				if j.wrappers == nil {
					j.wrappers, j.wrappedBy = map[*v1.Process]map[string]*v1.Process{}, map[*v1.Process]*v1.Process{}
				}
				if j.wrappers[a] == nil {
					j.wrappers[a] = map[string]*v1.Process{}
				}
				j.wrappers[a][hc.Component+"/"+hc.Implementation] = p
				j.wrappedBy[p] = a
			}
			a = hosts[a.Ppid]
		}
	}
}

// isWrapper reports whether p hosts hc only as the wrapper of a descendant.
func (j *joiner) isWrapper(p *v1.Process, hc *v1.HostedComponent) bool {
	_, ok := j.wrappers[p][hc.Component+"/"+hc.Implementation]
	return ok
}

// wrapperEv says which process wraps p, if one does.
func (j *joiner) wrapperEv(p *v1.Process) []*v1.Evidence {
	w := j.wrappedBy[p]
	if w == nil {
		return nil
	}
	argv := safetext.Ellipsis(strings.Join(w.Argv, " "), 200)
	return []*v1.Evidence{ev(v1.EvidenceKind_EVIDENCE_KIND_PROCESS,
		fmt.Sprintf("started by pid %d, a wrapper of the same program (one instance, not two): %s", w.Pid, argv),
		"pid", strconv.Itoa(int(w.Pid)), "wrapper", "true")}
}

// Node joins one node's facts.
func Node(in NodeInput) NodeResult {
	in.Settings = in.Settings.WithDefaults()
	j := &joiner{
		in:   in,
		node: in.Node.Name,
		used: map[*v1.Process]bool{},
		// Sized up front (a node runs about one container process in
		// three): growing them was a tenth of the steady-state CPU profile.
		byCID:    make(map[string][]*v1.Process, len(in.Procs)/2),
		byPodUID: make(map[string][]*v1.Process, len(in.Procs)/2),
		mirrors:  map[string]*state.Pod{},
		ids:      map[string]int{},
	}
	if a := in.Node.Agent; a != nil {
		j.reporting = a.State == v1.AgentState_AGENT_STATE_REPORTING || a.State == v1.AgentState_AGENT_STATE_OFFLINE
	}
	for _, p := range in.Procs {
		if p.ContainerId != "" {
			j.byCID[p.ContainerId] = append(j.byCID[p.ContainerId], p)
		}
		if p.PodUid != "" {
			j.byPodUID[p.PodUid] = append(j.byPodUID[p.PodUid], p)
		}
	}
	j.findWrappers()
	pods := append([]*state.Pod(nil), in.Pods...)
	sort.Slice(pods, func(a, b int) bool { return pods[a].ID < pods[b].ID })
	for _, pod := range pods {
		j.pod(pod)
	}
	j.leftoverProcesses()
	j.manifests()
	j.nodeFindings()
	j.roles()
	sort.Slice(j.out.Instances, func(a, b int) bool { return j.out.Instances[a].Id < j.out.Instances[b].Id })
	sort.Slice(j.out.Findings, func(a, b int) bool { return j.out.Findings[a].Id < j.out.Findings[b].Id })
	return j.out
}

// id makes an instance ID unique within the node.
func (j *joiner) id(base string) string {
	base = j.node + "/" + base
	n := j.ids[base]
	j.ids[base] = n + 1
	if n == 0 {
		return base
	}
	return base + "#" + strconv.Itoa(n+1)
}

// ownerChain classifies a pod: how it is deployed, its top owner, and the evidence.
func (j *joiner) ownerChain(pod *state.Pod) (v1.DeploymentKind, *v1.ObjectRef, *v1.Evidence) {
	if pod.MirrorHash != "" || (pod.Owner != nil && pod.Owner.Kind == "Node") {
		owner := &v1.ObjectRef{Kind: "Node", Name: pod.NodeName}
		if pod.Owner != nil {
			owner = pod.Owner
		}
		return v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD, owner, ev(v1.EvidenceKind_EVIDENCE_KIND_MIRROR_ANNOTATION,
			fmt.Sprintf("pod %s/%s is a mirror pod: kubernetes.io/config.mirror=%s, config.source=%s, owner Node/%s",
				pod.Namespace, pod.Name, pod.MirrorHash, pod.ConfigSource, owner.Name),
			"pod", pod.Namespace+"/"+pod.Name, "config.mirror", pod.MirrorHash, "config.source", pod.ConfigSource)
	}
	if pod.Owner == nil {
		return v1.DeploymentKind_DEPLOYMENT_KIND_BARE_POD, nil, ev(v1.EvidenceKind_EVIDENCE_KIND_OWNER_CHAIN,
			fmt.Sprintf("pod %s/%s has no controller owner", pod.Namespace, pod.Name), "pod", pod.Namespace+"/"+pod.Name)
	}
	chain := []string{"Pod/" + pod.Name, pod.Owner.Kind + "/" + pod.Owner.Name}
	top := pod.Owner
	how := kindOf(pod.Owner.Kind)
	if pod.Owner.Kind == "ReplicaSet" && j.in.Workload != nil {
		if rs := j.in.Workload(pod.OwnerUID); rs != nil && rs.Owner != nil && rs.Owner.Kind == "Deployment" {
			top = rs.Owner
			how = v1.DeploymentKind_DEPLOYMENT_KIND_DEPLOYMENT
			chain = append(chain, "Deployment/"+rs.Owner.Name)
		} else if rs == nil {
			chain = append(chain, "(ReplicaSet not loaded)")
		}
	}
	if pod.Owner.Kind == "Job" && j.in.Workload != nil {
		if job := j.in.Workload(pod.OwnerUID); job != nil && job.Owner != nil && job.Owner.Kind == "CronJob" {
			chain = append(chain, "CronJob/"+job.Owner.Name)
		}
	}
	return how, top, ev(v1.EvidenceKind_EVIDENCE_KIND_OWNER_CHAIN,
		fmt.Sprintf("owner chain in %s: %s", pod.Namespace, strings.Join(chain, " → ")),
		"pod", pod.Namespace+"/"+pod.Name, "owner", top.Kind+"/"+top.Namespace+"/"+top.Name)
}

func kindOf(kind string) v1.DeploymentKind {
	switch kind {
	case "DaemonSet":
		return v1.DeploymentKind_DEPLOYMENT_KIND_DAEMONSET
	case "ReplicaSet":
		return v1.DeploymentKind_DEPLOYMENT_KIND_REPLICASET
	case "Deployment":
		return v1.DeploymentKind_DEPLOYMENT_KIND_DEPLOYMENT
	case "StatefulSet":
		return v1.DeploymentKind_DEPLOYMENT_KIND_STATEFULSET
	case "Job":
		return v1.DeploymentKind_DEPLOYMENT_KIND_JOB
	}
	return v1.DeploymentKind_DEPLOYMENT_KIND_BARE_POD
}

// pod joins one API pod with the node's processes.
func (j *joiner) pod(pod *state.Pod) {
	how, owner, ownerEv := j.ownerChain(pod)
	podRef := &v1.ObjectRef{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, Uid: pod.UID}
	var man *v1.StaticPodManifest
	if how == v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD {
		man = j.manifestForMirror(pod)
		j.mirrors[pod.Namespace+"/"+pod.Name] = pod
	}
	uids := []string{pod.UID}
	if pod.MirrorHash != "" {
		uids = append(uids, pod.MirrorHash)
	}
	anyProcess := false
	for _, u := range uids {
		if len(j.byPodUID[u]) > 0 {
			anyProcess = true
		}
	}
	for _, c := range pod.Containers {
		specComps := recognize.Recognize(containerArgv(c.Command, c.Args, c.Image)).Components
		procs := j.byCID[c.ContainerID]
		if c.ContainerID == "" {
			procs = nil
		}
		done := map[string]bool{}
		emit := func(comp recognize.Component, p *v1.Process, hc *v1.HostedComponent) {
			inst := &v1.ComponentInstance{
				Cluster: j.in.Cluster, Node: j.node, Component: comp.Name, Implementation: comp.Implementation,
				How: how, Owner: owner, Pod: podRef, Container: c.Name, ContainerId: c.ContainerID,
				Image: c.Image, Version: imageTag(c.Image), RestartCount: c.RestartCount,
				Flags: comp.Flags.Proto(),
			}
			inst.Evidence = append(inst.Evidence, ev(v1.EvidenceKind_EVIDENCE_KIND_POD,
				fmt.Sprintf("pod %s/%s on node %s, container %s (%s)", pod.Namespace, pod.Name, pod.NodeName, c.Name, c.Image),
				"pod", pod.Namespace+"/"+pod.Name, "uid", pod.UID, "container", c.Name, "container_id", c.ContainerID), ownerEv)
			if man != nil {
				inst.ManifestPath = man.Path
				inst.Evidence = append(inst.Evidence, ev(v1.EvidenceKind_EVIDENCE_KIND_MANIFEST,
					fmt.Sprintf("manifest %s on %s defines pod %s/%s (mirror %s)", man.Path, j.node, man.PodNamespace, man.PodName, pod.Name),
					"manifest", man.Path, "sha256", man.Sha256))
			}
			if p != nil {
				j.used[p] = true
				inst.HasProcess = true
				inst.Pid = p.Pid
				if hc != nil {
					inst.Implementation = hc.Implementation
					inst.Flags = hc.Flags
				}
				inst.Evidence = append(inst.Evidence, processEv(p), cgroupEv(p))
				inst.Evidence = append(inst.Evidence, j.wrapperEv(p)...)
			}
			inst.Id = j.id(pod.Namespace + "/" + pod.Name + "/" + c.Name + "/" + comp.Name)
			done[comp.Name] = true
			j.out.Instances = append(j.out.Instances, inst)
		}
		// Processes in the container, by what they host.
		for _, p := range procs {
			for _, hc := range p.Components {
				if done[hc.Component] || j.isWrapper(p, hc) {
					continue
				}
				emit(recognize.Component{Name: hc.Component, Implementation: hc.Implementation}, p, hc)
			}
		}
		// Components the spec says the container runs but no process showed.
		for _, comp := range specComps {
			if done[comp.Name] {
				continue
			}
			var proc *v1.Process
			var hc *v1.HostedComponent
			// A process in the pod's cgroup hosting it, when the container ID is not in the status.
			for _, u := range uids {
				for _, p := range j.byPodUID[u] {
					if h := hosted(p, comp.Name); h != nil && !j.used[p] && c.ContainerID == "" {
						proc, hc = p, h
					}
				}
			}
			if proc == nil {
				// An entrypoint with a generic name ("/controller") that
				// the spec names: the container's one main process.
				proc = mainProcess(procs, j.used)
			}
			emit(comp, proc, hc)
		}
		if c.RestartCount >= j.in.Settings.RestartCount {
			j.finding(v1.FindingKind_FINDING_KIND_HIGH_RESTART_COUNT, v1.Severity_SEVERITY_WARNING, pod.Namespace+"/"+pod.Name+"/"+c.Name,
				fmt.Sprintf("container %s of pod %s/%s restarted %d times", c.Name, pod.Namespace, pod.Name, c.RestartCount),
				ev(v1.EvidenceKind_EVIDENCE_KIND_RESTART_COUNT, fmt.Sprintf("restartCount=%d (threshold %d)", c.RestartCount, j.in.Settings.RestartCount),
					"pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "restart_count", strconv.Itoa(int(c.RestartCount))))
		}
	}
	if how == v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD && man == nil && j.in.Procs != nil && j.reporting {
		j.finding(v1.FindingKind_FINDING_KIND_MIRROR_POD_WITHOUT_MANIFEST, v1.Severity_SEVERITY_WARNING, pod.Namespace+"/"+pod.Name,
			fmt.Sprintf("mirror pod %s/%s has no manifest in the static pod directory of %s", pod.Namespace, pod.Name, j.node),
			ownerEv, j.staticDirEv())
	}
	if pod.Phase == "Running" && j.in.APIConnected && j.reporting && j.in.Procs != nil && !anyProcess && hasContainerIDs(pod) {
		j.finding(v1.FindingKind_FINDING_KIND_POD_WITHOUT_PROCESS, v1.Severity_SEVERITY_WARNING, pod.Namespace+"/"+pod.Name,
			fmt.Sprintf("pod %s/%s is Running in the API but node %s reports no process in its cgroup", pod.Namespace, pod.Name, j.node),
			ev(v1.EvidenceKind_EVIDENCE_KIND_POD, fmt.Sprintf("pod UID %s, phase Running", pod.UID), "pod", pod.Namespace+"/"+pod.Name, "uid", pod.UID))
	}
}

// mainProcess returns a container's only process that is neither plumbing
// nor hosting a component of its own, if it has exactly one.
func mainProcess(procs []*v1.Process, used map[*v1.Process]bool) *v1.Process {
	var main *v1.Process
	for _, p := range procs {
		if p.Infrastructure || len(p.Components) > 0 || used[p] {
			continue
		}
		if main != nil {
			return nil
		}
		main = p
	}
	return main
}

func hasContainerIDs(pod *state.Pod) bool {
	for _, c := range pod.Containers {
		if c.ContainerID != "" {
			return true
		}
	}
	return false
}

func hosted(p *v1.Process, component string) *v1.HostedComponent {
	for _, hc := range p.Components {
		if hc.Component == component {
			return hc
		}
	}
	return nil
}

// manifestForMirror finds the manifest a mirror pod was made from: the
// kubelet names a mirror pod "<manifest pod name>-<node name>".
func (j *joiner) manifestForMirror(pod *state.Pod) *v1.StaticPodManifest {
	for _, m := range j.in.Manifests {
		if m.ParseError == "" && m.PodName+"-"+j.node == pod.Name && m.PodNamespace == pod.Namespace {
			return m
		}
	}
	return nil
}

// leftoverProcesses answers for component processes no pod claimed: static
// pods seen only through the agent, containers of unknown pods, host daemons.
func (j *joiner) leftoverProcesses() {
	for _, p := range j.in.Procs {
		if j.used[p] || len(p.Components) == 0 {
			continue
		}
		for _, hc := range p.Components {
			if j.isWrapper(p, hc) {
				continue
			}
			inst := &v1.ComponentInstance{
				Cluster: j.in.Cluster, Node: j.node, Component: hc.Component, Implementation: hc.Implementation,
				ContainerId: p.ContainerId, Pid: p.Pid, HasProcess: true, Flags: hc.Flags,
				SystemdUnit: p.SystemdUnit,
			}
			inst.Evidence = append(inst.Evidence, processEv(p), cgroupEv(p))
			inst.Evidence = append(inst.Evidence, j.wrapperEv(p)...)
			switch {
			case p.PodUid != "":
				if m := j.manifestForProcess(p, hc); m != nil {
					inst.How = v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD
					inst.ManifestPath = m.Path
					inst.Owner = &v1.ObjectRef{Kind: "Node", Name: j.node}
					inst.Pod = &v1.ObjectRef{Kind: "Pod", Namespace: m.PodNamespace, Name: m.PodName + "-" + j.node, Uid: p.PodUid}
					if c := containerFor(m, hc.Component); c != nil {
						inst.Image, inst.Version, inst.Container = c.Image, imageTag(c.Image), c.Name
					}
					inst.Evidence = append(inst.Evidence, ev(v1.EvidenceKind_EVIDENCE_KIND_MANIFEST,
						fmt.Sprintf("manifest %s defines pod %s/%s running %s; the process's pod UID %s is the kubelet's config hash for it",
							m.Path, m.PodNamespace, m.PodName, hc.Component, p.PodUid),
						"manifest", m.Path, "sha256", m.Sha256, "pod_uid", p.PodUid))
					inst.Id = j.id(m.PodNamespace + "/" + m.PodName + "-" + j.node + "/" + hc.Component)
				} else {
					inst.How = v1.DeploymentKind_DEPLOYMENT_KIND_UNSPECIFIED
					inst.Pod = &v1.ObjectRef{Kind: "Pod", Uid: p.PodUid}
					inst.Id = j.id("pod-uid/" + p.PodUid + "/" + hc.Component)
					if j.in.APIConnected && !j.used[p] {
						j.finding(v1.FindingKind_FINDING_KIND_UNKNOWN_POD_PROCESS, v1.Severity_SEVERITY_WARNING, p.PodUid+"/"+strconv.Itoa(int(p.Pid)),
							fmt.Sprintf("process %d (%s) runs in pod %s, which the API server does not know", p.Pid, hc.Component, p.PodUid),
							processEv(p), cgroupEv(p))
					}
				}
			default:
				inst.How = v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS
				if p.SystemdUnit != "" {
					inst.Evidence = append(inst.Evidence, ev(v1.EvidenceKind_EVIDENCE_KIND_SYSTEMD_UNIT,
						fmt.Sprintf("runs on the host as systemd unit %s", p.SystemdUnit), "unit", p.SystemdUnit))
				}
				if p.ContainerId != "" {
					inst.Evidence = append(inst.Evidence, ev(v1.EvidenceKind_EVIDENCE_KIND_CGROUP,
						fmt.Sprintf("in container %s outside Kubernetes", short(p.ContainerId)), "container_id", p.ContainerId))
				}
				inst.Version = j.hostVersion(hc)
				if hc.Component == v1.ComponentContainerRuntime {
					inst.Evidence = append(inst.Evidence, j.runtimeUseEv(hc))
				}
				unit := p.SystemdUnit
				if unit == "" {
					unit = recognize.Program(p.Argv)
				}
				inst.Id = j.id("host/" + hc.Component + "/" + hc.Implementation + "/" + unit)
			}
			j.out.Instances = append(j.out.Instances, inst)
		}
		j.used[p] = true
	}
}

// hostVersion is a host process's version from the best evidence there is
// without running it: the Node status for the kubelet, kube-proxy and the
// container runtime the kubelet uses, the server's /version for an
// apiserver.
func (j *joiner) hostVersion(hc *v1.HostedComponent) string {
	api := j.in.Node.API
	switch hc.Component {
	case v1.ComponentKubelet:
		if api != nil {
			return api.KubeletVersion
		}
	case v1.ComponentKubeProxy:
		if api != nil {
			return api.KubeProxyVersion
		}
	case v1.ComponentContainerRuntime:
		if api != nil {
			// "containerd://1.7.22", "cri-o://1.30.1", "docker://27.1.1".
			name, ver, ok := strings.Cut(api.RuntimeVersion, "://")
			if ok && runtimeMatchesName(hc.Implementation, name) {
				return ver
			}
		}
	case v1.ComponentAPIServer:
		return j.in.ServerVersion
	}
	return ""
}

// runtimeMatchesName reports whether a runtime implementation is the one the
// Node status names.
func runtimeMatchesName(impl, name string) bool {
	switch name {
	case "docker":
		return impl == "dockerd" || impl == "cri-dockerd"
	case "cri-o":
		return impl == "cri-o"
	}
	return impl == name
}

// runtimeUseEv says whether the kubelet uses this container runtime.
func (j *joiner) runtimeUseEv(hc *v1.HostedComponent) *v1.Evidence {
	ep := ""
	if a := j.in.Node.Agent; a != nil && a.Kubelet != nil {
		ep = a.Kubelet.ContainerRuntimeEndpoint
	}
	if ep == "" {
		return ev(v1.EvidenceKind_EVIDENCE_KIND_FLAG, "the kubelet's container runtime endpoint is not known", "used_by_kubelet", "unknown")
	}
	used := runtimeMatchesEndpoint(hc.Implementation, ep)
	if used {
		return ev(v1.EvidenceKind_EVIDENCE_KIND_FLAG, fmt.Sprintf("used by the kubelet (container runtime endpoint %s)", ep),
			"used_by_kubelet", "true", "endpoint", ep)
	}
	return ev(v1.EvidenceKind_EVIDENCE_KIND_FLAG, fmt.Sprintf("not used by Kubernetes: the kubelet's container runtime endpoint is %s", ep),
		"used_by_kubelet", "false", "endpoint", ep)
}

func runtimeMatchesEndpoint(impl, ep string) bool {
	switch impl {
	case "containerd":
		return strings.Contains(ep, "containerd")
	case "cri-o":
		return strings.Contains(ep, "crio")
	case "cri-dockerd":
		return strings.Contains(ep, "cri-dockerd")
	case "dockerd":
		return strings.Contains(ep, "dockershim") || strings.Contains(ep, "docker.sock")
	}
	return false
}

// manifestForProcess finds the manifest whose container runs this process's
// program, for static pods seen without their mirror pod.
func (j *joiner) manifestForProcess(p *v1.Process, hc *v1.HostedComponent) *v1.StaticPodManifest {
	for _, m := range j.in.Manifests {
		if m.ParseError != "" {
			continue
		}
		if containerFor(m, hc.Component) != nil {
			return m
		}
	}
	return nil
}

func containerFor(m *v1.StaticPodManifest, component string) *v1.ManifestContainer {
	for _, c := range m.Containers {
		for _, comp := range recognize.Recognize(containerArgv(c.Command, c.Args, c.Image)).Components {
			if comp.Name == component {
				return c
			}
		}
	}
	return nil
}

// manifests raises findings about the node's static pod manifests.
func (j *joiner) manifests() {
	for _, m := range j.in.Manifests {
		if m.ParseError != "" {
			j.finding(v1.FindingKind_FINDING_KIND_MALFORMED_MANIFEST, v1.Severity_SEVERITY_WARNING, m.Path,
				fmt.Sprintf("static pod manifest %s on %s cannot be used: %s", m.Path, j.node, m.ParseError),
				ev(v1.EvidenceKind_EVIDENCE_KIND_MANIFEST, m.ParseError, "manifest", m.Path, "sha256", m.Sha256))
			continue
		}
		mirrorName := m.PodName + "-" + j.node
		if j.in.APIConnected {
			if _, ok := j.mirrors[m.PodNamespace+"/"+mirrorName]; !ok {
				j.finding(v1.FindingKind_FINDING_KIND_MANIFEST_WITHOUT_MIRROR_POD, v1.Severity_SEVERITY_WARNING, m.Path,
					fmt.Sprintf("manifest %s on %s has no mirror pod %s/%s in the API", m.Path, j.node, m.PodNamespace, mirrorName),
					ev(v1.EvidenceKind_EVIDENCE_KIND_MANIFEST, fmt.Sprintf("manifest %s defines pod %s/%s", m.Path, m.PodNamespace, m.PodName),
						"manifest", m.Path, "expected_mirror_pod", m.PodNamespace+"/"+mirrorName))
			}
		}
		j.drift(m)
	}
}

// drift compares each manifest container's command line with the running
// process that the join tied to it.
func (j *joiner) drift(m *v1.StaticPodManifest) {
	for _, c := range m.Containers {
		want := append(append([]string(nil), c.Command...), c.Args...)
		if len(want) == 0 {
			continue
		}
		for _, inst := range j.out.Instances {
			if inst.ManifestPath != m.Path || !inst.HasProcess || (inst.Container != "" && inst.Container != c.Name) {
				continue
			}
			p := j.procByPID(inst.Pid)
			if p == nil || p.ArgvTruncated {
				continue
			}
			if d := argvDiff(want, p.Argv); d != "" {
				j.finding(v1.FindingKind_FINDING_KIND_MANIFEST_DRIFT, v1.Severity_SEVERITY_WARNING, m.Path+"/"+c.Name,
					fmt.Sprintf("process %d does not run what %s says for container %s: %s", p.Pid, m.Path, c.Name, d),
					ev(v1.EvidenceKind_EVIDENCE_KIND_FLAG, d, "manifest", m.Path, "container", c.Name, "pid", strconv.Itoa(int(p.Pid))),
					processEv(p))
			}
			break
		}
	}
}

func (j *joiner) procByPID(pid int32) *v1.Process {
	i := sort.Search(len(j.in.Procs), func(i int) bool { return j.in.Procs[i].Pid >= pid })
	if i < len(j.in.Procs) && j.in.Procs[i].Pid == pid {
		return j.in.Procs[i]
	}
	for _, p := range j.in.Procs {
		if p.Pid == pid {
			return p
		}
	}
	return nil
}

// argvDiff describes how two command lines differ, flag by flag; "" when they
// are the same. The program may differ in path only.
func argvDiff(want, got []string) string {
	if len(want) == 0 || len(got) == 0 {
		return ""
	}
	var parts []string
	if path.Base(want[0]) != path.Base(got[0]) {
		parts = append(parts, fmt.Sprintf("program %q, running %q", want[0], got[0]))
	}
	wf, gf := recognize.ParseFlags(want[1:]), recognize.ParseFlags(got[1:])
	names := map[string]bool{}
	for n := range wf.Values {
		names[n] = true
	}
	for n := range gf.Values {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		w, wok := wf.Values[n]
		g, gok := gf.Values[n]
		switch {
		case wok && !gok:
			parts = append(parts, fmt.Sprintf("--%s=%s missing", n, strings.Join(w, ",")))
		case !wok && gok:
			parts = append(parts, fmt.Sprintf("--%s=%s added", n, strings.Join(g, ",")))
		case strings.Join(w, "\x00") != strings.Join(g, "\x00"):
			parts = append(parts, fmt.Sprintf("--%s is %s, manifest says %s", n, strings.Join(g, ","), strings.Join(w, ",")))
		}
	}
	return strings.Join(parts, "; ")
}

// nodeFindings raises findings about the node itself.
func (j *joiner) nodeFindings() {
	n := j.in.Node
	if n.API != nil && n.Agent == nil && j.in.ClusterHasAgents && j.in.AgentsSettled {
		j.finding(v1.FindingKind_FINDING_KIND_NODE_WITHOUT_AGENT, v1.Severity_SEVERITY_WARNING, n.Name,
			fmt.Sprintf("node %s is in the API but no kubeatlas agent reports for it", n.Name),
			ev(v1.EvidenceKind_EVIDENCE_KIND_NODE, "Node object present; no agent hello received", "node", n.Name))
	}
	if a := n.Agent; a != nil {
		switch a.State {
		case v1.AgentState_AGENT_STATE_STALE, v1.AgentState_AGENT_STATE_EXPIRED:
			word := "stale"
			sev := v1.Severity_SEVERITY_WARNING
			if a.State == v1.AgentState_AGENT_STATE_EXPIRED {
				word, sev = "expired", v1.Severity_SEVERITY_CRITICAL
			}
			j.finding(v1.FindingKind_FINDING_KIND_STALE_AGENT, sev, n.Name,
				fmt.Sprintf("the agent on %s is %s: last heard %s; its last report is kept", n.Name, word, a.LastSeen.UTC().Format(time.RFC3339)),
				ev(v1.EvidenceKind_EVIDENCE_KIND_AGENT, "last message at "+a.LastSeen.UTC().Format(time.RFC3339), "last_seen", a.LastSeen.UTC().Format(time.RFC3339), "state", word))
		}
		if skew := a.ClockSkew; skew > j.in.Settings.ClockSkew || skew < -j.in.Settings.ClockSkew {
			dir := "ahead of"
			if skew < 0 {
				dir = "behind"
			}
			j.finding(v1.FindingKind_FINDING_KIND_CLOCK_SKEW, v1.Severity_SEVERITY_WARNING, n.Name,
				fmt.Sprintf("the clock of %s is %s %s the reference clock", n.Name, roundDur(skew.Abs()), dir),
				ev(v1.EvidenceKind_EVIDENCE_KIND_CLOCK, fmt.Sprintf("node clock %s, skew %s (threshold %s)",
					a.Identity.GetWallClock().AsTime().UTC().Format(time.RFC3339), roundDur(skew), j.in.Settings.ClockSkew),
					"skew", roundDur(skew).String(), "threshold", j.in.Settings.ClockSkew.String()))
		}
	}
	j.versionSkew()
	j.certificateFindings()
}

// The Kubernetes version skew policy
// (kubernetes.io/releases/version-skew-policy), measured against the oldest
// kube-apiserver of the cluster:
//   - "In highly-available (HA) clusters, the newest and oldest kube-apiserver
//     instances must be within one minor version."
//   - "kubelet must not be newer than kube-apiserver", and "may be up to three
//     minor versions older" (since 1.28; up to two before);
//   - kube-proxy: the same as the kubelet;
//   - "kube-controller-manager, kube-scheduler, and cloud-controller-manager
//     must not be newer than the kube-apiserver instances they communicate
//     with ... may be up to one minor version older".

// allowedOlder is how many minors a component may trail the oldest
// kube-apiserver, apiMinor being that apiserver's minor; false for
// components the policy does not cover.
func allowedOlder(component string, apiMinor uint) (int, bool) {
	switch component {
	case v1.ComponentKubelet, v1.ComponentKubeProxy:
		if apiMinor >= 28 {
			return 3, true
		}
		return 2, true
	case v1.ComponentControllerManager, v1.ComponentScheduler, v1.ComponentCloudControllerManager:
		return 1, true
	}
	return 0, false
}

// skewPolicy says how a component's version breaks the policy against the
// cluster's oldest kube-apiserver, or "" when it does not (or a version is
// unknown). Versions are read as apimachinery reads them: a leading v, and
// whatever follows the numbers (-eks-…, +k3s1) ignored.
func skewPolicy(component, compVersion, oldestAPI string) string {
	cv, err1 := version.ParseGeneric(compVersion)
	av, err2 := version.ParseGeneric(oldestAPI)
	if err1 != nil || err2 != nil || cv.Major() != av.Major() {
		return ""
	}
	older, ok := allowedOlder(component, av.Minor())
	if !ok {
		return ""
	}
	compMM, apiMM := version.MajorMinor(cv.Major(), cv.Minor()), version.MajorMinor(av.Major(), av.Minor())
	switch {
	case compMM.GreaterThan(apiMM):
		return fmt.Sprintf("newer than kube-apiserver %s, which the skew policy forbids", oldestAPI)
	case compMM.LessThan(apiMM.SubtractMinor(uint(older))):
		return fmt.Sprintf("%d minor versions older than kube-apiserver %s; the skew policy allows %d", av.Minor()-cv.Minor(), oldestAPI, older)
	}
	return ""
}

// haSkew says how an apiserver's version breaks the HA rule against the
// oldest, or "".
func haSkew(apiVersion, oldest string) string {
	v, err1 := version.ParseGeneric(apiVersion)
	o, err2 := version.ParseGeneric(oldest)
	if err1 != nil || err2 != nil || v.Major() != o.Major() || v.Minor() <= o.Minor()+1 {
		return ""
	}
	return fmt.Sprintf("%d minor versions newer than the oldest kube-apiserver %s; HA apiservers may differ by one", v.Minor()-o.Minor(), oldest)
}

// older reports whether version a is older than b, or b is unknown.
func older(a, b string) bool {
	va, err := version.ParseGeneric(a)
	if err != nil {
		return false
	}
	vb, err := version.ParseGeneric(b)
	return err != nil || va.LessThan(vb)
}

// versionSkew raises VERSION_SKEW for this node's components that break the
// policy: the kubelet (from the Node status), kube-proxy, the controller
// managers, the scheduler, and kube-apiserver against the HA rule.
func (j *joiner) versionSkew() {
	oldest := j.in.APIServerVersion
	if oldest == "" {
		return
	}
	n := j.in.Node
	if n.API != nil && n.API.KubeletVersion != "" {
		if msg := skewPolicy(v1.ComponentKubelet, n.API.KubeletVersion, oldest); msg != "" {
			j.finding(v1.FindingKind_FINDING_KIND_VERSION_SKEW, v1.Severity_SEVERITY_CRITICAL, n.Name,
				fmt.Sprintf("kubelet %s on %s: %s", n.API.KubeletVersion, n.Name, msg),
				ev(v1.EvidenceKind_EVIDENCE_KIND_VERSION, fmt.Sprintf("kubelet %s, kube-apiserver %s", n.API.KubeletVersion, oldest),
					"kubelet", n.API.KubeletVersion, "kube-apiserver", oldest))
		}
	}
	for _, in := range j.out.Instances {
		if in.Version == "" || in.Component == v1.ComponentKubelet {
			continue
		}
		msg := skewPolicy(in.Component, in.Version, oldest)
		if in.Component == v1.ComponentAPIServer {
			msg = haSkew(in.Version, oldest)
		}
		if msg == "" {
			continue
		}
		j.finding(v1.FindingKind_FINDING_KIND_VERSION_SKEW, v1.Severity_SEVERITY_CRITICAL, in.Component+"/"+in.Id,
			fmt.Sprintf("%s %s on %s: %s", in.Component, in.Version, n.Name, msg),
			ev(v1.EvidenceKind_EVIDENCE_KIND_VERSION, fmt.Sprintf("%s %s, oldest kube-apiserver %s", in.Component, in.Version, oldest),
				in.Component, in.Version, "kube-apiserver", oldest, "instance", in.Id))
	}
}

func (j *joiner) roles() {
	roles := map[string]bool{}
	for _, inst := range j.out.Instances {
		if v1.IsControlPlane(inst.Component) {
			roles["control-plane"] = true
		}
	}
	if api := j.in.Node.API; api != nil {
		for k := range api.Labels {
			if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
				if r == "master" {
					r = "control-plane"
				}
				roles[r] = true
			}
		}
	}
	if !roles["control-plane"] {
		roles["worker"] = true
	}
	for r := range roles {
		j.out.Roles = append(j.out.Roles, r)
	}
	sort.Strings(j.out.Roles)
}

func (j *joiner) staticDirEv() *v1.Evidence {
	dir := ""
	if a := j.in.Node.Agent; a != nil && a.Kubelet != nil {
		dir = a.Kubelet.StaticPodPath
	}
	return ev(v1.EvidenceKind_EVIDENCE_KIND_MANIFEST, fmt.Sprintf("static pod directory %s holds %d manifests", dir, len(j.in.Manifests)),
		"static_pod_path", dir)
}

func (j *joiner) finding(kind v1.FindingKind, sev v1.Severity, subject, summary string, evidence ...*v1.Evidence) {
	j.out.Findings = append(j.out.Findings, &v1.Finding{
		Id:       j.node + "/" + kind.Slug() + "/" + subject,
		Cluster:  j.in.Cluster,
		Node:     j.node,
		Kind:     kind,
		Severity: sev,
		Summary:  summary,
		Evidence: evidence,
		Subject:  subject,
	})
}

// containerArgv is what a container runs: command and args, or the program
// its image is named for when the image's entrypoint is used.
func containerArgv(command, args []string, image string) []string {
	if len(command) > 0 {
		return append(append([]string(nil), command...), args...)
	}
	prog := imageProgram(image)
	if prog == "" {
		return nil
	}
	return append([]string{prog}, args...)
}

// imagePrograms maps image names to the program their entrypoint runs.
var imagePrograms = map[string]string{
	"flannel":                  "flanneld",
	"node":                     "calico-node", // calico/node
	"cilium":                   "cilium-agent",
	"kube-router":              "kube-router",
	"kindnetd":                 "kindnetd",
	"coredns":                  "coredns",
	"k8s-dns-kube-dns":         "kube-dns",
	"k8s-dns-node-cache":       "node-cache",
	"kube-proxy":               "kube-proxy",
	"kube-apiserver":           "kube-apiserver",
	"kube-controller-manager":  "kube-controller-manager",
	"kube-scheduler":           "kube-scheduler",
	"etcd":                     "etcd",
	"cloud-controller-manager": "cloud-controller-manager",
	"antrea-agent-ubi":         "antrea-agent",
	"antrea-ubuntu":            "antrea-agent",
	// Managed clouds' node agents whose image entrypoints are generic
	// ("/controller") or differ from the image's name.
	"amazon-k8s-cni":                         "aws-vpc-cni",
	"aws-network-policy-agent":               "aws-eks-nodeagent",
	"gke-metadata-server":                    "gke-metadata-server",
	"netd-amd64":                             "netd",
	"netd":                                   "netd",
	"proxy-agent":                            "proxy-agent",
	"konnectivity-agent":                     "proxy-agent",
	"azure-cns":                              "azure-cns",
	"ip-masq-agent":                          "ip-masq-agent",
	"ip-masq-agent-v2":                       "ip-masq-agent",
	"azure-cloud-node-manager":               "cloud-node-manager",
	"aws-ebs-csi-driver":                     "aws-ebs-csi-driver",
	"aws-efs-csi-driver":                     "aws-efs-csi-driver",
	"gcp-compute-persistent-disk-csi-driver": "gce-pd-csi-driver",
	"azuredisk-csi":                          "azurediskplugin",
	"azurefile-csi":                          "azurefileplugin",
}

func imageProgram(image string) string {
	name := image
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	base := path.Base(name)
	if base == "node" && !strings.Contains(name, "calico") {
		return ""
	}
	return imagePrograms[base]
}

// imageTag returns an image's tag, e.g. "v1.27.0".
func imageTag(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		return image[i+1:]
	}
	return ""
}

func ev(kind v1.EvidenceKind, summary string, kv ...string) *v1.Evidence {
	e := &v1.Evidence{Kind: kind, Summary: summary}
	if len(kv) > 0 {
		e.Attributes = make(map[string]string, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				e.Attributes[kv[i]] = kv[i+1]
			}
		}
	}
	return e
}

func processEv(p *v1.Process) *v1.Evidence {
	argv := safetext.Ellipsis(strings.Join(p.Argv, " "), 200)
	return ev(v1.EvidenceKind_EVIDENCE_KIND_PROCESS, fmt.Sprintf("pid %d (ppid %d, user %s): %s", p.Pid, p.Ppid, p.User, argv),
		"pid", strconv.Itoa(int(p.Pid)), "ppid", strconv.Itoa(int(p.Ppid)), "user", p.User, "exe", p.Exe)
}

func cgroupEv(p *v1.Process) *v1.Evidence {
	var what string
	switch {
	case p.PodUid != "":
		what = fmt.Sprintf("cgroup %s: pod %s, container %s", p.CgroupPath, p.PodUid, short(p.ContainerId))
	case p.SystemdUnit != "":
		what = fmt.Sprintf("cgroup %s: systemd unit %s", p.CgroupPath, p.SystemdUnit)
	default:
		what = fmt.Sprintf("cgroup %s", p.CgroupPath)
	}
	return ev(v1.EvidenceKind_EVIDENCE_KIND_CGROUP, what, "cgroup", p.CgroupPath, "pod_uid", p.PodUid,
		"container_id", p.ContainerId, "unit", p.SystemdUnit)
}

func short(id string) string { return safetext.Cut(id, 13) }

func roundDur(d time.Duration) time.Duration {
	if d.Abs() > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
