// Package redact removes secrets from command lines and free text before they
// leave a node, and again where the aggregator takes them in.
//
// It works from the shapes secrets take, not from a list of examples:
//
//   - a flag whose name means a credential has its value replaced, whichever
//     way it is written (--a=b, --a b, -a=b, -a b), even when the value starts
//     with a dash; NAME=value words likewise (see [IsSecretFlag]);
//   - credentials inside any value or word: URL userinfo (user:password@ and a
//     username-only token@), query parameters named like a credential,
//     Authorization headers with any scheme, X-Api-Key-style headers, Go MySQL
//     DSNs, bearer tokens, JSON Web Tokens and PEM private-key blocks (see [Text]);
//   - command lines inside one string: a process that rewrote its title into
//     argv[0], `sh -c "…"` scripts, and any other argument with spaces is
//     tokenised with a real shell lexer and redacted word by word.
//
// Paths to key and certificate files stay visible: a flag that names a file,
// path or directory is not a secret itself. Nothing here indexes one string
// with offsets found in a transformed copy of it; matching is ASCII
// case-insensitive on the original bytes.
package redact

import (
	"strings"
)

// Marker replaces every redacted value.
const Marker = "<redacted>"

// Argv returns a copy of argv with every secret replaced by Marker. The length
// of argv is kept. argv[0] may be a whole rewritten command line.
func Argv(argv []string) []string {
	out := make([]string, len(argv))
	copy(out, argv)
	words := make([]word, len(argv))
	for i, a := range argv {
		words[i] = word{val: a}
	}
	for i, r := range redactWords(words, 0) {
		if r.changed {
			out[i] = r.val
		}
	}
	return out
}

// Lines redacts a list of words that carry no program name first, such as a
// container's args or the words of KUBELET_KUBEADM_ARGS.
func Lines(words []string) []string { return Argv(append([]string{""}, words...))[1:] }

// Container redacts a container's command and args as the one command line
// they make: a flag may sit at the end of command and its value in args.
func Container(command, args []string) ([]string, []string) {
	all := make([]string, 0, 1+len(command)+len(args))
	if len(command) == 0 {
		all = append(all, "")
	}
	all = append(all, command...)
	all = append(all, args...)
	red := Argv(all)
	if len(command) == 0 {
		red = red[1:]
	}
	return red[:len(command):len(command)], red[len(command):]
}

// Value redacts one flag value given the flag's name (without dashes): the
// whole value when the flag is secret, else any credential inside it.
func Value(name, value string) (string, bool) {
	v, changed := flagValue(name, value, 0)
	return v, changed
}

// Text redacts credentials embedded in free text: a string that may be a
// whole command line, a URL, a header or a DSN.
func Text(s string) (string, bool) {
	out := freeText(s, 0)
	return out, out != s
}

// word is one word of a command line. A dynamic word (a shell word with an
// expansion in it) has only its literal prefix in val.
type word struct {
	val     string
	dynamic bool
}

// result is what redaction made of one word.
type result struct {
	val     string
	changed bool
}

// maxDepth bounds how often a value is re-read as a command line of its own.
const maxDepth = 4

// redactWords applies the command-line rules to words; words[0] is the program.
func redactWords(words []word, depth int) []result {
	out := make([]result, len(words))
	if len(words) == 0 {
		return out
	}
	prog := programName(words[0].val)
	pem := false // inside a PEM private key that began in an earlier word
	for i := 0; i < len(words); i++ {
		w := words[i]
		if pem {
			if end := pemEnd(w.val); end >= 0 {
				pem = false
				out[i] = result{Marker + w.val[end:], true}
			} else {
				out[i] = result{Marker, w.val != Marker}
			}
			continue
		}
		if hasPEMBegin(w.val) {
			v, open := pemBlocks(w.val)
			pem = open
			v = freeText(v, depth)
			out[i] = result{v, v != w.val}
			continue
		}
		if i == 0 {
			v := freeText(w.val, depth)
			out[i] = result{v, v != w.val}
			continue
		}
		a := w.val
		if isFlagWord(a) {
			dashes := len(a) - len(strings.TrimLeft(a, "-"))
			name := a[dashes:]
			if eq := strings.IndexByte(name, '='); eq > 0 {
				if w.dynamic && isSecretValueFlag(prog, name[:eq]) {
					out[i] = result{a[:dashes+eq+1] + Marker, true}
					continue
				}
				v, ch := flagValue(name[:eq], name[eq+1:], depth)
				if w.dynamic {
					continue
				}
				if ch {
					out[i] = result{a[:dashes+eq+1] + v, true}
				}
				continue
			}
			if w.dynamic {
				continue
			}
			if v, ok := attachedValue(prog, a); ok {
				out[i] = result{v, v != a}
				continue
			}
			if i+1 < len(words) && takesValue(prog, name) && valueWord(words[i+1].val) {
				next := words[i+1]
				if next.val != Marker {
					v := Marker
					switch {
					case isUserFlag(prog, name):
						v = userValue(next.val)
					case keyLike(name) && !next.dynamic && looksLikePath(next.val):
						v = next.val
					}
					if next.dynamic || v != next.val {
						out[i+1] = result{v, true}
					}
				}
				i++
				continue
			}
			v := freeText(a, depth)
			out[i] = result{v, v != a}
			continue
		}
		if w.dynamic {
			continue
		}
		if eq := strings.IndexByte(a, '='); eq > 0 && isEnvName(a[:eq]) {
			v, ch := flagValue(a[:eq], a[eq+1:], depth)
			if ch {
				out[i] = result{a[:eq+1] + v, true}
			}
			continue
		}
		v := freeText(a, depth)
		out[i] = result{v, v != a}
	}
	return out
}

