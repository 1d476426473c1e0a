// Package cgroup reads /proc/<pid>/cgroup and tells what the path says about a
// process: the pod and container it belongs to, the container runtime that made
// it and the pod's QoS class, or the systemd unit of a host daemon.
//
// It understands cgroup v1 and v2, the kubelet's cgroupfs and systemd drivers,
// containerd, CRI-O, Docker and Podman names, runc's "slice:prefix:name"
// cgroups path taken literally by a cgroupfs runc, and paths nested under a
// prefix (kind nodes, a container inside a container).
package cgroup

import (
	"slices"
	"strings"
)

// Runtime is the container runtime that named a cgroup.
type Runtime int

// Runtimes seen in cgroup names.
const (
	RuntimeUnknown Runtime = iota
	RuntimeContainerd
	RuntimeCRIO
	RuntimeDocker
	RuntimePodman
)

func (r Runtime) String() string {
	switch r {
	case RuntimeContainerd:
		return "containerd"
	case RuntimeCRIO:
		return "cri-o"
	case RuntimeDocker:
		return "docker"
	case RuntimePodman:
		return "podman"
	}
	return "unknown"
}

// QOS is a pod's quality-of-service class.
type QOS int

// QoS classes, as the kubelet lays out pod cgroups.
const (
	QOSUnknown QOS = iota
	QOSGuaranteed
	QOSBurstable
	QOSBestEffort
)

func (q QOS) String() string {
	switch q {
	case QOSGuaranteed:
		return "Guaranteed"
	case QOSBurstable:
		return "Burstable"
	case QOSBestEffort:
		return "BestEffort"
	}
	return ""
}

// Info is what a cgroup path says about a process.
type Info struct {
	// Path is the cgroup path the other fields were read from.
	Path string
	// PodUID is the pod's UID with dashes (a 32-hex config hash for static pods).
	PodUID string
	// ContainerID is the runtime's container ID.
	ContainerID string
	// Runtime is the runtime that named the container's cgroup, if the name says.
	Runtime Runtime
	// QOS is the pod's QoS class.
	QOS QOS
	// Unit is the systemd unit (".service" or a non-container ".scope") of a
	// host process, or, in a container outside Kubernetes (a kind node seen
	// from its host), the unit inside it: a detail beside the container.
	// Login sessions ("session-N.scope", "user@UID.service") are no unit
	// of a cluster daemon and leave it empty.
	Unit string
	// Conmon is true for the container monitor of CRI-O or Podman (conmon),
	// which is not the container.
	Conmon bool
}

// InPod reports whether the path belongs to a Kubernetes pod.
func (i Info) InPod() bool { return i.PodUID != "" }

// maxFileBytes bounds how much of a cgroup file is looked at.
const maxFileBytes = 64 << 10

// Parse reads the contents of a /proc/<pid>/cgroup file. It never fails: lines
// it does not understand are ignored, and an empty Info means nothing was found.
// Of all the hierarchies listed, the first that places the process in a pod wins;
// otherwise the systemd unit comes from the name=systemd or unified hierarchy.
func Parse(data []byte) Info {
	if len(data) > maxFileBytes {
		data = data[:maxFileBytes]
	}
	var unified, systemd, other string
	var best Info
	parsed := false // whether ParsePath has seen last
	var last string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		// hierarchy-ID:controller-list:path; the path itself may contain ':'.
		first := strings.IndexByte(line, ':')
		if first < 0 {
			continue
		}
		second := strings.IndexByte(line[first+1:], ':')
		if second < 0 {
			continue
		}
		controllers := line[first+1 : first+1+second]
		path := line[first+1+second+1:]
		if !strings.HasPrefix(path, "/") {
			continue
		}
		// Under cgroup v1 most hierarchies repeat one path: each distinct
		// path is parsed once.
		if !best.InPod() && (!parsed || path != last) {
			parsed, last = true, path
			if info := ParsePath(path); info.InPod() || (best.ContainerID == "" && info.ContainerID != "") {
				best = info
			}
		}
		switch {
		case controllers == "" && line[:first] == "0":
			unified = path
		case controllers == "name=systemd":
			systemd = path
		case other == "" && (hasController(controllers, "pids") || hasController(controllers, "memory") || hasController(controllers, "cpu")):
			other = path
		}
	}
	if best.InPod() || best.ContainerID != "" {
		return best
	}
	for _, p := range []string{unified, systemd, other} {
		if p != "" && p != "/" {
			return ParsePath(p)
		}
	}
	if unified != "" {
		return Info{Path: unified}
	}
	return Info{}
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// ParsePath tells what one cgroup path says.
func ParsePath(path string) Info {
	info := Info{Path: path}
	segs := expandRuncSystemd(strings.Split(strings.Trim(path, "/"), "/"))
	// Find the kubepods segment; everything before it is a prefix (kind, nesting).
	kp := -1
	for i, s := range segs {
		if isKubepods(s) {
			kp = i
			break
		}
	}
	if kp < 0 {
		outsidePods(&info, segs)
		return info
	}
	rest := segs[kp+1:]
	info.QOS = QOSGuaranteed
	if len(rest) > 0 {
		switch q := qosOf(rest[0]); q {
		case QOSBurstable, QOSBestEffort:
			info.QOS = q
			rest = rest[1:]
		}
	}
	if len(rest) == 0 {
		info.QOS = QOSUnknown
		return info
	}
	uid, ok := podUID(rest[0])
	if !ok {
		info.QOS = QOSUnknown
		return info
	}
	info.PodUID = uid
	if len(rest) > 1 {
		info.ContainerID, info.Runtime, info.Conmon = containerID(rest[1])
	}
	return info
}

