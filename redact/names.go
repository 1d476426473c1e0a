package redact

import (
	"strings"
	"sync"
	"sync/atomic"
)

// A flag's, variable's, parameter's or header's name is split into words
// (at dashes, underscores, dots and lower-to-upper case changes) and judged
// by them: "--etcd-password", "DB_PASSWORD", "secretAccessKey" and
// "X-Api-Key" all name a credential; "--token-auth-file" names a file.

// secretWords name a credential wherever they stand in a name.
var secretWords = map[string]bool{
	"token": true, "tokens": true, "password": true, "passwd": true, "passphrase": true, "pwd": true, "pass": true,
	"secret": true, "secrets": true, "credential": true, "credentials": true, "creds": true, "cred": true,
	"apikey": true, "psk": true, "bearer": true, "privatekey": true, "accesskey": true, "secretkey": true,
	"signature": true, "sig": true, "cookie": true, "sessionid": true,
	"passin": true, "passout": true, "sas": true, "accesstoken": true, "refreshtoken": true, "authtoken": true, "clientsecret": true,
}

// keyQualifiers before "key" make it a credential: api-key, access-key,
// storage-account-key, private-key, master-key.
var keyQualifiers = map[string]bool{
	"api": true, "access": true, "private": true, "signing": true, "encryption": true, "auth": true,
	"session": true, "sas": true, "license": true, "account": true, "master": true, "shared": true,
	"secret": true, "storage": true, "subscription": true, "service": true, "app": true, "admin": true,
	"hmac": true, "aes": true, "root": true, "write": true, "read": true, "ingest": true, "client": true,
	"enrollment": true, "join": true, "cluster": true, "bootstrap": true, "pre": true, "sign": true,
}

// notSecretLast end names that say where a credential is, or a property of
// one, rather than the credential itself.
var notSecretLast = map[string]bool{
	"file": true, "files": true, "path": true, "paths": true, "dir": true, "directory": true, "ttl": true,
	"expiration": true, "expiry": true, "lifetime": true, "audiences": true, "audience": true, "name": true,
	"names": true, "namespace": true, "ref": true, "mount": true, "period": true, "timeout": true,
	"enabled": true, "enable": true, "disabled": true, "disable": true, "webhook": true, "config": true,
	"version": true, "url": true, "uri": true, "endpoint": true, "mode": true, "type": true, "length": true,
	"size": true, "bits": true, "algorithm": true, "algorithms": true, "format": true,
	"interval": true, "rotation": true, "duration": true, "source": true, "env": true, "keyfile": true,
	"certfile": true, "cafile": true, "issuer": true, "header": true, "prefix": true, "lookup": true,
	"required": true, "retries": true, "cache": true, "store": true, "provider": true, "plugin": true,
	"policy": true, "location": true, "kind": true, "field": true, "count": true, "max": true, "min": true,
	"validity": true, "age": true, "scheme": true, "method": true, "kubeconfig": true, "auth-file": true, "hash": true,
}

// IsSecretFlag reports whether the value of a flag, variable or header with
// this name (leading dashes allowed) is a credential.
func IsSecretFlag(name string) bool {
	name = strings.TrimLeft(name, "-")
	if v, ok := secretNames.Load(name); ok {
		return v.(bool)
	}
	secret := mayNameSecret(name) && isSecretName(name)
	if secretNamesCount.Add(1) <= maxCachedNames {
		secretNames.Store(name, secret)
	}
	return secret
}

// secretNames caches IsSecretFlag: the same flag names come back on every
// node. It holds at most maxCachedNames names, so odd names cannot grow it.
var (
	secretNames      sync.Map
	secretNamesCount atomic.Int64
)

const maxCachedNames = 4096

// secretStems are in every name isSecretName can call secret (ASCII case
// aside); a name with none of them is not one, without further work.
var secretStems = []string{"tok", "pass", "pw", "secret", "cred", "key", "auth", "bearer", "psk", "sig", "cookie", "sas", "sessionid"}

