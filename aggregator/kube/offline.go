package kube

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	pathpkg "path"
	"path/filepath"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
)

// Objects are API objects read from files.
type Objects struct {
	Nodes      []*corev1.Node
	Pods       []*corev1.Pod
	Namespaces []*corev1.Namespace
	Workloads  []any // *appsv1.DaemonSet, ReplicaSet, Deployment, StatefulSet, *batchv1.Job
	// APIEndpoints are the addresses of the "kubernetes" Service, from its
	// EndpointSlices.
	APIEndpoints []string
	// Skipped counts objects of kinds kubeatlas does not use.
	Skipped int
}

// maxObjectFile bounds one file of API objects.
const maxObjectFile = 256 << 20

// ReadObjects reads a file, or every .yaml, .yml and .json file in a directory
// (not recursively), as `kubectl get … -o yaml|json` prints them: a List, a
// single object or a multi-document stream.
func ReadObjects(path string) (*Objects, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return ReadObjectsFS(os.DirFS(path), ".")
	}
	return ReadObjectsFS(os.DirFS(filepath.Dir(path)), filepath.Base(path))
}

// ReadObjectsFS is ReadObjects on a file system: path is a file or a directory in fsys.
func ReadObjectsFS(fsys fs.FS, path string) (*Objects, error) {
	st, err := fs.Stat(fsys, path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if st.IsDir() {
		entries, err := fs.ReadDir(fsys, path)
		if err != nil {
			return nil, err
		}
		files = files[:0]
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
				files = append(files, pathpkg.Join(path, e.Name()))
			}
		}
		sort.Strings(files)
	}
	objs := &Objects{}
	for _, f := range files {
		if err := readObjectFile(fsys, f, objs); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// ReadRegularFile reads a regular file of at most max bytes from fsys. Its
// type and size are checked before it is opened, so a FIFO (whose open
// would block), a device such as /dev/zero (which never ends), a directory or
// a file too large is an error, not a hang or an exhausted memory; a symbolic
// link counts as what it points to.
func ReadRegularFile(fsys fs.FS, path string, max int64) ([]byte, error) {
	st, err := fs.Stat(fsys, path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file but %s", path, FileKind(st.Mode()))
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, over the limit of %d", path, st.Size(), max)
	}
	f, err := fsys.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file may have grown or been replaced since: read no more than max.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return data, nil
}

// FileKind names the kind of file a mode describes, for error messages.
func FileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	}
	return "an irregular file"
}

func readObjectFile(fsys fs.FS, path string, objs *Objects) error {
	data, err := ReadRegularFile(fsys, path, maxObjectFile)
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 64<<10)
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: document %d: %w", path, doc, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		if err := addObject(raw, objs); err != nil {
			return fmt.Errorf("%s: document %d: %w", path, doc, err)
		}
	}
}

// decoder decodes API objects by their apiVersion and kind, as client-go's
// scheme knows them, from JSON or YAML.
var decoder = scheme.Codecs.UniversalDeserializer()

func addObject(raw []byte, objs *Objects) error {
	obj, _, err := decoder.Decode(raw, nil, nil)
	switch {
	case runtime.IsNotRegisteredError(err):
		// A kind client-go does not know (a custom resource, or an API
		// version no longer served): not one kubeatlas uses.
		objs.Skipped++
		return nil
	case err != nil:
		return fmt.Errorf("decoding object: %w", err)
	}
	if list, ok := obj.(*corev1.List); ok {
		// `kubectl get a,b -o yaml`: items of any kind, each decoded by
		// its own apiVersion and kind.
		for i, item := range list.Items {
			if err := addObject(item.Raw, objs); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		return nil
	}
	if meta.IsListType(obj) {
		// A typed list (PodList, DeploymentList…) holds typed items.
		items, err := meta.ExtractList(obj)
		if err != nil {
			return fmt.Errorf("reading %T: %w", obj, err)
		}
		for _, item := range items {
			objs.add(item)
		}
		return nil
	}
	objs.add(obj)
	return nil
}

// add keeps an object of a kind kubeatlas uses and counts the others.
func (objs *Objects) add(obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Node:
		objs.Nodes = append(objs.Nodes, o)
	case *corev1.Pod:
		objs.Pods = append(objs.Pods, o)
	case *corev1.Namespace:
		objs.Namespaces = append(objs.Namespaces, o)
	case *appsv1.DaemonSet, *appsv1.ReplicaSet, *appsv1.Deployment, *appsv1.StatefulSet, *batchv1.Job:
		objs.Workloads = append(objs.Workloads, o)
	case *discoveryv1.EndpointSlice:
		if addrs := APIEndpointAddresses(o); addrs != nil {
			objs.APIEndpoints = append(objs.APIEndpoints, addrs...)
		} else {
			objs.Skipped++
		}
	default:
		objs.Skipped++
	}
}

// Load applies objects to the engine as cluster's API state.
func Load(e *apply.Applier, cluster string, objs *Objects) error {
	uid := ""
	for _, ns := range objs.Namespaces {
		if ns.Name == "kube-system" {
			uid = string(ns.UID)
		}
	}
	if err := e.SetAPI(cluster, uid, "", true); err != nil {
		return err
	}
	if len(objs.APIEndpoints) > 0 {
		if err := e.SetAPIEndpoints(cluster, objs.APIEndpoints); err != nil {
			return err
		}
	}
	for _, w := range objs.Workloads {
		if err := e.UpsertWorkload(WorkloadRow(cluster, w)); err != nil {
			return err
		}
	}
	for _, n := range objs.Nodes {
		if err := e.UpsertNodeAPI(cluster, n.Name, NodeAPI(n)); err != nil {
			return err
		}
	}
	for _, p := range objs.Pods {
		if err := e.UpsertPod(PodRow(cluster, p)); err != nil {
			return err
		}
	}
	return nil
}
