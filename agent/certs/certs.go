// Package certs finds the X.509 certificates a node's components use and
// reports what a certificate says of itself: subject, issuer, names, serial,
// validity, whether it is a CA, and which component names it and how.
//
// Where it looks:
//   - every file a component's flags name as a certificate or CA bundle
//     (--tls-cert-file, --client-ca-file, --kubelet-client-certificate,
//     --etcd-certfile, --cert-file, --peer-trusted-ca-file, …), recognised by
//     the shape of the flag's name rather than a list of components, so k3s,
//     RKE2 and other distributions' flags are found too;
//   - the kubeconfigs a component names (--kubeconfig,
//     --authentication-kubeconfig, …): their embedded client certificates and
//     CA data, and the files they name;
//   - the kubelet's config (tlsCertFile, authentication.x509.clientCAFile) and
//     its certificate directory (--cert-dir, by default /var/lib/kubelet/pki),
//     where it keeps its rotated kubelet-client-current.pem;
//   - where kubeadm keeps them: /etc/kubernetes/pki and its kubeconfigs
//     (admin.conf, controller-manager.conf, scheduler.conf, kubelet.conf).
//
// A file a process names is read as that process sees it, through
// /proc/<pid>/root, so a containerised component's own files are found; then
// under the host root.
//
// Private keys never leave the file they are in: no file is opened only for
// a key (a flag whose name speaks of a key is never followed), only the
// CERTIFICATE blocks of a PEM file are decoded (a key block beside them, as in
// kubelet-client-current.pem, is skipped without being decoded), a
// kubeconfig's client-key lines are cut out before it is parsed, and every
// buffer that held a file is zeroed once read.
package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/agent/hostfile"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/redact"
	"github.com/kubeatlas/kubeatlas/safetext"
)

// Limits on what is read.
const (
	// MaxFileBytes bounds one certificate file or kubeconfig.
	MaxFileBytes = 1 << 20
	// MaxCertificates bounds the certificates reported for one node.
	MaxCertificates = 1000
	// maxDirFiles bounds the files looked at in one certificate directory.
	maxDirFiles = 200
)

// Where kubeadm and the kubelet keep certificates.
const (
	KubeadmDir        = "/etc/kubernetes"
	KubeadmPKIDir     = "/etc/kubernetes/pki"
	DefaultKubeletPKI = "/var/lib/kubelet/pki"
)

// kubeadmKubeconfigs are the kubeconfigs kubeadm writes in KubeadmDir.
var kubeadmKubeconfigs = []string{"admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf"}

// Config says where the node's files are.
type Config struct {
	// HostRoot is where the host's root directory is mounted ("/" on the host).
	HostRoot string
	// ProcDir is the host's /proc.
	ProcDir string
}

// Reader finds a node's certificates. It keeps what it parsed, keyed by the
// file's identity and modification time, so an unchanged file is not parsed
// again on the next scan. It is not safe for concurrent use.
type Reader struct {
	cfg   Config
	cache map[string]cachedFile
	// read reads a file once stat has found it regular and small enough;
	// tests replace it to see what is read.
	read func(path string) ([]byte, error)
	// seen holds the files read in the current scan.
	seen map[string]bool
}

type cachedFile struct {
	stamp string
	certs []*x509.Certificate
	// kube is set for a kubeconfig that parsed: what it embeds and names.
	kube       *kubeconfigRefs
	kubeconfig bool
	err        string
}

// New returns a Reader.
func New(cfg Config) *Reader {
	if cfg.HostRoot == "" {
		cfg.HostRoot = "/"
	}
	if cfg.ProcDir == "" {
		cfg.ProcDir = filepath.Join(cfg.HostRoot, "proc")
	}
	return &Reader{cfg: cfg, cache: map[string]cachedFile{}, read: func(path string) ([]byte, error) {
		return hostfile.Read(path, MaxFileBytes)
	}}
}

// ref is one way a certificate file is named.
type ref struct {
	path string // as the process names it, absolute
	// root is where to read it first: the process's /proc/<pid>/root, or "".
	root       string
	kubeconfig bool
	use        *v1.CertificateUse
}

