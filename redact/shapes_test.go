package redact

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// A form puts a secret into a command line. It returns the argv.
type form struct {
	name string
	// charset the secret may use beyond letters and digits.
	extra string
	// dash: the secret may start with a dash.
	dash bool
	make func(secret string) []string
}

// secretFlagNames are flag names that mean a credential, in every style.
var secretFlagNames = []string{
	"token", "password", "bootstrap-token", "etcd-password", "client-secret", "api-key", "apiKey", "apikey",
	"basic-auth", "auth", "storage-account-key", "azure-storage-account-key", "x-auth-token", "secret-access-key",
	"db-passwd", "encryption-key", "pwd", "passphrase", "credentials", "access-key", "secretKey", "DB_PASSWORD",
	"private-key", "master-key", "agent-token", "oidc-client-secret", "psk", "license-key", "auth-token", "pass",
	"passin", "secret-id", "secret_id", "oauth2-bearer", "registry-password", "sas-token", "client-key-data", "webhook-token",
}

var envNames = []string{"DB_PASSWORD", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "API_KEY", "MYSQL_PWD", "K3S_TOKEN", "VAULT_TOKEN", "ClientSecret"}

var schemes = []string{"https", "http", "postgres", "mysql", "redis", "amqp", "mongodb+srv", "etcd", "nats", "git+https"}

