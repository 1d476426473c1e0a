package collect

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/kubeatlas/kubeatlas/internal/simproc"
)

// extraProcesses starts n sleeping processes so scans see at least that many.
func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScan measures CPU per scan of this machine with 1,000 extra
// processes: full (a new collector each time) and incremental (nothing new).
func BenchmarkScan(b *testing.B) {
	simproc.Sleepers(b, 1000)
	ctx := context.Background()
	b.Run("full", func(b *testing.B) {
		seen := 0
		start := cpuTime(syscall.RUSAGE_SELF)
		for i := 0; i < b.N; i++ {
			c, err := New(Config{Cluster: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			inv, err := c.Scan(ctx)
			if err != nil {
				b.Fatal(err)
			}
			seen = len(inv.Processes)
		}
		b.ReportMetric(float64((cpuTime(syscall.RUSAGE_SELF)-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		b.ReportMetric(float64(seen), "processes")
	})
	b.Run("incremental", func(b *testing.B) {
		c, err := New(Config{Cluster: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Scan(ctx); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		start := cpuTime(syscall.RUSAGE_SELF)
		for i := 0; i < b.N; i++ {
			if _, err := c.Scan(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime(syscall.RUSAGE_SELF)-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	})
	b.Run("ps", func(b *testing.B) {
		var cpu time.Duration
		for i := 0; i < b.N; i++ {
			cmd := exec.Command("ps", "-eo", "pid,ppid,user,lstart,rss,args")
			if err := cmd.Run(); err != nil {
				b.Skipf("ps: %v", err)
			}
			cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	})
}
