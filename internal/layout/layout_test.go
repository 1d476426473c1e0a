// Package layout holds tests of how the module's packages may depend on each
// other. They run `go list`, so they see exactly what the compiler links.
package layout

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/kubeatlas/kubeatlas/"

// list runs go list with args from the module root and returns its lines.
func list(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

// TestBinariesLinkNoTestCode checks that the three binaries link neither the
// simulated processes nor the synthetic fleets.
func TestBinariesLinkNoTestCode(t *testing.T) {
	for _, bin := range []string{"./agent/cmd/kubeatlas-agent", "./aggregator/cmd/kubeatlas-aggregator", "./client/cmd/kubeatlas"} {
		for _, dep := range list(t, "-deps", bin) {
			if dep == module+"internal/simproc" || dep == module+"internal/synth" || strings.HasPrefix(dep, module+"internal/layout") {
				t.Errorf("%s links %s, which is test code", bin, dep)
			}
		}
	}
}

// TestSidesDoNotReachIntoEachOther checks that nothing under aggregator/ or
// client/ imports agent/: code both sides use lives at the top level.
func TestSidesDoNotReachIntoEachOther(t *testing.T) {
	pkgs := list(t, "-f", `{{.ImportPath}}:{{join .Imports ","}}`, "./aggregator/...", "./client/...")
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages; the test is not looking where it should", len(pkgs))
	}
	for _, line := range pkgs {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Split(imports, ",") {
			if strings.HasPrefix(imp, module+"agent/") {
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
}
