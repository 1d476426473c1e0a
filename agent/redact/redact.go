// Package redact removes secrets from command lines before they leave a node.
//
// A flag whose name means a secret (token, password, secret, credential,
// api-key and the like) has its value replaced, whichever way it is written
// (--a=b, --a b, -a=b). A password in a URL (scheme://user:password@host) is
// replaced, and so is a bearer token. Paths to key and certificate files are kept:
// flags that name a file, path or directory are not secrets themselves.
package redact

import (
	"strings"
)

// Marker replaces every redacted value.
const Marker = "<redacted>"

// secretWords are the parts of a flag name that mean its value is a secret.
var secretWords = []string{
	"token", "password", "passwd", "passphrase", "pwd", "secret", "credential",
	"apikey", "api-key", "api_key", "accesskey", "access-key", "access_key",
	"privatekey", "private-key", "private_key", "signing-key", "encryption-key",
	"auth-key", "session-key", "bearer", "psk", "sas-key", "client-key-data",
	"client-certificate-data", "license-key",
}

// notSecretSuffixes end flag names that name where a secret is, or a property
// of one, rather than the secret itself.
var notSecretSuffixes = []string{
	"file", "files", "path", "dir", "directory", "ttl", "expiration", "lifetime",
	"audiences", "audience", "name", "namespace", "ref", "mount", "period", "timeout",
	"auth", "enabled", "enable", "webhook", "config", "version", "url", "cache-ttl",
}

// IsSecretFlag reports whether the value of a flag with this name (without
// leading dashes) must be redacted.
func IsSecretFlag(name string) bool {
	n := strings.ToLower(strings.TrimLeft(name, "-"))
	hit := false
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			hit = true
			break
		}
	}
	if !hit {
		return false
	}
	for _, s := range notSecretSuffixes {
		if n == s || strings.HasSuffix(n, "-"+s) || strings.HasSuffix(n, "_"+s) || strings.HasSuffix(n, "."+s) {
			return false
		}
	}
	return true
}

// Value redacts one flag value given the flag's name: the whole value when the
// flag is secret (booleans excepted), else any URL password or bearer token in it.
func Value(name, value string) (string, bool) {
	if IsSecretFlag(name) && value != "" && value != "true" && value != "false" && value != Marker {
		return Marker, true
	}
	return Inline(value)
}

// Inline redacts secrets embedded in free text: URL passwords
// (scheme://user:password@host) and bearer tokens.
func Inline(s string) (string, bool) {
	changed := false
	if strings.Contains(s, "@") && strings.Contains(s, "://") {
		var r bool
		s, r = urlPasswords(s)
		changed = changed || r
	}
	if i := indexFold(s, "bearer "); i >= 0 {
		end := i + len("bearer ")
		rest := s[end:]
		j := strings.IndexAny(rest, " \t,;\"'")
		if j < 0 {
			j = len(rest)
		}
		if j > 0 && rest[:j] != Marker {
			s = s[:end] + Marker + rest[j:]
			changed = true
		}
	}
	return s, changed
}

func indexFold(s, sub string) int {
	return strings.Index(strings.ToLower(s), sub)
}

// urlPasswords replaces the password of every "scheme://user:password@" in s.
func urlPasswords(s string) (string, bool) {
	var b strings.Builder
	changed := false
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		// The authority ends at the first '/', '?', '#', ',' or space.
		end := strings.IndexAny(s, "/?#, \t")
		if end < 0 {
			end = len(s)
		}
		auth := s[:end]
		at := strings.LastIndexByte(auth, '@')
		if at >= 0 {
			userinfo := auth[:at]
			if c := strings.IndexByte(userinfo, ':'); c >= 0 && userinfo[c+1:] != Marker {
				b.WriteString(userinfo[:c+1])
				b.WriteString(Marker)
				b.WriteString(auth[at:])
				s = s[end:]
				changed = true
				continue
			}
		}
		b.WriteString(auth)
		s = s[end:]
	}
	return b.String(), changed
}

// Argv returns a copy of argv with every secret replaced by Marker. argv[0]
// (the program) is only checked for inline secrets. It handles --a=b, --a b,
// -a=b, -a b and NAME=value environment-style words.
func Argv(argv []string) []string {
	out := make([]string, len(argv))
	copy(out, argv)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if i == 0 {
			out[i], _ = Inline(a)
			continue
		}
		switch {
		case strings.HasPrefix(a, "-") && len(a) > 1 && a != "--":
			name := strings.TrimLeft(a, "-")
			if eq := strings.IndexByte(name, '='); eq >= 0 {
				v, _ := Value(name[:eq], name[eq+1:])
				out[i] = a[:len(a)-len(name)] + name[:eq+1] + v
				continue
			}
			if IsSecretFlag(name) && i+1 < len(out) && !strings.HasPrefix(out[i+1], "-") {
				if v, _ := Value(name, out[i+1]); v == Marker {
					out[i+1] = Marker
					i++
					continue
				}
			}
			out[i], _ = Inline(a)
		case strings.IndexByte(a, '=') > 0 && !strings.Contains(a[:strings.IndexByte(a, '=')], "/"):
			eq := strings.IndexByte(a, '=')
			v, _ := Value(a[:eq], a[eq+1:])
			out[i] = a[:eq+1] + v
		default:
			out[i], _ = Inline(a)
		}
	}
	return out
}

// Lines redacts every word of a shell-like line list (e.g. the value of
// KUBELET_KUBEADM_ARGS) by splitting it on spaces.
func Lines(words []string) []string { return Argv(append([]string{""}, words...))[1:] }