// expandRuncSystemd rewrites runc's systemd cgroups path "slice:prefix:name"
// where a runc with the cgroupfs driver took it as a literal directory name
// (containerd 1.4 with SystemdCgroup off under a kubelet with the systemd
// driver: "…/containerd.service/kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>")
// into the two segments runc with the systemd driver makes of it:
// "kubepods-besteffort-pod<uid>.slice" and "cri-containerd-<id>.scope". The
// pod slice's name holds the whole path of slices, so the kubepods segment
// and the QoS slice are put back in front of it.
func expandRuncSystemd(segs []string) []string {
	for i, s := range segs {
		slice, rest, ok := strings.Cut(s, ".slice:")
		if !ok {
			continue
		}
		prefix, name, ok := strings.Cut(rest, ":")
		if !ok || prefix == "" || name == "" {
			continue
		}
		out := append([]string{}, segs[:i]...)
		if strings.HasPrefix(slice, "kubepods") && !slices.ContainsFunc(out, isKubepods) {
			// kubepods-besteffort-pod<uid> → kubepods.slice, kubepods-besteffort.slice.
			parts := strings.Split(slice, "-")
			for j := 1; j < len(parts); j++ {
				out = append(out, strings.Join(parts[:j], "-")+".slice")
			}
		}
		out = append(out, slice+".slice", prefix+"-"+name+".scope")
		return append(out, segs[i+1:]...)
	}
	return segs
}

func isKubepods(s string) bool {
	// cgroupfs: "kubepods"; systemd: "kubepods.slice"; kind and other nested
	// kubelets with a systemd driver: "kubelet-kubepods.slice".
	return s == "kubepods" || s == "kubepods.slice" || (strings.HasSuffix(s, "-kubepods.slice") && !strings.Contains(s, "-pod"))
}

func qosOf(s string) QOS {
	s = strings.TrimSuffix(s, ".slice")
	switch {
	case s == "burstable" || strings.HasSuffix(s, "kubepods-burstable"):
		return QOSBurstable
	case s == "besteffort" || strings.HasSuffix(s, "kubepods-besteffort"):
		return QOSBestEffort
	}
	return QOSUnknown
}

// podUID extracts a pod UID from "pod<uid>" (cgroupfs) or
// "…-pod<uid_with_underscores>.slice" (systemd).
func podUID(s string) (string, bool) {
	s = strings.TrimSuffix(s, ".slice")
	i := strings.LastIndex(s, "pod")
	if i < 0 {
		return "", false
	}
	if i > 0 && s[i-1] != '-' {
		return "", false
	}
	uid := strings.ReplaceAll(s[i+3:], "_", "-")
	if !validUID(uid) {
		return "", false
	}
	return uid, true
}

