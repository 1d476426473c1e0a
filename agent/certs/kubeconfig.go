package certs

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// kubeconfig is the part of a kubeconfig that holds or names certificates.
// It has no field for a key, a token or a password: those are never decoded.
type kubeconfig struct {
	Kind     string `json:"kind"`
	Clusters []struct {
		Name    string `json:"name"`
		Cluster struct {
			CertificateAuthority     string `json:"certificate-authority"`
			CertificateAuthorityData []byte `json:"certificate-authority-data"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			ClientCertificate     string `json:"client-certificate"`
			ClientCertificateData []byte `json:"client-certificate-data"`
		} `json:"user"`
	} `json:"users"`
}

// kubeconfigEntry is one certificate field of a kubeconfig.
type kubeconfigEntry struct {
	field string // e.g. "users[admin].client-certificate-data"
	certs []*x509.Certificate
	file  string // a named file, as written (relative to the kubeconfig's directory)
	err   string
}

type kubeconfigRefs struct{ entries []kubeconfigEntry }

// secretKeys are the kubeconfig keys whose lines are cut out before parsing.
var secretKeys = []string{"client-key-data", "client-key", "token", "token-file", "password"}

// withoutSecrets returns a copy of a YAML kubeconfig without the lines of
// its keys, tokens and passwords (and any lines that continue them), so that
// they never reach the parser.
func withoutSecrets(data []byte) []byte {
	out := make([]byte, 0, len(data))
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), MaxFileBytes)
	skipIndent := -1
	for sc.Scan() {
		line := sc.Bytes()
		trimmed := bytes.TrimLeft(line, " \t")
		indent := len(line) - len(trimmed)
		if skipIndent >= 0 {
			if len(bytes.TrimSpace(line)) == 0 || indent > skipIndent {
				continue
			}
			skipIndent = -1
		}
		key := bytes.TrimPrefix(trimmed, []byte("- "))
		if isSecretLine(key) {
			skipIndent = indent
			if bytes.HasPrefix(trimmed, []byte("- ")) {
				// The secret opens a list item: the item stays, and its
				// other keys sit in the key's column, two in.
				out = append(out, line[:indent]...)
				out = append(out, "-\n"...)
				skipIndent = indent + 2
			}
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out
}

func isSecretLine(key []byte) bool {
	for _, k := range secretKeys {
		if bytes.HasPrefix(key, []byte(k)) {
			rest := bytes.TrimLeft(key[len(k):], " \t")
			if len(rest) > 0 && rest[0] == ':' {
				return true
			}
		}
		if bytes.HasPrefix(key, []byte(`"`+k+`"`)) {
			return true
		}
	}
	return false
}

func yamlUnmarshal(data []byte, v any) error { return yaml.Unmarshal(data, v) }

// parseKubeconfig reads the certificates a kubeconfig embeds and the
// certificate files it names.
func parseKubeconfig(data []byte) (*kubeconfigRefs, error) {
	clean := withoutSecrets(data)
	defer clear(clean)
	var k kubeconfig
	if err := yaml.Unmarshal(clean, &k); err != nil {
		return nil, fmt.Errorf("not a kubeconfig: %s", firstLine(err.Error()))
	}
	if k.Kind != "" && k.Kind != "Config" {
		return nil, fmt.Errorf("not a kubeconfig: kind is %q", k.Kind)
	}
	refs := &kubeconfigRefs{}
	entry := func(field string, data []byte, file string) {
		e := kubeconfigEntry{field: field, file: file}
		if len(data) > 0 {
			certs, err := ParsePEM(data)
			e.certs = certs
			if err != nil {
				e.err = err.Error()
			}
		}
		refs.entries = append(refs.entries, e)
	}
	for _, c := range k.Clusters {
		if len(c.Cluster.CertificateAuthorityData) > 0 {
			entry(fmt.Sprintf("clusters[%s].certificate-authority-data", c.Name), c.Cluster.CertificateAuthorityData, "")
		}
		if c.Cluster.CertificateAuthority != "" {
			entry(fmt.Sprintf("clusters[%s].certificate-authority", c.Name), nil, c.Cluster.CertificateAuthority)
		}
	}
	for _, u := range k.Users {
		if len(u.User.ClientCertificateData) > 0 {
			entry(fmt.Sprintf("users[%s].client-certificate-data", u.Name), u.User.ClientCertificateData, "")
		}
		if u.User.ClientCertificate != "" {
			entry(fmt.Sprintf("users[%s].client-certificate", u.Name), nil, u.User.ClientCertificate)
		}
	}
	return refs, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// readKubeconfig reports what one kubeconfig holds and names.
func (r *Reader) readKubeconfig(rf ref, add func(certKey, *x509.Certificate, string, *v1.CertificateUse)) {
	f, _ := r.file(rf.root, rf.path, true)
	if f.kube == nil {
		if f.err == "" {
			f.err = errors.New("unreadable kubeconfig").Error()
		}
		add(certKey{path: rf.path}, nil, f.err, rf.use)
		return
	}
	for _, e := range f.kube.entries {
		if e.file == "" {
			if e.err != "" && len(e.certs) == 0 {
				add(certKey{path: rf.path, field: e.field}, nil, e.err, rf.use)
			}
			for i, c := range e.certs {
				add(certKey{path: rf.path, field: e.field, index: int32(i)}, c, "", rf.use)
			}
			continue
		}
		p := e.file
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(rf.path), p)
		}
		p = filepath.Clean(p)
		cf, _ := r.file(rf.root, p, false)
		if cf.err != "" {
			add(certKey{path: p}, nil, cf.err, rf.use)
			continue
		}
		for i, c := range cf.certs {
			add(certKey{path: p, index: int32(i)}, c, "", rf.use)
		}
	}
}
