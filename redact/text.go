package redact

import (
	"hash/maphash"
	"sort"
	"strings"
	"sync"
)

// freeText redacts every credential shape in s. A string with spaces is also
// read as a command line of its own, up to maxDepth levels deep.
func freeText(s string, depth int) string {
	if s == "" {
		return s
	}
	if len(s) <= maxCachedText && strings.ContainsAny(s, " \t\n\r") {
		// Command lines in one string (rewritten titles, sh -c scripts)
		// cost a shell parse and repeat across processes and nodes.
		return lines.get(s, depth)
	}
	return scanText(s, depth)
}

// scanText is freeText without the cache.
func scanText(s string, depth int) string {
	// One pass over the bytes says which shapes can be present at all; most
	// words (paths, numbers, plain flags) hold none.
	var has [256]bool
	for i := 0; i < len(s); i++ {
		has[s[i]] = true
	}
	if has['-'] && strings.Contains(s, "-----BEGIN") {
		s, _ = pemBlocks(s)
	}
	if has[' '] || has['\t'] || has['\n'] || has['\r'] {
		if depth < maxDepth {
			s = shellLine(s, depth+1)
			s = fieldsLine(s, depth+1)
		}
	}
	if has['@'] {
		if has[':'] {
			s = urlUserinfo(s)
		}
		if has['('] {
			s = dsnUserinfo(s)
		}
	}
	if has['='] {
		s = queryParams(s)
	}
	if has['_'] || has['-'] || has['.'] || has['A'] {
		s = prefixedTokens(s)
	}
	if has[':'] {
		s = headers(s)
	}
	if has['b'] || has['B'] {
		s = bearer(s)
	}
	if has['e'] && has['y'] && has['J'] {
		s = jwts(s)
	}
	return s
}

// maxCachedText bounds the strings the line cache takes.
const maxCachedText = 4 << 10

// lines caches what freeText makes of strings with spaces, keyed by a
// seeded hash of the text (the text itself, which may hold a secret, is not
// kept). It holds at most maxCachedLines entries and starts afresh when full.
var lines = &lineCache{seed: maphash.MakeSeed()}

const maxCachedLines = 8192

type lineCache struct {
	seed maphash.Seed
	mu   sync.RWMutex
	m    map[lineKey]string
}

type lineKey struct {
	hash  uint64
	size  int
	depth int
}

func (c *lineCache) get(s string, depth int) string {
	k := lineKey{maphash.String(c.seed, s), len(s), depth}
	c.mu.RLock()
	out, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return out
	}
	out = scanText(s, depth)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedLines {
		c.m = make(map[lineKey]string, 256)
	}
	c.m[k] = out
	c.mu.Unlock()
	return out
}

// edit replaces s[start:end].
type edit struct {
	start, end int
	text       string
}

// apply makes the edits to s. Where edits overlap, the one that starts first
// (and, at the same start, the longer one) wins and the others are dropped:
// every edit removes what it covers, so nothing hidden by one can come back.
func apply(s string, edits []edit) string {
	if len(edits) == 0 {
		return s
	}
	sort.SliceStable(edits, func(i, j int) bool {
		if edits[i].start != edits[j].start {
			return edits[i].start < edits[j].start
		}
		return edits[i].end > edits[j].end
	})
	var b strings.Builder
	b.Grow(len(s))
	pos := 0
	for _, e := range edits {
		if e.start < pos || e.end > len(s) || e.start > e.end {
			continue
		}
		b.WriteString(s[pos:e.start])
		b.WriteString(e.text)
		pos = e.end
	}
	b.WriteString(s[pos:])
	return b.String()
}