func forms() []form {
	var fs []form
	flagExtra := "-_./#+%~:!,@="
	for _, n := range secretFlagNames {
		n := n
		fs = append(fs,
			form{"--" + n + "=S", flagExtra, true, func(s string) []string { return []string{"--" + n + "=" + s} }},
			form{"--" + n + " S", flagExtra, true, func(s string) []string { return []string{"--" + n, s} }},
			form{"-" + n + " S", flagExtra, true, func(s string) []string { return []string{"-" + n, s} }},
			form{"-" + n + "=S", flagExtra, true, func(s string) []string { return []string{"-" + n + "=" + s} }},
		)
	}
	for _, n := range envNames {
		n := n
		fs = append(fs, form{n + "=S", flagExtra, true, func(s string) []string { return []string{n + "=" + s} }})
	}
	fs = append(fs,
		form{"curl -u user:S", "-_./#+%~!", false, func(s string) []string { return []string{"-u", "admin:" + s} }},
		form{"--user=user:S", "-_./#+%~!", false, func(s string) []string { return []string{"--user=admin:" + s} }},
		form{"-H Authorization: Bearer S", "-_./+~=", false, func(s string) []string { return []string{"-H", "Authorization: Bearer " + s} }},
		form{"-H Authorization: Basic S", "+/=", false, func(s string) []string { return []string{"-H", "Authorization: Basic " + s} }},
		form{"-H Authorization: Bearer Bearer S", "-_.", false, func(s string) []string { return []string{"-H", "Authorization: Bearer Bearer " + s} }},
		form{"-H authorization:S", "-_.", false, func(s string) []string { return []string{"-H", "authorization:" + s} }},
		form{"--header=Authorization: Token S", "-_.", false, func(s string) []string { return []string{"--header=Authorization: Token " + s} }},
		form{"-H X-Api-Key: S", "-_.", false, func(s string) []string { return []string{"-H", "X-Api-Key: " + s} }},
		form{"-H Private-Token: S", "-_.", false, func(s string) []string { return []string{"-H", "Private-Token: " + s} }},
		form{"-H X-Vault-Token:S", "-_.", false, func(s string) []string { return []string{"-H", "X-Vault-Token:" + s} }},
		form{"bearer S", "-_.", false, func(s string) []string { return []string{"--header", "bearer " + s} }},
		form{"mysql DSN", "-_.!~#/", false, func(s string) []string { return []string{"--dsn=app:" + s + "@tcp(db:3306)/x?parseTime=true"} }},
		form{"DSN word", "-_.!~#/", false, func(s string) []string { return []string{"root:" + s + "@unix(/run/mysqld.sock)/db"} }},
		form{"query token", "-_.~", false, func(s string) []string { return []string{"https://h.example/p?x=1&token=" + s + "&y=2"} }},
		form{"query signature", "-_.~%", false, func(s string) []string {
			return []string{"--url=https://b.s3.amazonaws.com/o?X-Amz-Credential=AKIA&X-Amz-Signature=" + s}
		}},
		form{"query sig", "-_.~%", false, func(s string) []string { return []string{"https://a.blob.core.windows.net/c?sv=2020&sig=" + s} }},
		form{"query api_key", "-_.~", false, func(s string) []string { return []string{"--endpoint", "https://h/v1?api_key=" + s} }},
		form{"PEM", "+/=", false, func(s string) []string {
			return []string{"--key-data=-----BEGIN RSA PRIVATE KEY-----\nMIIB" + s + "\n" + s + "\n-----END RSA PRIVATE KEY-----\n"}
		}},
		form{"PEM unterminated", "+/=", false, func(s string) []string {
			return []string{"-----BEGIN PRIVATE KEY-----\n" + s}
		}},
		form{"helm --set name.password=S", "-_.!~#/", false, func(s string) []string { return []string{"--set", "image.tag=1,db.password=" + s + ",x=y"} }},
		form{"--from-literal=api-key=S", "-_.!~#/:", false, func(s string) []string {
			return []string{"create", "secret", "generic", "x", "--from-literal=api-key=" + s}
		}},
		form{"libpq key=value DSN", "-_.!~#/:", false, func(s string) []string {
			return []string{"--dsn", "host=db port=5432 user=app password=" + s + " sslmode=require"}
		}},
		form{"cookie header", "-_.~", false, func(s string) []string { return []string{"-H", "Cookie: theme=dark; session=" + s} }},
		form{"connection string", "-_.!~/", false, func(s string) []string {
			return []string{"--connection-string=DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + s + ";EndpointSuffix=core.windows.net"}
		}},
		form{"SQL Server connection string", "-_.!~/", false, func(s string) []string { return []string{"Server=db;Database=app;User Id=sa;Password=" + s + ";"} }},
		form{"openssl -passin pass:", "-_.!~/", false, func(s string) []string { return []string{"rsa", "-passin", "pass:" + s} }},
		form{"GitHub token alone", "", false, func(s string) []string { return []string{"clone", "ghp_" + s + "abcdef0123456789"} }},
		form{"JWT", "", false, func(s string) []string {
			return []string{"--id-token", "x", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI" + s + ".c2ln" + s}
		}},
	)
	for _, sc := range schemes {
		sc := sc
		fs = append(fs,
			form{sc + "://user:S@host", "-_.~!/#?%", false, func(s string) []string {
				return []string{"--endpoint=" + sc + "://user:" + s + "@db.example:5432/x?sslmode=require"}
			}},
			form{sc + "://S@host", "-_.~", false, func(s string) []string { return []string{sc + "://" + s + "@github.example/org/repo"} }},
			form{sc + "://:S@host", "-_.~!/#", false, func(s string) []string { return []string{"--servers", sc + "://:" + s + "@cache:6379/0"} }},
			form{sc + " list", "-_.~!", false, func(s string) []string {
				return []string{"--upstreams=" + sc + "://a:" + s + "@h1:1," + sc + "://b:" + s + "@h2:2/p"}
			}},
		)
	}
	return fs
}

// benign are command-line words that carry no secret.
var benign = []string{
	"--v=2", "--kubeconfig=/etc/kubernetes/kubelet.conf", "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
	"--etcd-servers=https://127.0.0.1:2379", "--feature-gates=A=true,B=false", "run", "--", "-x", "--config", "/etc/x.yaml",
	"--token-auth-file=/etc/tokens.csv", "--enable-bootstrap-token-auth=true", "--authorization-mode=Node,RBAC",
	"--anonymous-auth=false", "--use-service-account-credentials=true", "--port", "8080",
}

func randomSecret(r *rand.Rand, extra string, dash bool) string {
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	n := 12 + r.IntN(20)
	b := make([]byte, 0, n)
	if dash && r.IntN(4) == 0 {
		b = append(b, '-')
	}
	// The secret begins with a marker-free letter run so it is findable.
	b = append(b, 'Q')
	for len(b) < n {
		if extra != "" && r.IntN(5) == 0 {
			b = append(b, extra[r.IntN(len(extra))])
			continue
		}
		b = append(b, alnum[r.IntN(len(alnum))])
	}
	return string(b)
}

// leak returns a piece of secret that survives in out, or "".
func leak(secret string, out []string) string {
	joined := strings.Join(out, "\x00")
	const w = 6
	for i := 0; i+w <= len(secret); i++ {
		piece := secret[i : i+w]
		if strings.Contains(joined, piece) {
			return piece
		}
	}
	return ""
}

// positions place a form's words into a command line.
var positions = []struct {
	name  string
	place func(r *rand.Rand, words []string) []string
}{
	{"argv", func(r *rand.Rand, words []string) []string {
		out := []string{"/usr/bin/app"}
		k := r.IntN(4)
		for i := 0; i < k; i++ {
			out = append(out, benign[r.IntN(len(benign))])
		}
		out = append(out, words...)
		for i := 0; i < r.IntN(3); i++ {
			out = append(out, benign[r.IntN(len(benign))])
		}
		return out
	}},
	{"title in argv[0]", func(r *rand.Rand, words []string) []string {
		return []string{"kube-apiserver --v=2 " + shellJoin(words, false)}
	}},
	{"title in argv[0], unquoted", func(r *rand.Rand, words []string) []string {
		return []string{"kube-apiserver " + strings.Join(words, " ") + " --v=2", ""}
	}},
	{"sh -c", func(r *rand.Rand, words []string) []string {
		return []string{"/bin/sh", "-c", "exec /usr/bin/app --v=2 " + shellJoin(words, false) + " && echo done"}
	}},
	{"bash -ec with double quotes", func(r *rand.Rand, words []string) []string {
		return []string{"bash", "-ec", "set -x; /app " + shellJoin(words, true) + " | tee /tmp/log"}
	}},
	{"sh -c in sh -c", func(r *rand.Rand, words []string) []string {
		inner := "/app " + shellJoin(words, true)
		return []string{"sh", "-c", "sh -c '" + inner + "'"}
	}},
	{"manifest command and args", func(r *rand.Rand, words []string) []string {
		return append([]string{"kube-apiserver"}, words...)
	}},
}

// shellJoin quotes words for a shell: single quotes, or double quotes when
// the text will itself sit in single quotes.
func shellJoin(words []string, double bool) string {
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		if double {
			b.WriteString(`"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(w) + `"`)
		} else {
			b.WriteString("'" + strings.ReplaceAll(w, "'", `'\''`) + "'")
		}
	}
	return b.String()
}

// TestGeneratedShapesNeverLeak is the differential test: every form of
// secret, in every position, with random secrets; no six bytes in a row of a
// secret survive.
func TestGeneratedShapesNeverLeak(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fs := forms()
	checked := 0
	for _, f := range fs {
		for _, p := range positions {
			for k := 0; k < 8; k++ {
				secret := randomSecret(r, f.extra, f.dash)
				if p.name == "title in argv[0], unquoted" && strings.ContainsAny(f.make(secret)[len(f.make(secret))-1], " \n") {
					// Words with spaces lose their boundaries unquoted; the
					// quoted title covers them.
					continue
				}
				words := f.make(secret)
				argv := p.place(r, words)
				var out []string
				if p.name == "manifest command and args" {
					split := 1 + r.IntN(len(argv))
					cmd, args := Container(argv[:split], argv[split:])
					out = append(cmd, args...)
				} else {
					out = Argv(argv)
				}
				checked++
				if piece := leak(secret, out); piece != "" {
					t.Errorf("%s in %s: %q of the secret survives\n in:  %q\n out: %q", f.name, p.name, piece, argv, out)
				}
				if len(out) != len(argv) {
					t.Errorf("%s in %s: %d words became %d", f.name, p.name, len(argv), len(out))
				}
			}
		}
	}
	t.Logf("%d command lines checked", checked)
}

// TestMultiWordSecretFlagSplitAcrossCommandAndArgs is the static pod case:
// the flag is the last word of command, its value the first of args.
func TestContainerFlagInCommandValueInArgs(t *testing.T) {
	cmd, args := Container([]string{"kube-apiserver", "--token"}, []string{"S3CR3T-value", "--v=2"})
	if args[0] != Marker || cmd[1] != "--token" || args[1] != "--v=2" {
		t.Fatalf("got %q %q", cmd, args)
	}
	cmd, args = Container(nil, []string{"--password", "-S3CR3T"})
	if len(cmd) != 0 || args[1] != Marker {
		t.Fatalf("got %q %q", cmd, args)
	}
}

func TestPathsAndBenignValuesStay(t *testing.T) {
	for _, a := range [][]string{
		{"etcd", "--key", "/etc/kubernetes/pki/etcd/server.key", "--cert", "/etc/kubernetes/pki/etcd/server.crt"},
		{"kube-apiserver", "--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key"},
		{"kube-apiserver", "--tls-sni-cert-key=/p/x.crt,/p/x.key"},
		{"kube-controller-manager", "--use-service-account-credentials", "--controllers=*,bootstrapsigner"},
		{"kube-apiserver", "--enable-bootstrap-token-auth", "--v=2"},
		{"kubelet", "--image-credential-provider-config=/etc/kubernetes/cp.yaml", "--image-credential-provider-bin-dir=/usr/libexec"},
		{"sh", "-c", "exec /usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=$(NODE_NAME)"},
		{"ssh", "git@github.com:org/repo"},
		{"app", "--url=https://h.example/p?page=2&sort=name#top"},
		{"app", "--header", "Content-Type: application/json"},
		{"app", "--image=nginx:1.25@sha256:0123456789abcdef"},
		{"coredns", "-conf", "/etc/coredns/Corefile"},
		{"kube-scheduler", "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf", "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf"},
	} {
		if got := Argv(a); strings.Join(got, "\x00") != strings.Join(a, "\x00") {
			t.Errorf("changed %q to %q", a, got)
		}
	}
}

func TestKnownShapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://user:pa/ss#x@host/p", "https://user:" + Marker + "@host/p"},
		{"https://ghp_TOKEN123@github.com/o/r.git", "https://" + Marker + "@github.com/o/r.git"},
		{"redis://:pw@cache:6379", "redis://:" + Marker + "@cache:6379"},
		{"user:pw@tcp(db:3306)/x", "user:" + Marker + "@tcp(db:3306)/x"},
		{"Authorization: Bearer abc", "Authorization: Bearer " + Marker},
		{"Authorization: Basic Bearer abc", "Authorization: Basic " + Marker},
		{"X-Api-Key: abc", "X-Api-Key: " + Marker},
		{`{"password": "abc", "user": "bob"}`, `{"password": "` + Marker + `", "user": "bob"}`},
		{"https://h/p?a=1&access_token=abc#f", "https://h/p?a=1&access_token=" + Marker + "#f"},
	}
	for _, tt := range tests {
		if got, _ := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestCaseFoldingCannotMoveOffsets: characters whose lower case has another
// byte length must not shift where a match is cut.
func TestCaseFoldingCannotMoveOffsets(t *testing.T) {
	for _, r := range []string{"\u023a", "\u023e", "\u2c65", "\u0130", "\u212a", "\u1e9e"} {
		for n := 0; n < 12; n++ {
			s := strings.Repeat(r, n) + "bearer "
			_ = Argv([]string{"bash", "-c", "sleep 300; :", s})
			out, _ := Text(strings.Repeat(r, n) + "Bearer tok123456" + strings.Repeat(r, n))
			if strings.Contains(out, "tok123456") || !utf8.ValidString(out) {
				t.Fatalf("%q: %q", r, out)
			}
		}
	}
}

func TestProgramSpecificPasswordFlags(t *testing.T) {
	for _, argv := range [][]string{
		{"/usr/bin/docker", "login", "-u", "bot", "-p", "S3CR3T", "registry.example"},
		{"sh", "-c", "docker login -u bot -p S3CR3T registry.example && docker pull x"},
		{"sshpass", "-p", "S3CR3T", "ssh", "host"},
		{"redis-cli", "-a", "S3CR3T", "ping"},
		{"helm", "registry", "login", "-p", "S3CR3T", "r.example"},
	} {
		if got := Argv(argv); strings.Contains(strings.Join(got, " "), "S3CR3T") {
			t.Errorf("%q -> %q", argv, got)
		}
	}
	// -p is no password for other programs.
	if got := Argv([]string{"kube-proxy", "-p", "8080"}); got[2] != "8080" {
		t.Errorf("-p of another program redacted: %q", got)
	}
}

func TestMySQLAttachedPassword(t *testing.T) {
	got := Argv([]string{"mysql", "-uroot", "-pS3CR3T", "-h", "db"})
	if strings.Contains(strings.Join(got, " "), "S3CR3T") || got[1] != "-uroot" {
		t.Fatalf("got %q", got)
	}
}

// FuzzNoLeak inserts a fuzzed secret into every form and position.
func FuzzNoLeak(f *testing.F) {
	f.Add("Qabc/def#ghi", uint8(0), uint8(0), uint64(1))
	f.Add("-Qdash1234", uint8(1), uint8(3), uint64(2))
	f.Add("Qa:b@c", uint8(7), uint8(5), uint64(3))
	fs := forms()
	f.Fuzz(func(t *testing.T, secret string, fi, pi uint8, seed uint64) {
		fm := fs[int(fi)%len(fs)]
		p := positions[int(pi)%len(positions)]
		if len(secret) < 8 || len(secret) > 64 || secret[0] != 'Q' && !(fm.dash && strings.HasPrefix(secret, "-Q")) {
			return
		}
		for i := 0; i < len(secret); i++ {
			c := secret[i]
			if !isAlpha(c) && !isDigit(c) && !strings.ContainsRune(fm.extra, rune(c)) && !(i == 0 && c == '-') {
				return
			}
		}
		words := fm.make(secret)
		if p.name == "title in argv[0], unquoted" && strings.ContainsAny(words[len(words)-1], " \n") {
			return
		}
		argv := p.place(rand.New(rand.NewPCG(seed, 0)), words)
		out := Argv(argv)
		if piece := leak(secret, out); piece != "" {
			t.Fatalf("%s in %s: %q survives\n in:  %q\n out: %q", fm.name, p.name, piece, argv, out)
		}
		if fmt.Sprint(len(out)) != fmt.Sprint(len(argv)) {
			t.Fatalf("length changed")
		}
	})
}
