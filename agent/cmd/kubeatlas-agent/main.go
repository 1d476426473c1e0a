// Command kubeatlas-agent reports a node's Kubernetes processes and static pod
// manifests to the kubeatlas aggregator.
package main

import (
	"fmt"
	"os"

	"github.com/kubeatlas/kubeatlas/agent/command"
)

func main() {
	if err := command.NewRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kubeatlas-agent:", err)
		os.Exit(1)
	}
}