// fieldsLine redacts s read as whitespace-separated words, each without one
// layer of surrounding quotes. It backs up the shell lexer, whose reading of
// operators (;, |, >) can split a value the way no program would see it.
func fieldsLine(s string, depth int) string {
	type field struct {
		start, end int
		q          string
	}
	var fields []field
	for i := 0; i < len(s); {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			break
		}
		j := i
		for j < len(s) && !isSpace(s[j]) {
			j++
		}
		fields = append(fields, field{start: i, end: j})
		i = j
	}
	words := make([]word, len(fields))
	for k, f := range fields {
		v := s[f.start:f.end]
		if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
			fields[k].q = v[:1]
			v = v[1 : len(v)-1]
		}
		words[k] = word{val: v}
	}
	var edits []edit
	for k, r := range redactWords(words, depth) {
		if r.changed {
			f := fields[k]
			edits = append(edits, edit{f.start, f.end, f.q + r.val + f.q})
		}
	}
	return apply(s, edits)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// pemBlocks replaces the body of every PEM private-key block in s. open is
// true when a block begins and does not end in s.
func pemBlocks(s string) (string, bool) {
	if !strings.Contains(s, "-----BEGIN") {
		return s, false
	}
	var edits []edit
	open := false
	for i := 0; i < len(s); {
		b := strings.Index(s[i:], "-----BEGIN")
		if b < 0 {
			break
		}
		b += i
		hdrEnd := strings.Index(s[b+len("-----BEGIN"):], "-----")
		var label string
		bodyStart := len(s)
		if hdrEnd >= 0 {
			label = s[b+len("-----BEGIN") : b+len("-----BEGIN")+hdrEnd]
			bodyStart = b + len("-----BEGIN") + hdrEnd + len("-----")
		} else {
			label = s[b+len("-----BEGIN"):]
		}
		if hdrEnd >= 0 && !privateLabel(label) {
			i = bodyStart
			continue
		}
		end := strings.Index(s[bodyStart:], "-----END")
		if end < 0 {
			if bodyStart < len(s) {
				edits = append(edits, edit{bodyStart, len(s), Marker})
			}
			open = true
			break
		}
		end += bodyStart
		if s[bodyStart:end] != Marker && strings.TrimSpace(s[bodyStart:end]) != Marker {
			edits = append(edits, edit{bodyStart, end, Marker})
		}
		i = end + len("-----END")
	}
	return apply(s, edits), open
}

// privateLabel reports whether a PEM label names secret material: anything
// but certificates, public keys and requests.
func privateLabel(label string) bool {
	l := strings.ToUpper(strings.TrimSpace(label))
	if strings.Contains(l, "PRIVATE") || strings.Contains(l, "SECRET") {
		return true
	}
	for _, pub := range []string{"CERTIFICATE", "PUBLIC KEY", "X509 CRL", "PKCS7", "DH PARAMETERS", "EC PARAMETERS", "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"} {
		if strings.Contains(l, pub) {
			return false
		}
	}
	return true
}

// hasPEMBegin reports whether a word opens a PEM block that is private or
// whose label continues in the next words.
func hasPEMBegin(w string) bool {
	i := strings.Index(w, "-----BEGIN")
	if i < 0 {
		return false
	}
	rest := w[i+len("-----BEGIN"):]
	if j := strings.Index(rest, "-----"); j >= 0 {
		return privateLabel(rest[:j]) || hasPEMBegin(rest[j+5:])
	}
	return true
}

// pemEnd returns where a word's text after a PEM block's "-----END" begins, or -1.
func pemEnd(w string) int {
	i := strings.Index(w, "-----END")
	if i < 0 {
		return -1
	}
	return i
}

// isURLScheme reports whether b is a URI scheme character.
func isSchemeChar(c byte) bool { return isAlpha(c) || isDigit(c) || c == '+' || c == '-' || c == '.' }

func isQuote(c byte) bool { return c == '"' || c == '\'' || c == '`' }