// validUID accepts a UUID (36 characters with dashes) or a 32-hex hash as the
// kubelet uses for static pods.
func validUID(s string) bool {
	if len(s) != 36 && len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' {
			if len(s) != 36 || (i != 8 && i != 13 && i != 18 && i != 23) {
				return false
			}
			continue
		}
		if !isHex(c) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func allHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// containerID reads a container segment: "<id>" (cgroupfs),
// "cri-containerd-<id>.scope", "crio-<id>.scope", "crio-conmon-<id>.scope",
// "docker-<id>.scope", and Podman's "libpod-<id>.scope" and
// "libpod-conmon-<id>.scope" (or without ".scope" under "libpod_parent" with
// the cgroupfs manager).
func containerID(s string) (id string, rt Runtime, conmon bool) {
	s = strings.TrimSuffix(s, ".scope")
	switch {
	case strings.HasPrefix(s, "libpod-conmon-"):
		s, rt, conmon = strings.TrimPrefix(s, "libpod-conmon-"), RuntimePodman, true
	case strings.HasPrefix(s, "libpod-"):
		s, rt = strings.TrimPrefix(s, "libpod-"), RuntimePodman
	case strings.HasPrefix(s, "cri-containerd-"):
		s, rt = strings.TrimPrefix(s, "cri-containerd-"), RuntimeContainerd
	case strings.HasPrefix(s, "crio-conmon-"):
		s, rt, conmon = strings.TrimPrefix(s, "crio-conmon-"), RuntimeCRIO, true
	case strings.HasPrefix(s, "crio-"):
		s, rt = strings.TrimPrefix(s, "crio-"), RuntimeCRIO
	case strings.HasPrefix(s, "docker-"):
		s, rt = strings.TrimPrefix(s, "docker-"), RuntimeDocker
	case len(s) == 64:
		// A bare ID: cgroupfs driver; the runtime is not in the name.
	default:
		return "", RuntimeUnknown, false
	}
	if len(s) < 12 || len(s) > 128 || !allHex(s) {
		return "", RuntimeUnknown, false
	}
	return strings.ToLower(s), rt, conmon
}

// outsidePods reads a path that is not in a pod.
//
// The outermost container decides what the process is, as seen from this
// host: Docker's "/docker/<id>" (cgroupfs), a bare 64-hex id at the root, or
// a runtime's "<runtime>-<id>.scope" (systemd). A systemd unit inside that
// container (a kind node's "kubelet.service") is kept as a detail. With no
// container, the innermost systemd unit (".service", or a ".scope" that is
// not a container) makes it a host process.
//
// Login sessions are not units of a cluster daemon: systemd-logind puts a
// session's processes in "session-<N>.scope" and the user's own manager in
// "user@<uid>.service", both under "user-<uid>.slice". A process found there
// is a host process without a unit.
func outsidePods(info *Info, segs []string) {
	inner := segs
	for i, s := range segs {
		id, rt := "", RuntimeUnknown
		conmon := false
		switch {
		case i > 0 && segs[i-1] == "docker" && len(s) == 64 && allHex(s):
			id, rt = strings.ToLower(s), RuntimeDocker
		case i == 0 && len(segs) == 1 && len(s) == 64 && allHex(s):
			// Docker with a cgroup parent of "/".
			id, rt = strings.ToLower(s), RuntimeDocker
		case i > 0 && segs[i-1] == "libpod_parent":
			id, rt, conmon = containerID(s)
		case strings.HasSuffix(s, ".scope"):
			if cid, crt, cm := containerID(s); cid != "" && crt != RuntimeUnknown {
				id, rt, conmon = cid, crt, cm
			}
		}
		if id != "" {
			info.ContainerID, info.Runtime, info.Conmon = id, rt, conmon
			inner = segs[i+1:]
			break
		}
	}
	for i := len(inner) - 1; i >= 0; i-- {
		s := inner[i]
		if loginSession(s) {
			return
		}
		if strings.HasSuffix(s, ".service") || strings.HasSuffix(s, ".scope") {
			info.Unit = s
			return
		}
	}
}

// loginSession reports whether a segment is systemd-logind's: a session
// scope or a user's service manager.
func loginSession(s string) bool {
	return (strings.HasPrefix(s, "session-") && strings.HasSuffix(s, ".scope")) ||
		(strings.HasPrefix(s, "user@") && strings.HasSuffix(s, ".service"))
}