// Scan returns the certificates the node's components use, sorted by path,
// field and index. procs are the node's processes (with their recognised
// components and redacted flags), kubelet what was found of the kubelet, and
// cwd gives a process's working directory ("" when unknown).
func (r *Reader) Scan(procs []*v1.Process, kubelet *v1.KubeletInfo, cwd func(pid int32) string) []*v1.Certificate {
	var refs []ref
	kubeletSeen := false
	for _, p := range procs {
		for _, hc := range p.Components {
			root := filepath.Join(r.cfg.ProcDir, strconv.Itoa(int(p.Pid)), "root")
			dir := ""
			resolve := func(v string) string {
				if filepath.IsAbs(v) {
					return filepath.Clean(v)
				}
				if dir == "" {
					if dir = cwd(p.Pid); dir == "" {
						dir = "/"
					}
				}
				return filepath.Join(dir, v)
			}
			use := func(flag string) *v1.CertificateUse {
				return &v1.CertificateUse{Component: hc.Component, Implementation: hc.Implementation, Pid: p.Pid, Flag: flag}
			}
			certDir := ""
			for _, f := range hc.Flags {
				if f.Redacted {
					continue
				}
				kind := flagKind(f.Name)
				for _, v := range f.Values {
					if v == "" || v == "true" {
						continue
					}
					switch kind {
					case flagCert:
						for _, one := range strings.Split(v, ",") {
							if one != "" {
								refs = append(refs, ref{path: resolve(one), root: root, use: use(f.Name)})
							}
						}
					case flagKubeconfig:
						refs = append(refs, ref{path: resolve(v), root: root, kubeconfig: true, use: use(f.Name)})
					case flagCertDir:
						certDir = resolve(v)
					}
				}
			}
			if hc.Component == v1.ComponentKubelet && hc.Implementation == "kubelet" && !kubeletSeen {
				kubeletSeen = true
				if certDir == "" {
					certDir = DefaultKubeletPKI
				}
				refs = append(refs, r.kubeletConfigRefs(kubelet, root, use)...)
				refs = append(refs, r.certDirRefs(certDir, root, use("cert-dir"))...)
			}
		}
	}
	refs = append(refs, r.kubeadmRefs()...)
	return r.readAll(refs)
}

// Kinds of flags.
const (
	flagOther = iota
	flagCert
	flagKubeconfig
	flagCertDir
)

// flagKind says whether a flag names a certificate file, a kubeconfig or a
// certificate directory, from the shape of its name: Kubernetes, etcd and
// the distributions built on them name these flags alike (tls-cert-file,
// client-ca-file, kubelet-client-certificate, kubelet-certificate-authority,
// etcd-certfile, etcd-cafile, cert-file, peer-trusted-ca-file,
// requestheader-client-ca-file, cluster-signing-cert-file, root-ca-file,
// oidc-ca-file, …). A flag whose name speaks of a key is never one: no file is
// opened only to read a key.
func flagKind(name string) int {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "key"):
		return flagOther
	case n == "kubeconfig" || strings.HasSuffix(n, "-kubeconfig"):
		return flagKubeconfig
	case n == "cert-dir" || strings.HasSuffix(n, "-cert-dir"):
		return flagCertDir
	case strings.HasSuffix(n, "cert-file"), strings.HasSuffix(n, "certfile"),
		strings.HasSuffix(n, "ca-file"), strings.HasSuffix(n, "cafile"),
		strings.HasSuffix(n, "-certificate"), strings.HasSuffix(n, "certificate-authority"),
		strings.HasSuffix(n, "ca-cert"), strings.HasSuffix(n, "ca-bundle"):
		return flagCert
	}
	return flagOther
}

// kubeletCertConfig is the part of KubeletConfiguration naming certificates.
type kubeletCertConfig struct {
	TLSCertFile    string `json:"tlsCertFile"`
	Authentication struct {
		X509 struct {
			ClientCAFile string `json:"clientCAFile"`
		} `json:"x509"`
	} `json:"authentication"`
}

func (r *Reader) kubeletConfigRefs(kubelet *v1.KubeletInfo, root string, use func(string) *v1.CertificateUse) []ref {
	if kubelet.GetConfigPath() == "" {
		return nil
	}
	data, err := r.read(filepath.Join(r.cfg.HostRoot, kubelet.ConfigPath))
	if err != nil {
		// The kubelet info already says why its config is unreadable.
		return nil
	}
	var c kubeletCertConfig
	if err := yamlUnmarshal(data, &c); err != nil {
		return nil
	}
	dir := filepath.Dir(kubelet.ConfigPath)
	var refs []ref
	for field, v := range map[string]string{"tlsCertFile": c.TLSCertFile, "authentication.x509.clientCAFile": c.Authentication.X509.ClientCAFile} {
		if v == "" {
			continue
		}
		if !filepath.IsAbs(v) {
			v = filepath.Join(dir, v)
		}
		refs = append(refs, ref{path: filepath.Clean(v), root: root, use: use(field)})
	}
	return refs
}