// urlUserinfo replaces the password of every scheme://user:password@ in s, and
// the user of scheme://token@ (a user name alone is a token there). The
// userinfo ends at the last '@' before the URL ends, so passwords may hold
// '/', '#', '?' or '@'.
func urlUserinfo(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	var edits []edit
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], "://")
		if k < 0 {
			break
		}
		start := i + k + 3
		// The URL ends at a space, a quote, an angle bracket, or where the
		// next scheme:// begins.
		end := start
		for end < len(s) && !isSpace(s[end]) && !isQuote(s[end]) && s[end] != '<' && s[end] != '>' {
			if strings.HasPrefix(s[end:], "://") {
				// Back up over the next URL's scheme and a separating comma.
				for end > start && isSchemeChar(s[end-1]) {
					end--
				}
				for end > start && (s[end-1] == ',' || s[end-1] == ';') {
					end--
				}
				break
			}
			end++
		}
		auth := s[start:end]
		at := strings.LastIndexByte(auth, '@')
		i = end
		if at <= 0 {
			continue
		}
		userinfo := auth[:at]
		colon := strings.IndexByte(userinfo, ':')
		slash := strings.IndexAny(userinfo, "/?#")
		switch {
		case colon < 0 && slash >= 0:
			// host/path@x: no userinfo.
		case colon >= 0 && slash >= 0 && slash < colon:
			// host/pa:th@x: no userinfo.
		case colon >= 0:
			if pw := userinfo[colon+1:]; pw != "" && pw != Marker {
				edits = append(edits, edit{start + colon + 1, start + at, Marker})
			}
		default:
			if userinfo != Marker && userinfo != "git" {
				edits = append(edits, edit{start, start + at, Marker})
			}
		}
	}
	return apply(s, edits)
}

// dsnUserinfo replaces the password of Go-style DSNs without a scheme:
// user:password@tcp(host:3306)/db, user:password@unix(/sock)/db, user:pw@(host)/db.
func dsnUserinfo(s string) string {
	if !strings.Contains(s, "@") || !strings.Contains(s, "(") {
		return s
	}
	var edits []edit
	for i := 0; i < len(s); {
		k := strings.IndexByte(s[i:], '@')
		if k < 0 {
			break
		}
		at := i + k
		i = at + 1
		rest := s[at+1:]
		if !(strings.HasPrefix(rest, "(") || hasPrefixFold(rest, "tcp(") || hasPrefixFold(rest, "tcp6(") ||
			hasPrefixFold(rest, "udp(") || hasPrefixFold(rest, "unix(")) {
			continue
		}
		// The userinfo starts after the last space, quote or '=' before '@'
		// that is followed by a ':'-holding run; the user has no ':' in it.
		st := at
		for st > 0 && !isSpace(s[st-1]) && !isQuote(s[st-1]) {
			st--
		}
		ui := s[st:at]
		// A flag or setting in front (--dsn=, DSN=) is not part of it.
		if eq := strings.IndexByte(ui, '='); eq >= 0 && eq < strings.IndexByte(ui, ':') {
			st += eq + 1
			ui = s[st:at]
		}
		if strings.Contains(ui, "://") {
			continue
		}
		c := strings.IndexByte(ui, ':')
		if c < 0 || ui[c+1:] == Marker || c+1 == len(ui) {
			continue
		}
		edits = append(edits, edit{st + c + 1, at, Marker})
	}
	return apply(s, edits)
}

// queryParams replaces the values of settings named like a credential,
// wherever a name=value pair stands: URL query parameters (?token=,
// &X-Amz-Signature=, &sig=), key=value lists (host=db password=x,
// --set db.password=x, --from-literal=api-key=x) and cookies.
func queryParams(s string) string {
	var edits []edit
	for i := 0; i < len(s); i++ {
		if s[i] != '=' || i == 0 {
			continue
		}
		// The name before '=', starting after a separator.
		ns := i
		for ns > 0 && isNameChar(s[ns-1]) {
			ns--
		}
		if ns == i || (ns > 0 && !isPairStart(s[ns-1])) {
			continue
		}
		name := s[ns:i]
		if !isSecretParam(strings.TrimLeft(name, "-")) {
			continue
		}
		v := i + 1
		e := v
		query := ns > 0 && (s[ns-1] == '?' || s[ns-1] == '&')
		for e < len(s) && !isSpace(s[e]) && !isQuote(s[e]) && s[e] != '&' && s[e] != ',' && s[e] != ';' && !(query && s[e] == '#') {
			e++
		}
		if e > v && s[v:e] != Marker && !(ns > 0 && s[ns-1] != '?' && s[ns-1] != '&' && isBool(s[v:e])) {
			edits = append(edits, edit{v, e, Marker})
		}
		i = e - 1
		if i < v {
			i = v - 1
		}
	}
	return apply(s, edits)
}

