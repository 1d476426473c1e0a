package command

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kubeatlas/kubeatlas/internal/simproc"
)

// BenchmarkSnapshotVersusPs measures what an operator pays for one
// `kubeatlas-agent snapshot`, start-up included, against one
// `ps -eo pid,ppid,user,lstart,rss,args`, on this machine with 1,000 extra
// processes: the CPU (user + system) of each whole process, median of five
// runs taken alternately, and their ratio.
func BenchmarkSnapshotVersusPs(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "kubeatlas-agent")
	build := exec.Command("go", "build", "-o", bin, "../cmd/kubeatlas-agent")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the agent: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("ps"); err != nil {
		b.Skip("no ps here")
	}
	simproc.Sleepers(b, 1000)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	cpu := func(name string, args ...string) time.Duration {
		c := exec.Command(name, args...)
		c.Stdout, c.Stderr = devnull, devnull
		if err := c.Run(); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	}
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	var agent, ps []time.Duration
	for i := 0; i < b.N; i++ {
		var a, p []time.Duration
		for range 5 {
			a = append(a, cpu(bin, "snapshot", "--cluster", "bench"))
			p = append(p, cpu("ps", "-eo", "pid,ppid,user,lstart,rss,args"))
		}
		agent, ps = append(agent, median(a)), append(ps, median(p))
	}
	am, pm := median(agent), median(ps)
	b.ReportMetric(float64(am.Microseconds())/1000, "snapshot-cpu-ms")
	b.ReportMetric(float64(pm.Microseconds())/1000, "ps-cpu-ms")
	b.ReportMetric(float64(am)/float64(pm), "ratio")
}
