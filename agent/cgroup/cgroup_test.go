package cgroup

import (
	"testing"
)

func TestParsePath(t *testing.T) {
	const (
		id  = "7f2d1a5e0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918070"
		uid = "4a0f5e1b-3c2d-4e5f-8a9b-0c1d2e3f4a5b"
	)
	tests := []struct {
		name string
		path string
		want Info
	}{
		{"cgroupfs burstable containerd", "/kubepods/burstable/pod" + uid + "/" + id,
			Info{PodUID: uid, ContainerID: id, QOS: QOSBurstable}},
		{"cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + id,
			Info{PodUID: uid, ContainerID: id, QOS: QOSGuaranteed}},
		{"cgroupfs besteffort pod only", "/kubepods/besteffort/pod" + uid,
			Info{PodUID: uid, QOS: QOSBestEffort}},
		{"systemd containerd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod4a0f5e1b_3c2d_4e5f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-" + id + ".scope",
			Info{PodUID: uid, ContainerID: id, Runtime: RuntimeContainerd, QOS: QOSBurstable}},
		{"systemd guaranteed crio", "/kubepods.slice/kubepods-pod4a0f5e1b_3c2d_4e5f_8a9b_0c1d2e3f4a5b.slice/crio-" + id + ".scope",
			Info{PodUID: uid, ContainerID: id, Runtime: RuntimeCRIO, QOS: QOSGuaranteed}},
		{"crio conmon is not the container", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod4a0f5e1b_3c2d_4e5f_8a9b_0c1d2e3f4a5b.slice/crio-conmon-" + id + ".scope",
			Info{PodUID: uid, ContainerID: id, Runtime: RuntimeCRIO, QOS: QOSBestEffort, Conmon: true}},
		{"systemd docker", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod4a0f5e1b_3c2d_4e5f_8a9b_0c1d2e3f4a5b.slice/docker-" + id + ".scope",
			Info{PodUID: uid, ContainerID: id, Runtime: RuntimeDocker, QOS: QOSBestEffort}},
		{"static pod hash uid", "/kubepods/burstable/pod1a2b3c4d5e6f70819a2b3c4d5e6f7081/" + id,
			Info{PodUID: "1a2b3c4d5e6f70819a2b3c4d5e6f7081", ContainerID: id, QOS: QOSBurstable}},
		{"static pod hash uid systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d5e6f70819a2b3c4d5e6f7081.slice/cri-containerd-" + id + ".scope",
			Info{PodUID: "1a2b3c4d5e6f70819a2b3c4d5e6f7081", ContainerID: id, Runtime: RuntimeContainerd, QOS: QOSBurstable}},
		{"kind node cgroupfs nested in docker", "/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/kubepods/besteffort/pod" + uid + "/" + id,
			Info{PodUID: uid, ContainerID: id, QOS: QOSBestEffort}},
		{"kind node systemd driver", "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod4a0f5e1b_3c2d_4e5f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-" + id + ".scope",
			Info{PodUID: uid, ContainerID: id, Runtime: RuntimeContainerd, QOS: QOSBestEffort}},
		{"nested under a test prefix", "/user.slice/user-0.slice/session-1.scope/atlas-test/node-a/kubepods/burstable/pod" + uid + "/" + id,
			Info{PodUID: uid, ContainerID: id, QOS: QOSBurstable}},
		{"host daemon", "/system.slice/kubelet.service", Info{Unit: "kubelet.service"}},
		// A kind node seen from its host: the node is a Docker container
		// (kind runs each node as one, cgroupfs driver on cgroup v1), and
		// its systemd runs containerd and the kubelet inside it. The
		// container is the truth from the host; the unit is a detail.
		{"host daemon inside kind node", "/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/system.slice/containerd.service",
			Info{ContainerID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Runtime: RuntimeDocker, Unit: "containerd.service"}},
		{"kubelet inside kind node, systemd driver on the host", "/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope/kubelet.slice/kubelet.service",
			Info{ContainerID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Runtime: RuntimeDocker, Unit: "kubelet.service"}},
		{"docker container outside k8s", "/docker/" + id, Info{ContainerID: id, Runtime: RuntimeDocker}},
		{"docker scope outside k8s", "/system.slice/docker-" + id + ".scope", Info{ContainerID: id, Runtime: RuntimeDocker}},
		// systemd-logind: a login's processes in session-<N>.scope, the
		// user's manager in user@<uid>.service, under user-<uid>.slice
		// (systemd.special(7), "user-UID.slice"). No cluster daemon unit.
		{"login session", "/user.slice/user-1000.slice/session-3.scope", Info{}},
		{"user manager", "/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service", Info{Unit: "dbus.service"}},
		{"user manager itself", "/user.slice/user-1000.slice/user@1000.service/init.scope", Info{Unit: "init.scope"}},
		{"user manager process", "/user.slice/user-1000.slice/user@1000.service", Info{}},
		// containerd 1.4 passes runc the systemd form "slice:prefix:name"
		// (containerd/cri pkg/server/helpers.go, getCgroupsPath) whenever
		// the kubelet's cgroup parent is a slice; a runc with the cgroupfs
		// driver takes it as a literal directory, created beneath
		// containerd's own cgroup.
		{"runc cgroupfs with a systemd path", "/system.slice/containerd.service/kubepods-besteffort-pod4a0f5e1b_3c2d_4e5f_8a9b_0c1d2e3f4a5b.slice:cri-containerd:" + id,
			Info{PodUID: uid, ContainerID: id, Runtime: RuntimeContainerd, QOS: QOSBestEffort}},
		{"runc cgroupfs with a systemd path under kubepods", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod4a0f5e1b_3c2d_4e5f_8a9b_0c1d2e3f4a5b.slice:cri-containerd:" + id,
			Info{PodUID: uid, ContainerID: id, Runtime: RuntimeContainerd, QOS: QOSBurstable}},
		{"runc cgroupfs with a systemd path, guaranteed", "/kubepods-pod4a0f5e1b_3c2d_4e5f_8a9b_0c1d2e3f4a5b.slice:cri-containerd:" + id,
			Info{PodUID: uid, ContainerID: id, Runtime: RuntimeContainerd, QOS: QOSGuaranteed}},
		// Docker outside Kubernetes: cgroupfs driver "/docker/<id>"; with a
		// cgroup parent of "/" the bare id sits at the root.
		{"docker container at the root", "/" + id, Info{ContainerID: id, Runtime: RuntimeDocker}},
		// Podman (containers/common pkg/cgroups, libpod/runtime_ctr.go):
		// systemd manager "machine.slice/libpod-<id>.scope" and the
		// monitor in "libpod-conmon-<id>.scope"; cgroupfs manager
		// "/libpod_parent/libpod-<id>".
		{"podman systemd", "/machine.slice/libpod-" + id + ".scope", Info{ContainerID: id, Runtime: RuntimePodman}},
		{"podman conmon", "/machine.slice/libpod-conmon-" + id + ".scope", Info{ContainerID: id, Runtime: RuntimePodman, Conmon: true}},
		{"podman rootless", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope", Info{ContainerID: id, Runtime: RuntimePodman}},
		{"podman cgroupfs", "/libpod_parent/libpod-" + id, Info{ContainerID: id, Runtime: RuntimePodman}},
		{"podman cgroupfs conmon", "/libpod_parent/libpod-conmon-" + id, Info{ContainerID: id, Runtime: RuntimePodman, Conmon: true}},
		// CRI-O's monitor outside a pod (cri-o internal/oci: conmon's
		// cgroup is "crio-conmon-<id>.scope" beside "crio-<id>.scope").
		{"crio conmon in system.slice", "/system.slice/crio-conmon-" + id + ".scope", Info{ContainerID: id, Runtime: RuntimeCRIO, Conmon: true}},
		{"root", "/", Info{}},
		{"kubepods without pod", "/kubepods/burstable", Info{}},
		{"bad uid", "/kubepods/burstable/podnot-a-uid/" + id, Info{}},
		{"bad container id", "/kubepods/burstable/pod" + uid + "/zzzz", Info{PodUID: uid, QOS: QOSBurstable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParsePath(tt.path)
			tt.want.Path = tt.path
			if got != tt.want {
				t.Errorf("ParsePath(%q)\n got  %+v\n want %+v", tt.path, got, tt.want)
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	const id = "7f2d1a5e0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918070"
	tests := []struct {
		name string
		file string
		want Info
	}{
		{
			name: "cgroup v2",
			file: "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod4a0f5e1b_3c2d_4e5f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-" + id + ".scope\n",
			want: Info{Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod4a0f5e1b_3c2d_4e5f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-" + id + ".scope",
				PodUID: "4a0f5e1b-3c2d-4e5f-8a9b-0c1d2e3f4a5b", ContainerID: id, Runtime: RuntimeContainerd, QOS: QOSBurstable},
		},
		{
			name: "cgroup v1 hybrid host daemon",
			file: "12:pids:/system.slice/containerd.service\n11:memory:/system.slice/containerd.service\n1:name=systemd:/system.slice/containerd.service\n0::/system.slice/containerd.service\n",
			want: Info{Path: "/system.slice/containerd.service", Unit: "containerd.service"},
		},
		{
			name: "cgroup v1 pod in cpu,cpuacct",
			file: "5:cpu,cpuacct:/kubepods/besteffort/pod4a0f5e1b-3c2d-4e5f-8a9b-0c1d2e3f4a5b/" + id + "\n1:name=systemd:/kubepods/besteffort/pod4a0f5e1b-3c2d-4e5f-8a9b-0c1d2e3f4a5b/" + id + "\n0::/\n",
			want: Info{Path: "/kubepods/besteffort/pod4a0f5e1b-3c2d-4e5f-8a9b-0c1d2e3f4a5b/" + id,
				PodUID: "4a0f5e1b-3c2d-4e5f-8a9b-0c1d2e3f4a5b", ContainerID: id, QOS: QOSBestEffort},
		},
		{
			name: "v1 with only unified root",
			file: "0::/\n",
			want: Info{Path: "/"},
		},
		{name: "garbage", file: "not a cgroup file\n:::\n", want: Info{}},
		{name: "empty", file: "", want: Info{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Parse([]byte(tt.file)); got != tt.want {
				t.Errorf("Parse\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("0::/kubepods/burstable/pod4a0f5e1b-3c2d-4e5f-8a9b-0c1d2e3f4a5b/7f2d1a5e0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918070\n"))
	f.Add([]byte("1:name=systemd:/system.slice/kubelet.service\n"))
	f.Add([]byte("0::/kubepods.slice/kubepods-pod1a2b3c4d5e6f70819a2b3c4d5e6f7081.slice/crio-conmon-abc.scope"))
	f.Add([]byte("\xff\xfe:::/\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info := Parse(data)
		if info.ContainerID != "" && !allHex(info.ContainerID) {
			t.Fatalf("container ID %q is not hex", info.ContainerID)
		}
		if info.PodUID != "" && !validUID(info.PodUID) {
			t.Fatalf("pod UID %q is not valid", info.PodUID)
		}
		if info.PodUID == "" && info.QOS != QOSUnknown {
			t.Fatalf("QoS %v without a pod", info.QOS)
		}
	})
}
