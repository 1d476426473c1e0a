// Command kubeatlas answers which Kubernetes components run where, and how,
// across a fleet of clusters.
package main

import (
	"fmt"
	"os"

	"github.com/kubeatlas/kubeatlas/client/cli"
)

func main() {
	if err := cli.NewRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kubeatlas:", err)
		os.Exit(1)
	}
}