// certDirRefs names the kubelet's own certificates in its certificate
// directory: the rotated client and serving certificates (whose -current.pem
// links hold certificate and key together) and the self-signed serving
// certificate it makes when given none.
func (r *Reader) certDirRefs(dir, root string, use *v1.CertificateUse) []ref {
	var refs []ref
	for _, name := range []string{"kubelet-client-current.pem", "kubelet-server-current.pem", "kubelet.crt"} {
		refs = append(refs, ref{path: filepath.Join(dir, name), root: root, use: use})
	}
	return refs
}

// kubeadmRefs names what kubeadm keeps in /etc/kubernetes, when it is there:
// the certificates of /etc/kubernetes/pki (and pki/etcd) and its kubeconfigs.
func (r *Reader) kubeadmRefs() []ref {
	var refs []ref
	use := &v1.CertificateUse{Flag: "kubeadm"}
	for _, dir := range []string{KubeadmPKIDir, KubeadmPKIDir + "/etcd"} {
		entries, err := os.ReadDir(filepath.Join(r.cfg.HostRoot, dir))
		if err != nil {
			continue
		}
		n := 0
		for _, e := range entries {
			// Certificates only: kubeadm names keys .key and the service
			// account key pair sa.key and sa.pub, which are never opened.
			if e.Type().IsDir() || !strings.HasSuffix(e.Name(), ".crt") {
				continue
			}
			if n++; n > maxDirFiles {
				break
			}
			refs = append(refs, ref{path: filepath.Join(dir, e.Name()), use: use})
		}
	}
	for _, name := range kubeadmKubeconfigs {
		p := filepath.Join(KubeadmDir, name)
		if _, err := os.Lstat(filepath.Join(r.cfg.HostRoot, p)); err == nil {
			refs = append(refs, ref{path: p, kubeconfig: true, use: use})
		}
	}
	return refs
}

// certKey identifies one reported certificate.
type certKey struct {
	path, field string
	index       int32
}

// readAll reads every named file once and returns the certificates, with their
// uses merged.
func (r *Reader) readAll(refs []ref) []*v1.Certificate {
	byKey := map[certKey]*v1.Certificate{}
	var cas []*x509.Certificate
	parsed := map[*v1.Certificate]*x509.Certificate{}
	add := func(k certKey, c *x509.Certificate, errText string, u *v1.CertificateUse) {
		out := byKey[k]
		if out == nil {
			if len(byKey) >= MaxCertificates {
				return
			}
			out = describe(k, c, errText)
			byKey[k] = out
			if c != nil {
				parsed[out] = c
				if c.IsCA {
					cas = append(cas, c)
				}
			}
		}
		for _, have := range out.Uses {
			if have.Component == u.Component && have.Pid == u.Pid && have.Flag == u.Flag {
				return
			}
		}
		out.Uses = append(out.Uses, u)
	}
	r.seen = map[string]bool{}
	for _, rf := range refs {
		if rf.kubeconfig {
			r.readKubeconfig(rf, add)
			continue
		}
		f, _ := r.file(rf.root, rf.path, false)
		if f.err != "" {
			add(certKey{path: rf.path}, nil, f.err, rf.use)
			continue
		}
		for i, c := range f.certs {
			add(certKey{path: rf.path, index: int32(i)}, c, "", rf.use)
		}
	}
	// Forget files no longer named.
	for k := range r.cache {
		if !r.seen[k] {
			delete(r.cache, k)
		}
	}
	out := make([]*v1.Certificate, 0, len(byKey))
	for _, c := range byKey {
		if x := parsed[c]; x != nil {
			c.IssuerOnNode = signedByOneOf(x, cas)
		}
		slices.SortFunc(c.Uses, func(a, b *v1.CertificateUse) int {
			if n := strings.Compare(a.Component, b.Component); n != 0 {
				return n
			}
			if a.Pid != b.Pid {
				return int(a.Pid - b.Pid)
			}
			return strings.Compare(a.Flag, b.Flag)
		})
		// Names in a certificate and error texts are free text from the
		// node: they go where argv goes.
		for _, f := range []*string{&c.Path, &c.Field, &c.Subject, &c.Issuer, &c.Error} {
			*f, _ = redact.Text(*f)
		}
		for i := range c.DnsNames {
			c.DnsNames[i], _ = redact.Text(c.DnsNames[i])
		}
		safetext.Message(c)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *v1.Certificate) int {
		if n := strings.Compare(a.Path, b.Path); n != 0 {
			return n
		}
		if n := strings.Compare(a.Field, b.Field); n != 0 {
			return n
		}
		return int(a.Index - b.Index)
	})
	return out
}

