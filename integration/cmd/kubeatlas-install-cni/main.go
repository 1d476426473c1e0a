// Command kubeatlas-install-cni copies files into place, as the install-cni
// init containers of CNI DaemonSets do: each argument is SOURCE:DESTINATION,
// written atomically (a temporary file, then a rename) so that the kubelet
// never reads half a network configuration. The real-cluster tests' flannel
// DaemonSet runs it to write its conflist into /etc/cni/net.d.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kubeatlas-install-cni SOURCE:DESTINATION…")
		os.Exit(2)
	}
	for _, arg := range os.Args[1:] {
		src, dst, ok := strings.Cut(arg, ":")
		if !ok || src == "" || dst == "" {
			fmt.Fprintf(os.Stderr, "kubeatlas-install-cni: %q is not SOURCE:DESTINATION\n", arg)
			os.Exit(2)
		}
		if err := install(src, dst); err != nil {
			fmt.Fprintf(os.Stderr, "kubeatlas-install-cni: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("installed %s as %s\n", src, dst)
	}
}

func install(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
