package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubeatlas/kubeatlas/agent/hostfile"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/recognize"
	"github.com/kubeatlas/kubeatlas/redact"
)

// Resolve makes a path from a component's flags or config absolute: a
// relative path is relative to dir (the process's working directory, or the
// config file's directory), as the component itself reads it. With no dir
// it is taken from "/".
func Resolve(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	if dir == "" {
		dir = "/"
	}
	return filepath.Join(dir, path)
}

// KubeadmFlagsFile is where kubeadm writes the kubelet's extra flags.
const KubeadmFlagsFile = "/var/lib/kubelet/kubeadm-flags.env"

// kubeletConfig is the part of KubeletConfiguration the agent reads.
type kubeletConfig struct {
	Kind                     string `json:"kind"`
	StaticPodPath            string `json:"staticPodPath"`
	CgroupDriver             string `json:"cgroupDriver"`
	ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint"`
}

// Kubelet works out the kubelet's configuration from its (redacted) flags and
// the files they name, read under hostRoot. kubeletFlags may be empty when no
// kubelet process runs; then the defaults apply. cwd is the kubelet's working
// directory on the host ("" when unknown): relative paths in its flags are
// relative to it, and relative paths in its config file to that file's
// directory, as the kubelet reads them. Problems are recorded in the result's
// Errors, never returned: a broken config must not hide the rest.
func Kubelet(hostRoot, cwd string, kubeletFlags recognize.Flags) *v1.KubeletInfo {
	info := &v1.KubeletInfo{}
	// kubeadm's extra flags come before the command line's, which win.
	kubeadm, err := readKubeadmFlags(filepath.Join(hostRoot, KubeadmFlagsFile))
	switch {
	case err == nil:
		info.KubeadmFlags = redact.Lines(kubeadm)
	case !errors.Is(err, os.ErrNotExist):
		info.Errors = append(info.Errors, errText(err))
	}
	flags := recognize.ParseFlags(info.KubeadmFlags)
	for k, v := range kubeletFlags.Values {
		flags.Values[k] = v
	}
	if v, ok := flags.Get("container-runtime-endpoint"); ok {
		info.ContainerRuntimeEndpoint = v
	}
	if v, ok := flags.Get("cgroup-driver"); ok {
		info.CgroupDriver = v
	}
	if cfg, ok := flags.Get("config"); ok {
		cfg = Resolve(cwd, cfg)
		info.ConfigPath = cfg
		c, err := readKubeletConfig(filepath.Join(hostRoot, cfg))
		if err != nil {
			info.Errors = append(info.Errors, errText(fmt.Errorf("kubelet config %s: %w", cfg, err)))
		} else {
			if c.StaticPodPath != "" {
				info.StaticPodPath, info.StaticPodPathSource = Resolve(filepath.Dir(cfg), c.StaticPodPath), "config"
			}
			if c.CgroupDriver != "" {
				info.CgroupDriver = c.CgroupDriver
			}
			if c.ContainerRuntimeEndpoint != "" {
				info.ContainerRuntimeEndpoint = c.ContainerRuntimeEndpoint
			}
		}
	}
	if v, ok := flags.Get("pod-manifest-path"); ok && v != "true" {
		// The deprecated flag overrides the config file, as in the kubelet.
		info.StaticPodPath, info.StaticPodPathSource = Resolve(cwd, v), "flag"
	}
	if info.StaticPodPath == "" {
		info.StaticPodPath, info.StaticPodPathSource = DefaultDir, "default"
	}
	info.ConfigPath = clean(info.ConfigPath)
	info.StaticPodPath = clean(info.StaticPodPath)
	info.CgroupDriver = clean(info.CgroupDriver)
	info.ContainerRuntimeEndpoint = clean(info.ContainerRuntimeEndpoint)
	cleanAll(info.Errors)
	return info
}

func readKubeletConfig(path string) (*kubeletConfig, error) {
	data, err := hostfile.ReadAll(path, MaxFileBytes)
	if err != nil {
		return nil, err
	}
	var c kubeletConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if c.Kind != "" && c.Kind != "KubeletConfiguration" {
		return nil, fmt.Errorf("kind is %q, want KubeletConfiguration", c.Kind)
	}
	return &c, nil
}

// readKubeadmFlags reads KUBELET_KUBEADM_ARGS="…" from kubeadm-flags.env.
func readKubeadmFlags(path string) ([]string, error) {
	data, err := hostfile.ReadAll(path, MaxFileBytes)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), MaxFileBytes)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		v, ok := strings.CutPrefix(line, "KUBELET_KUBEADM_ARGS=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		return cleanAll(strings.Fields(v)), nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return nil, nil
}