func isNameChar(c byte) bool { return isAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' }

// isPairStart reports whether c may stand before a name=value pair.
func isPairStart(c byte) bool {
	switch c {
	case '?', '&', '#', ';', ',', ' ', '\t', '\n', '\r', '"', '\'', '`', '{', '(', '=', ':', ']':
		return true
	}
	return false
}

// tokenPrefixes begin credentials whose issuers made them recognisable on
// their own: GitHub, GitLab, Slack, Stripe, Google, npm and PyPI tokens.
var tokenPrefixes = []string{
	"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "glrt-", "gldt-", "xoxb-", "xoxp-", "xoxa-", "xoxs-", "xoxe-",
	"sk_live_", "rk_live_", "sk_test_", "AIza", "ya29.", "npm_", "pypi-", "hf_", "dop_v1_", "shpat_", "SG.",
}

// tokenStart holds the first bytes of tokenPrefixes.
var tokenStart = func() (t [256]bool) {
	for _, p := range tokenPrefixes {
		t[p[0]] = true
	}
	return t
}()

// prefixedTokens replaces tokens that carry a well-known prefix, wherever
// they stand.
func prefixedTokens(s string) string {
	var edits []edit
	for i := 0; i < len(s); i++ {
		if !tokenStart[s[i]] || (i > 0 && (isAlpha(s[i-1]) || isDigit(s[i-1]) || s[i-1] == '_')) {
			continue
		}
		for _, p := range tokenPrefixes {
			if !strings.HasPrefix(s[i:], p) {
				continue
			}
			e := i + len(p)
			for e < len(s) && (isAlpha(s[e]) || isDigit(s[e]) || s[e] == '_' || s[e] == '-' || s[e] == '.') {
				e++
			}
			if e-i-len(p) >= 16 {
				edits = append(edits, edit{i, e, Marker})
				i = e - 1
			}
			break
		}
	}
	return apply(s, edits)
}

// authSchemes are Authorization schemes; the word after one is the credential.
var authSchemes = map[string]bool{
	"bearer": true, "basic": true, "digest": true, "token": true, "negotiate": true, "ntlm": true,
	"apikey": true, "api-key": true, "hoba": true, "mutual": true, "vapid": true, "scram-sha-256": true,
	"scram-sha-1": true, "aws4-hmac-sha256": true, "dpop": true, "gnap": true, "privacytoken": true,
	"sso-key": true, "splunk": true, "geniekey": true, "key": true, "oauth": true, "jwt": true,
}

// headers replaces the values of headers and settings named like a
// credential: "Authorization: Bearer x" (any scheme, repeated or not),
// "X-Api-Key: x", "password: x", and JSON's "token": "x". The scheme word
// of an Authorization value stays visible.
func headers(s string) string {
	if !strings.Contains(s, ":") {
		return s
	}
	var edits []edit
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			continue
		}
		// The name before ':', bare or quoted.
		ne := i
		quoted := byte(0)
		if ne > 0 && (s[ne-1] == '"' || s[ne-1] == '\'') {
			quoted = s[ne-1]
			ne--
		}
		ns := ne
		for ns > 0 && (isAlpha(s[ns-1]) || isDigit(s[ns-1]) || s[ns-1] == '-' || s[ns-1] == '_' || s[ns-1] == '.') {
			ns--
		}
		if ns == ne {
			continue
		}
		if quoted != 0 {
			if ns == 0 || s[ns-1] != quoted {
				continue
			}
		} else if ns > 0 && !isSpace(s[ns-1]) && !isQuote(s[ns-1]) && s[ns-1] != '{' && s[ns-1] != ',' && s[ns-1] != ';' && s[ns-1] != '=' &&
			!(ns == 1 && s[0] == '/') { // /name:value, as Windows-style options
			continue
		}
		name := s[ns:ne]
		if strings.HasPrefix(s[i+1:], "//") || !isSecretHeader(name) {
			continue
		}
		v := i + 1
		for v < len(s) && (s[v] == ' ' || s[v] == '\t') {
			v++
		}
		// A quoted value ends at its closing quote.
		if v < len(s) && (s[v] == '"' || s[v] == '\'') {
			q := s[v]
			e := strings.IndexByte(s[v+1:], q)
			end := len(s)
			if e >= 0 {
				end = v + 1 + e
			}
			if end > v+1 && s[v+1:end] != Marker {
				edits = append(edits, edit{v + 1, end, Marker})
			}
			i = end
			continue
		}
		e := v
		for e < len(s) && s[e] != '\n' && s[e] != '\r' && !isQuote(s[e]) {
			e++
		}
		val := s[v:e]
		if val == "" || val == Marker {
			continue
		}
		lname := lowerASCII(name)
		if lname == "authorization" || lname == "proxy-authorization" {
			// Keep the scheme word when a credential follows it.
			sp := strings.IndexAny(val, " \t")
			if sp > 0 && authSchemeWord(val[:sp]) {
				rest := strings.TrimLeft(val[sp:], " \t")
				if rest == "" || rest == Marker {
					i = e - 1
					continue
				}
				v += len(val) - len(rest)
			}
		}
		if s[v:e] != Marker {
			edits = append(edits, edit{v, e, Marker})
		}
		i = e - 1
	}
	return apply(s, edits)
}

