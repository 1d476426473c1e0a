package simproc

import (
	"os/exec"
	"testing"
)

// Sleepers starts n `sleep` processes, so that a benchmark sees a busy
// node's process table, and stops them when tb ends.
func Sleepers(tb testing.TB, n int) {
	tb.Helper()
	cmds := make([]*exec.Cmd, 0, n)
	tb.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	})
	for range n {
		c := exec.Command("sleep", "3600")
		if err := c.Start(); err != nil {
			tb.Fatal(err)
		}
		cmds = append(cmds, c)
	}
}