// flagValue redacts the value of flag name.
func flagValue(name, value string, depth int) (string, bool) {
	if value == "" || value == Marker {
		return value, false
	}
	if IsSecretFlag(name) {
		if isBool(value) || (keyLike(name) && looksLikePath(value)) {
			return value, false
		}
		return Marker, true
	}
	if isUserFlag("", name) {
		v := userValue(value)
		return v, v != value
	}
	v := freeText(value, depth)
	return v, v != value
}

func isBool(v string) bool {
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "on", "off", "0", "1":
		return true
	}
	return false
}

// looksLikePath reports whether a value names a file rather than being key
// material: key and certificate file paths stay visible.
func looksLikePath(v string) bool {
	if strings.ContainsAny(v, " \t\n") {
		return false
	}
	if strings.HasPrefix(v, "/") || strings.HasPrefix(v, "./") || strings.HasPrefix(v, "../") || strings.HasPrefix(v, "~/") {
		return true
	}
	for _, ext := range []string{".key", ".pem", ".crt", ".cert", ".der", ".p12", ".pfx", ".pub", ".jks"} {
		if hasSuffixFold(v, ext) {
			return true
		}
	}
	return false
}

// isFlagWord reports whether a word is a flag: a dash and a name.
func isFlagWord(a string) bool {
	if len(a) < 2 || a[0] != '-' || a == "--" {
		return false
	}
	name := strings.TrimLeft(a, "-")
	if name == "" || name[0] == '=' {
		return false
	}
	// Negative numbers are values, not flags.
	return !isNumber(name)
}

func isNumber(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return s != ""
}

// valueWord reports whether the word after a secret flag is its value. As
// Go's flag and pflag packages and getopt read a flag that takes a value,
// the next word is the value whatever it starts with (a password may start
// with dashes); only "--" ends the flags.
func valueWord(next string) bool { return next != "--" }

// isEnvName reports whether s is an environment variable's or a setting's
// name (NAME=value words, as env(1) and DSN key=value lists take them).
func isEnvName(s string) bool {
	if s == "" || (!isAlpha(s[0]) && s[0] != '_') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// programName is the base name of a command line's program, lower-cased.
func programName(argv0 string) string {
	p := argv0
	if i := strings.IndexAny(p, " \t"); i >= 0 {
		p = p[:i]
	}
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	return lowerASCII(p)
}

// takesValue reports whether the word after flag name is a secret value.
func takesValue(prog, name string) bool {
	if isBoolFlag(name) {
		return false
	}
	return isSecretValueFlag(prog, name) || isUserFlag(prog, name)
}

func isSecretValueFlag(prog, name string) bool {
	if IsSecretFlag(name) {
		return true
	}
	for _, f := range programSecretFlags[prog] {
		if name == f {
			return true
		}
	}
	return false
}

// programSecretFlags are short flags that carry a secret for one program.
var programSecretFlags = map[string][]string{
	"sshpass":    {"p"},
	"mysql":      {"p"},
	"mysqldump":  {"p"},
	"mysqladmin": {"p"},
	"mariadb":    {"p"},
	"redis-cli":  {"a"},
	"docker":     {"p"},
	"podman":     {"p"},
	"nerdctl":    {"p"},
	"buildah":    {"p"},
	"skopeo":     {"p"},
	"helm":       {"p"},
	"oras":       {"p"},
	"crane":      {"p"},
}

// attachedValue redacts a short flag with its value attached (-pSECRET), as
// the programs in programSecretFlags accept it.
func attachedValue(prog, a string) (string, bool) {
	if len(a) < 3 || a[1] == '-' {
		return "", false
	}
	for _, f := range programSecretFlags[prog] {
		if strings.HasPrefix(a[1:], f) && len(a) > 1+len(f) {
			return a[:1+len(f)] + Marker, true
		}
	}
	return "", false
}

// isUserFlag reports whether a flag takes user:password (curl -u, --user,
// --proxy-user, wget --http-user is a name only).
func isUserFlag(prog, name string) bool {
	switch name {
	case "user", "proxy-user", "U":
		return true
	case "u":
		// docker -u uid:gid names a user and a group.
		return prog != "docker" && prog != "podman" && prog != "nerdctl"
	}
	return false
}

// userValue redacts the password of user:password and keeps a bare user.
func userValue(v string) string {
	if v == Marker {
		return v
	}
	if c := strings.IndexByte(v, ':'); c >= 0 {
		if v[c+1:] == Marker || c+1 == len(v) {
			return v
		}
		return v[:c+1] + Marker
	}
	return v
}

// knownBoolFlags are flags whose names mean a credential but that take no
// value: the word after them is never theirs.
var knownBoolFlags = map[string]bool{
	"use-service-account-credentials":             true,
	"enable-bootstrap-token-auth":                 true,
	"anonymous-auth":                              true,
	"insecure-skip-tls-verify":                    true,
	"disable-token-auth":                          true,
	"password-stdin":                              true,
	"token-stdin":                                 true,
	"rotate-server-certificates":                  true,
	"rotate-certificates":                         true,
	"skip-token-ca-verification":                  true,
	"discovery-token-unsafe-skip-ca-verification": true,
	"service-account-lookup":                      true,
	"enable-token-auth":                           true,
	"no-password":                                 true,
	"ask-pass":                                    true,
	"askpass":                                     true,
}

func isBoolFlag(name string) bool { return knownBoolFlags[lowerASCII(name)] }
