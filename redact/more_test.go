package redact

import (
	"strings"
	"testing"
)

// TestMoreShapes: secrets in the forms real command lines give them.
func TestMoreShapes(t *testing.T) {
	for _, a := range [][]string{
		{"java", "-Djavax.net.ssl.keyStorePassword=S3CR3T", "-jar", "x.jar"},
		{"java", "-Dspring.datasource.password=S3CR3T"},
		{"app", "--config-json", `{"db":{"password":"S3CR3T"}}`},
		{"app", "--db-url=jdbc:mysql://db:3306/x?user=root&password=S3CR3T"},
		{"psql", "postgresql://user:S3CR3T@host/db"},
		{"app", "SECRET_KEY_BASE=S3CR3T"},
		{"app", "--header", "X-Auth-Token:S3CR3T"},
		{"git", "clone", "https://oauth2:S3CR3T@gitlab.com/x.git"},
		{"app", "--password", "a b S3CR3T"},
		{"bash", "-c", "PGPASSWORD=S3CR3T psql -h db"},
		{"bash", "-c", "export API_TOKEN=S3CR3T; ./run"},
		{"bash", "-c", `curl -s -H "Authorization: token S3CR3T" https://api.github.com`},
		{"app", "--token=S3CR3T", "--token", "S3CR3T"},
		{"app", "-token:S3CR3T"},
		{"app", "/token:S3CR3T"},
		{"app", "--auth=user:S3CR3T"},
		{"app", "--kubeconfig-token=S3CR3T"},
		{"app", "--set-string", "global.imagePullSecrets[0].password=S3CR3T"},
		{"rclone", "--s3-secret-access-key", "S3CR3T"},
		{"app", "--url", "https://h/x?X-Goog-Signature=S3CR3T&X-Goog-Credential=abc"},
		{"app", `--data={"client_secret":"S3CR3T"}`},
		{"app", "--data", "client_secret=S3CR3T&grant_type=x"},
		{"app", "TOKEN=S3CR3T"},
		{"app", "--secret", "--S3CR3T"},
		{"app", "--pass=S3CR3T"},
		{"kube-apiserver --token-auth-file=/x --token=S3CR3T"},
		{"nginx: master process /usr/sbin/nginx -g daemon on; master_process on; password=S3CR3T"},
		{"app", "-H", "Authorization:Basic S3CR3T"},
		{"app", "-H", "Proxy-Authorization: Bearer S3CR3T"},
		{"app", "--proxy", "http://user:S3CR3T@proxy:3128"},
	} {
		got := Argv(a)
		if strings.Contains(strings.Join(got, " "), "S3CR3T") {
			t.Errorf("%q -> %q", a, got)
		}
	}
}

func TestBooleanSecretFlagsDoNotTakeTheNextWord(t *testing.T) {
	got := Argv([]string{"docker", "login", "--password-stdin", "-u", "bot"})
	if got[3] != "-u" || got[4] != "bot" {
		t.Fatalf("got %q", got)
	}
}
