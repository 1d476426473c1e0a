// Package cgroup reads /proc/<pid>/cgroup and tells what the path says about a
// process: the pod and container it belongs to, the container runtime that made
// it and the pod's QoS class, or the systemd unit of a host daemon.
//
// It understands cgroup v1 and v2, the kubelet's cgroupfs and systemd drivers,
// containerd, CRI-O and Docker names, and paths nested under a prefix (kind
// nodes, a container inside a container).
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
)

func (r Runtime) String() string {
	switch r {
	case RuntimeContainerd:
		return "containerd"
	case RuntimeCRIO:
		return "cri-o"
	case RuntimeDocker:
		return "docker"
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
	// Unit is the systemd unit (".service" or a non-container ".scope") of a host process.
	Unit string
	// Conmon is true for CRI-O's conmon monitor process, which is not the container.
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
	for _, line := range strings.Split(string(data), "\n") {
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
		if !best.InPod() {
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

func hasController(list, name string) bool { return slices.Contains(strings.Split(list, ","), name) }

// ParsePath tells what one cgroup path says.
func ParsePath(path string) Info {
	info := Info{Path: path}
	segs := strings.Split(strings.Trim(path, "/"), "/")
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

// containerID reads a container segment below a pod: "<id>" (cgroupfs),
// "cri-containerd-<id>.scope", "crio-<id>.scope", "crio-conmon-<id>.scope",
// "docker-<id>.scope".
func containerID(s string) (id string, rt Runtime, conmon bool) {
	s = strings.TrimSuffix(s, ".scope")
	switch {
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

// outsidePods reads a path that is not in a pod, innermost segment first: a
// systemd unit (".service", or a ".scope" that is not a container) makes it a
// host process; Docker's "/docker/<id>" or a runtime's "<runtime>-<id>.scope"
// makes it a container outside Kubernetes.
func outsidePods(info *Info, segs []string) {
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if i > 0 && segs[i-1] == "docker" && len(s) == 64 && allHex(s) {
			info.ContainerID, info.Runtime = strings.ToLower(s), RuntimeDocker
			return
		}
		if strings.HasSuffix(s, ".scope") {
			if id, rt, conmon := containerID(s); id != "" && rt != RuntimeUnknown {
				info.ContainerID, info.Runtime, info.Conmon = id, rt, conmon
				return
			}
		}
		if strings.HasSuffix(s, ".service") || strings.HasSuffix(s, ".scope") {
			info.Unit = s
			return
		}
	}
}
