// Package manifest reads the kubelet's static pod directory and configuration
// the way the kubelet does, so the agent reports what the kubelet will run.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubeatlas/kubeatlas/agent/hostfile"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/redact"
)

// DefaultDir is where kubeadm and most installers put static pod manifests.
const DefaultDir = "/etc/kubernetes/manifests"

// MaxFileBytes bounds one manifest; a larger file is reported with an error
// and not parsed.
const MaxFileBytes = 1 << 20

// MaxFiles bounds how many files of one directory are read.
const MaxFiles = 1000

// Parse parses a manifest file's bytes as a v1.Pod. It returns the API form,
// with every container's command and args redacted, and the parse error, if
// any, recorded in it rather than returned.
func Parse(path string, data []byte) *v1.StaticPodManifest {
	sum := sha256.Sum256(data)
	m := &v1.StaticPodManifest{
		Path:      clean(path),
		Sha256:    hex.EncodeToString(sum[:]),
		SizeBytes: int64(len(data)),
	}
	pod, err := decodePod(data)
	if err != nil {
		m.ParseError = errText(err)
		return m
	}
	m.PodName = clean(pod.Name)
	m.PodNamespace = clean(pod.Namespace)
	if m.PodNamespace == "" {
		m.PodNamespace = "default"
	}
	for _, c := range pod.Spec.Containers {
		// A flag may end command and its value begin args: they are
		// redacted as the one command line they make.
		command, args := redact.Container(c.Command, c.Args)
		m.Containers = append(m.Containers, &v1.ManifestContainer{
			Name:    clean(c.Name),
			Image:   clean(c.Image),
			Command: cleanAll(command),
			Args:    cleanAll(args),
		})
	}
	return m
}

func decodePod(data []byte) (*corev1.Pod, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("file is empty")
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		// The kubelet tolerates unknown fields; only a structural error is fatal.
		if err2 := yaml.Unmarshal(data, &pod); err2 != nil {
			return nil, fmt.Errorf("decoding pod: %w", err2)
		}
	}
	if pod.Kind != "Pod" {
		return nil, fmt.Errorf("kind is %q, want \"Pod\"", pod.Kind)
	}
	if pod.APIVersion != "v1" {
		return nil, fmt.Errorf("apiVersion is %q, want \"v1\"", pod.APIVersion)
	}
	if pod.Name == "" {
		return nil, errors.New("metadata.name is empty")
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, errors.New("spec.containers is empty")
	}
	return &pod, nil
}

// Dir reads a static pod directory as the kubelet does: regular files only,
// hidden files skipped, no recursion. hostRoot is prefixed to dir when reading;
// reported paths are the node's own. A file that cannot be read or parsed is
// reported with its error. prev lets unchanged files (same path, size and
// mtime) be reused without reading them again; it may be nil.
func Dir(hostRoot, dir string, prev map[string]*v1.StaticPodManifest) ([]*v1.StaticPodManifest, error) {
	full := filepath.Join(hostRoot, dir)
	entries, err := os.ReadDir(full)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading static pod directory %s: %w", dir, err)
	}
	var out []*v1.StaticPodManifest
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if len(out) >= MaxFiles {
			return out, fmt.Errorf("static pod directory %s has more than %d files; the rest are not read", dir, MaxFiles)
		}
		nodePath := filepath.Join(dir, name)
		info, err := os.Stat(filepath.Join(full, name))
		if err != nil {
			out = append(out, &v1.StaticPodManifest{Path: clean(nodePath), ParseError: errText(err)})
			continue
		}
		if !info.Mode().IsRegular() {
			continue
		}
		mtime := timestamppb.New(info.ModTime())
		if p, ok := prev[nodePath]; ok && p.SizeBytes == info.Size() && p.GetMtime().AsTime().Equal(info.ModTime()) {
			out = append(out, p)
			continue
		}
		m := readFile(filepath.Join(full, name), nodePath, info.Size())
		m.Mtime = mtime
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func readFile(full, nodePath string, size int64) *v1.StaticPodManifest {
	if size > MaxFileBytes {
		return &v1.StaticPodManifest{Path: clean(nodePath), SizeBytes: size,
			ParseError: fmt.Sprintf("file is %d bytes, more than the %d this agent reads", size, MaxFileBytes)}
	}
	data, err := hostfile.ReadAll(full, MaxFileBytes)
	if err != nil {
		return &v1.StaticPodManifest{Path: clean(nodePath), ParseError: errText(err)}
	}
	return Parse(nodePath, data)
}

// errText is an error as it may leave the node: valid UTF-8, with any
// credential the message quotes (a line of the file, say) redacted.
func errText(err error) string {
	t, _ := redact.Text(clean(err.Error()))
	return t
}

func clean(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func cleanAll(ss []string) []string {
	for i, s := range ss {
		ss[i] = clean(s)
	}
	return ss
}
