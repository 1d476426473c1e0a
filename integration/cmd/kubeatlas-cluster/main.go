// Command kubeatlas-cluster brings up, for a person, the single-node kubeadm
// cluster the real-cluster tests use (containerd and a kubelet as host
// daemons, the control plane as static pods, kube-proxy, flannel, CoreDNS),
// deploys kubeatlas into it from deploy/, prints kubeatlas's answer, and
// leaves it running. `kubeatlas-cluster down` removes it.
//
//	kubeatlas-cluster up     # make cluster
//	kubeatlas-cluster down   # make cluster-down
//
// It needs root. The first run builds the Kubernetes binaries and images.
package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubeatlas/kubeatlas/integration/harness"
	"github.com/kubeatlas/kubeatlas/integration/realcluster"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: kubeatlas-cluster up|down")
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "kubeatlas-cluster: needs root (namespaces, cgroups, containerd, a kubelet)")
		os.Exit(1)
	}
	if os.Args[1] == "down" {
		realcluster.SweepStale(logf, true)
		return
	}
	os.Exit(up())
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// fatal unwinds up from a Fatal.
type fatal struct{}

// cmdT is realcluster.T for a command: Fatal unwinds, and the cleanups run
// only when bringing the cluster up failed.
type cmdT struct {
	cleanups []func()
	failed   bool
}

func (*cmdT) Helper()                           {}
func (c *cmdT) Logf(format string, args ...any) { logf(format, args...) }
func (c *cmdT) Cleanup(f func())                { c.cleanups = append(c.cleanups, f) }
func (c *cmdT) Failed() bool                    { return c.failed }
func (c *cmdT) Fatal(args ...any)               { c.failed = true; logf("%s", fmt.Sprint(args...)); panic(fatal{}) }
func (c *cmdT) Fatalf(format string, args ...any) {
	c.failed = true
	logf(format, args...)
	panic(fatal{})
}
func (c *cmdT) TempDir() string {
	dir, err := os.MkdirTemp("", "kubeatlas-cluster-")
	if err != nil {
		c.Fatal(err)
	}
	c.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (c *cmdT) undo() {
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
}

func up() (code int) {
	t := &cmdT{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatal); !ok {
				panic(r)
			}
			logf("bringing the cluster up failed; removing what was made")
			t.undo()
			code = 1
		}
	}()
	bins, err := realcluster.BuildAll()
	if err != nil {
		t.Fatal(err)
	}
	n := realcluster.Start(t, bins)
	cli, stop, err := n.DeployAndReach()
	if err != nil {
		t.Fatal(err)
	}
	// The answer is printed once the agent has reported the control plane's
	// processes, not while the cluster is only known from the API.
	err = harness.Eventually(2*time.Minute, 2*time.Second, func() error {
		out, err := n.Run(append(append([]string(nil), cli...), "-o", "json", "get", "components")...)
		if err != nil {
			return err
		}
		var resp v1.ListComponentsResponse
		if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
			return err
		}
		for _, in := range resp.Components {
			if in.How == v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD && in.Pid == 0 {
				return fmt.Errorf("%s has no process reported yet", in.Component)
			}
		}
		for _, daemon := range []string{v1.ComponentKubelet, v1.ComponentContainerRuntime} {
			if !slices.ContainsFunc(resp.Components, func(in *v1.ComponentInstance) bool {
				return in.Component == daemon && in.How == v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS
			}) {
				return fmt.Errorf("no %s reported yet", daemon)
			}
		}
		return nil
	})
	if err != nil {
		stop()
		t.Fatal(err)
	}
	for _, args := range [][]string{{"get", "clusters"}, {"get", "components"}} {
		var out string
		err := harness.Eventually(time.Minute, 2*time.Second, func() error {
			var err error
			out, err = n.Run(append(append([]string(nil), cli...), args...)...)
			return err
		})
		if err != nil {
			stop()
			t.Fatal(err)
		}
		fmt.Printf("$ kubeatlas %s\n%s\n", strings.Join(args, " "), out)
	}
	stop()
	if err := n.Keep(); err != nil {
		t.Fatal(err)
	}
	enter := fmt.Sprintf("nsenter --target %d --mount --net --pid --", n.Holder())
	fmt.Printf(`The cluster keeps running, in its own network and mount namespaces.
  kubectl:   sudo %s env KUBECONFIG=/etc/kubernetes/admin.conf %s get pods -A
  kubeatlas: sudo %s %s -n kubeatlas port-forward svc/kubeatlas-aggregator 17443:7443 &
             sudo %s bin/kubeatlas --server 127.0.0.1:17443 %s get components    (bin/kubeatlas: make build)
Remove it with: make cluster-down
`, enter, bins.Kubectl, enter, bins.Kubectl, enter, strings.Join(n.ClientFlags(), " "))
	return 0
}
