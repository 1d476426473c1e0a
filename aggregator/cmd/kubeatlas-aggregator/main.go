// Command kubeatlas-aggregator joins node agents' inventories with API-server
// data and answers which Kubernetes components run where, and how.
package main

import (
	"fmt"
	"os"

	"github.com/kubeatlas/kubeatlas/aggregator/command"
)

func main() {
	if err := command.NewRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kubeatlas-aggregator:", err)
		os.Exit(1)
	}
}