func mayNameSecret(name string) bool {
	for _, st := range secretStems {
		if indexFold(name, st) >= 0 {
			return true
		}
	}
	return false
}

func isSecretName(name string) bool {
	words := nameWords(name)
	if len(words) == 0 {
		return false
	}
	last := words[len(words)-1]
	if notSecretLast[last] {
		return false
	}
	// A trailing "data" holds the thing inline (client-key-data).
	if last == "data" && len(words) > 1 {
		words = words[:len(words)-1]
	}
	joined := strings.Join(words, "")
	switch joined {
	case "auth", "basicauth", "httpauth", "proxyauth", "authkey", "key", "pass", "pw":
		return true
	}
	for i, w := range words {
		if secretWords[w] {
			return true
		}
		if w == "key" || w == "keys" {
			if i > 0 && keyQualifiers[words[i-1]] {
				return true
			}
			if i == len(words)-1 && len(words) > 1 && words[i-1] != "public" && words[i-1] != "ca" {
				// --x-key: a key of some kind; key files are kept by value.
				return true
			}
		}
		if w == "auth" && i == len(words)-1 {
			return true
		}
	}
	// Run-together names: DBPASSWORD, mysecrettoken, apiKey already split.
	for _, s := range []string{"password", "passwd", "token", "secret", "apikey", "credential", "privatekey", "accesskey"} {
		if strings.Contains(joined, s) {
			return true
		}
	}
	return false
}

// keyLike reports whether a secret flag names key material, whose value may
// be a file path instead (--key /etc/pki/x.key), rather than a password or token.
func keyLike(name string) bool {
	words := nameWords(strings.TrimLeft(name, "-"))
	if len(words) == 0 {
		return false
	}
	last := words[len(words)-1]
	return last == "key" || last == "keys" || last == "cert" || last == "certificate" || last == "privatekey"
}

// isSecretParam reports whether a URL query parameter carries a credential.
func isSecretParam(name string) bool {
	switch lowerASCII(name) {
	case "key", "sig", "signature", "code", "auth", "access_token", "token", "apikey", "api_key":
		return true
	}
	return IsSecretFlag(name)
}

// isSecretHeader reports whether an HTTP-style header carries a credential.
func isSecretHeader(name string) bool {
	switch lowerASCII(name) {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	return IsSecretFlag(name)
}

// nameWords splits a name into lower-case words.
func nameWords(name string) []string {
	var words []string
	start := -1
	flush := func(end int) {
		if start >= 0 && end > start {
			words = append(words, lowerASCII(name[start:end]))
		}
		start = -1
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case isAlpha(c) || isDigit(c):
			if start < 0 {
				start = i
			} else if isUpper(c) && i > 0 && isLower(name[i-1]) {
				// camelCase boundary: secretAccessKey.
				flush(i)
				start = i
			}
		default:
			flush(i)
		}
	}
	flush(len(name))
	return words
}

func isAlpha(c byte) bool { return isLower(c) || isUpper(c) }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lowerASCII lower-cases ASCII letters only, so byte offsets never move.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if isUpper(s[i]) {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if isUpper(b[j]) {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// hasPrefixFold reports whether s starts with prefix, ASCII case-insensitively.
// prefix must be lower-case ASCII.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if isUpper(c) {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && hasPrefixFold(s[len(s)-len(suffix):], suffix)
}

// indexFold returns the first index of sub (lower-case ASCII, not empty)
// in s, matched ASCII case-insensitively on s's own bytes, or -1.
func indexFold(s, sub string) int {
	first, upper := sub[0], sub[0]
	if isLower(first) {
		upper = first - ('a' - 'A')
	}
	for i := 0; i+len(sub) <= len(s); {
		j := strings.IndexByte(s[i:len(s)-len(sub)+1], first)
		if upper != first {
			if k := strings.IndexByte(s[i:len(s)-len(sub)+1], upper); k >= 0 && (j < 0 || k < j) {
				j = k
			}
		}
		if j < 0 {
			return -1
		}
		if hasPrefixFold(s[i+j:], sub) {
			return i + j
		}
		i += j + 1
	}
	return -1
}