func authSchemeWord(w string) bool {
	if authSchemes[lowerASCII(w)] {
		return true
	}
	for i := 0; i < len(w); i++ {
		if !isAlpha(w[i]) && !isDigit(w[i]) && w[i] != '-' {
			return false
		}
	}
	return w != ""
}

// bearer replaces the token after every "Bearer " (and after any further
// scheme words: "Bearer Bearer x").
func bearer(s string) string {
	if indexFold(s, "bearer") < 0 {
		return s
	}
	var edits []edit
	for i := 0; i < len(s); {
		k := indexFold(s[i:], "bearer")
		if k < 0 {
			break
		}
		b := i + k
		i = b + len("bearer")
		if b > 0 && (isAlpha(s[b-1]) || isDigit(s[b-1])) {
			continue
		}
		j := i
		if j >= len(s) || !(s[j] == ' ' || s[j] == '\t' || s[j] == '=' || s[j] == ':') {
			continue
		}
		for {
			for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '=' || s[j] == ':') {
				j++
			}
			e := j
			for e < len(s) && !isSpace(s[e]) && !isQuote(s[e]) && s[e] != ',' && s[e] != ';' {
				e++
			}
			if e == j {
				break
			}
			if authSchemes[lowerASCII(s[j:e])] && e < len(s) && (s[e] == ' ' || s[e] == '\t') {
				j = e
				continue
			}
			if s[j:e] != Marker {
				edits = append(edits, edit{j, e, Marker})
			}
			i = e
			break
		}
	}
	return apply(s, edits)
}

// jwts replaces JSON Web Tokens (three base64url parts, the first a JSON
// object: "eyJ…") wherever they stand.
func jwts(s string) string {
	if !strings.Contains(s, "eyJ") {
		return s
	}
	var edits []edit
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], "eyJ")
		if k < 0 {
			break
		}
		st := i + k
		e, dots := st, 0
		for e < len(s) && (isAlpha(s[e]) || isDigit(s[e]) || s[e] == '-' || s[e] == '_' || s[e] == '.' || s[e] == '=') {
			if s[e] == '.' {
				dots++
			}
			e++
		}
		if dots >= 1 && e-st >= 16 {
			edits = append(edits, edit{st, e, Marker})
		}
		i = max(e, st+3)
	}
	return apply(s, edits)
}
