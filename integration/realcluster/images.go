package realcluster

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	cr "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image is one container image built here: no registry is reachable, so
// every image is a static binary in a layer with the few files it needs,
// tagged with the name kubeadm or a manifest asks for.
type Image struct {
	Ref string // registry.k8s.io/kube-apiserver:v1.37.2
	// Files maps a path in the image to a file on this machine.
	Files map[string]string
	// Links maps a path in the image to a symbolic link's target.
	Links      map[string]string
	Entrypoint []string
}

// imageFormat changes whenever Archive writes images differently, so that no
// archive cached by an older harness is used.
const imageFormat = "2"

// imageEnv is every image's environment.
var imageEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// baseFiles are what every image holds besides its binaries.
var baseFiles = map[string]string{
	"etc/passwd":        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
	"etc/group":         "root:x:0:\nnogroup:x:65534:\n",
	"etc/nsswitch.conf": "hosts: files dns\n",
}

// Archive writes the image as a docker-archive tarball into dir, once per
// content: the file's name is the hash of the reference, the entrypoint and
// every file, so an unchanged image is not written again.
func (img Image) Archive(dir string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%q\x00%q\x00", imageFormat, img.Ref, img.Entrypoint, imageEnv)
	for _, p := range sortedKeys(img.Links) {
		fmt.Fprintf(h, "%s->%s\x00", p, img.Links[p])
	}
	paths := sortedKeys(img.Files)
	for _, p := range paths {
		f, err := os.Open(img.Files[p])
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00", p)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	out := filepath.Join(dir, hex.EncodeToString(h.Sum(nil)[:12])+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	mod := time.Unix(0, 0)
	dirs := map[string]bool{}
	addDirs := func(p string) error {
		var chain []string
		for d := filepath.Dir(p); d != "." && d != "/" && !dirs[d]; d = filepath.Dir(d) {
			chain = append([]string{d}, chain...)
		}
		for _, d := range chain {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mod}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range []string{"tmp/", "var/run/", "proc/", "sys/", "dev/"} {
		if err := addDirs(d + "x"); err != nil {
			return "", err
		}
	}
	for _, p := range sortedKeys(baseFiles) {
		if err := addDirs(p); err != nil {
			return "", err
		}
		body := baseFiles[p]
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(body)), ModTime: mod}); err != nil {
			return "", err
		}
		if _, err := io.WriteString(tw, body); err != nil {
			return "", err
		}
	}
	for _, p := range paths {
		data, err := os.ReadFile(img.Files[p])
		if err != nil {
			return "", err
		}
		if err := addDirs(p); err != nil {
			return "", err
		}
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o755, Size: int64(len(data)), ModTime: mod}); err != nil {
			return "", err
		}
		if _, err := tw.Write(data); err != nil {
			return "", err
		}
	}
	for _, p := range sortedKeys(img.Links) {
		if err := addDirs(p); err != nil {
			return "", err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: img.Links[p], Mode: 0o777, ModTime: mod}); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	data := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return "", err
	}
	image, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return "", err
	}
	cf, err := image.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = cr.Config{Entrypoint: img.Entrypoint, Env: imageEnv}
	if image, err = mutate.ConfigFile(image, cf); err != nil {
		return "", err
	}
	tag, err := name.NewTag(img.Ref)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, image); err != nil {
		return "", fmt.Errorf("writing image %s: %w", img.Ref, err)
	}
	return out, os.Rename(tmp, out)
}

// AddHostPrograms copies programs of this machine into the image with every
// shared library they load (as ldd lists them), under the same paths, so a
// dynamically linked tool such as iptables runs in an image that has no
// distribution. names are looked up in PATH; each is also linked under
// /usr/sbin by the name it was asked for, since multi-call programs such as
// xtables-nft-multi act on the name they are started by. dirs are copied
// whole, with the libraries of every file in them (iptables's extensions).
func (img *Image) AddHostPrograms(names []string, dirs ...string) error {
	if img.Files == nil {
		img.Files = map[string]string{}
	}
	if img.Links == nil {
		img.Links = map[string]string{}
	}
	var objects []string
	for _, n := range names {
		path, err := exec.LookPath(n)
		if err != nil {
			return err
		}
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return err
		}
		img.Files[strings.TrimPrefix(real, "/")] = real
		if link := "usr/sbin/" + n; "/"+link != real {
			img.Links[link] = real
		}
		objects = append(objects, real)
	}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return err
			}
			img.Files[strings.TrimPrefix(p, "/")] = real
			objects = append(objects, real)
		}
	}
	for _, o := range objects {
		out, err := exec.Command("ldd", o).Output()
		if err != nil {
			continue // not dynamically linked
		}
		for _, line := range strings.Split(string(out), "\n") {
			fields := strings.Fields(line)
			var lib string
			switch {
			case len(fields) >= 3 && fields[1] == "=>" && strings.HasPrefix(fields[2], "/"):
				lib = fields[2]
			case len(fields) >= 1 && strings.HasPrefix(fields[0], "/"):
				lib = fields[0] // the dynamic loader
			default:
				continue
			}
			real, err := filepath.EvalSymlinks(lib)
			if err != nil {
				return err
			}
			img.Files[strings.TrimPrefix(lib, "/")] = real
		}
	}
	return nil
}