// file returns a certificate file's parse, read through root first (the
// process's own view) and then under the host root.
func (r *Reader) file(root, path string, kubeconfig bool) (cachedFile, string) {
	var tried []string
	for _, full := range candidates(r.cfg.HostRoot, root, path) {
		f, err := r.load(full, kubeconfig)
		if err == nil {
			return f, full
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			tried = append(tried, pe.Err.Error())
		} else {
			tried = append(tried, strings.ReplaceAll(err.Error(), full, path))
		}
	}
	return cachedFile{err: fileError(path, tried)}, ""
}

func candidates(hostRoot, root, path string) []string {
	var c []string
	if root != "" {
		c = append(c, filepath.Join(root, path))
	}
	return append(c, filepath.Join(hostRoot, path))
}

// fileError says why a file could not be read, naming it as the node does.
func fileError(path string, tried []string) string {
	if len(tried) == 0 {
		return path + ": not found"
	}
	return path + ": " + tried[len(tried)-1]
}

// stamp identifies a file's contents without reading them.
func stamp(fi os.FileInfo) string {
	s := fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s += fmt.Sprintf("/%d/%d", st.Dev, st.Ino)
	}
	return s
}

// load reads and parses one file, or returns what the cache holds for it
// when the file has not changed.
func (r *Reader) load(full string, kubeconfig bool) (cachedFile, error) {
	fi, err := os.Stat(full)
	if err != nil {
		return cachedFile{}, err
	}
	if !fi.Mode().IsRegular() {
		return cachedFile{}, fmt.Errorf("%s is not a regular file", full)
	}
	if fi.Size() > MaxFileBytes {
		return cachedFile{}, fmt.Errorf("%s is %d bytes, over the %d-byte limit for a certificate file", full, fi.Size(), MaxFileBytes)
	}
	r.seen[full] = true
	st := stamp(fi)
	if c, ok := r.cache[full]; ok && c.stamp == st && c.kubeconfig == kubeconfig {
		return c, nil
	}
	data, err := r.read(full)
	if err != nil {
		return cachedFile{}, err
	}
	defer clear(data)
	c := cachedFile{stamp: st, kubeconfig: kubeconfig}
	if kubeconfig {
		k, err := parseKubeconfig(data)
		if err != nil {
			c.err = err.Error()
		}
		c.kube = k
	} else {
		certs, err := ParsePEM(data)
		if err != nil {
			c.err = err.Error()
		}
		c.certs = certs
	}
	r.cache[full] = c
	return c, nil
}

// ParsePEM returns the certificates of a PEM file. Only CERTIFICATE blocks are
// decoded: any other block (a private key beside the certificate) is passed
// over without being decoded. A file with no certificate is an error.
func ParsePEM(data []byte) ([]*x509.Certificate, error) {
	const begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
	var out []*x509.Certificate
	rest := data
	for {
		i := bytes.Index(rest, []byte(begin))
		if i < 0 {
			break
		}
		j := bytes.Index(rest[i:], []byte(end))
		if j < 0 {
			return out, errors.New("a CERTIFICATE block has no END line")
		}
		block, _ := pem.Decode(rest[i : i+j+len(end)])
		rest = rest[i+j+len(end):]
		if block == nil {
			return out, errors.New("a CERTIFICATE block is not valid PEM")
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return out, fmt.Errorf("parsing certificate %d: %w", len(out), err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE block")
	}
	return out, nil
}

// describe turns a parsed certificate into the API's record.
func describe(k certKey, c *x509.Certificate, errText string) *v1.Certificate {
	out := &v1.Certificate{Path: k.path, Field: k.field, Index: k.index, Error: errText}
	if c == nil {
		return out
	}
	sum := sha256.Sum256(c.Raw)
	out.Subject = c.Subject.String()
	out.Issuer = c.Issuer.String()
	out.DnsNames = append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out.IpAddresses = append(out.IpAddresses, ip.String())
	}
	if c.SerialNumber != nil {
		out.Serial = c.SerialNumber.Text(16)
	}
	out.NotBefore = timestamppb.New(c.NotBefore.UTC())
	out.NotAfter = timestamppb.New(c.NotAfter.UTC())
	out.IsCa = c.BasicConstraintsValid && c.IsCA
	out.SelfSigned = bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
	out.Sha256 = hex.EncodeToString(sum[:])
	return out
}

// signedByOneOf reports whether one of the CA certificates signed c.
func signedByOneOf(c *x509.Certificate, cas []*x509.Certificate) bool {
	for _, ca := range cas {
		if bytes.Equal(c.RawIssuer, ca.RawSubject) && c.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}
