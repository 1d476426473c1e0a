package harness

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kubeatlas/kubeatlas/internal/simproc"
)

const envNodeInit = "KUBEATLAS_HARNESS_NODE_INIT"

// MaybeRun turns the test binary into a node's init process or a simulated
// process when the environment says so. Call it first in TestMain.
func MaybeRun() {
	simproc.MaybeRun()
	if name := os.Getenv(envNodeInit); name != "" {
		nodeInit(name)
	}
}

// request and reply are the node-init protocol, one JSON object a line.
type request struct {
	Op     string   `json:"op"` // start, agent, stop
	ID     string   `json:"id"`
	Argv   []string `json:"argv,omitempty"`
	Procs  []string `json:"procs,omitempty"`
	BinDir string   `json:"bindir,omitempty"`
	// Parent names a running spawner process to start this one under.
	Parent string `json:"parent,omitempty"`
	// Spawner makes the process able to start children.
	Spawner bool   `json:"spawner,omitempty"`
	Log     string `json:"log,omitempty"`
}

type reply struct {
	ID    string `json:"id"`
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// nodeInit runs as PID 1 of a node's PID namespace, in its own mount and UTS
// namespaces: it mounts a /proc that shows only the node's processes, names
// the host, then starts and stops processes as the harness asks.
func nodeInit(name string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "node-init:", err)
		os.Exit(4)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		fail(fmt.Errorf("making mounts private: %w", err))
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		fail(fmt.Errorf("mounting /proc: %w", err))
	}
	if err := syscall.Sethostname([]byte(name)); err != nil {
		fail(fmt.Errorf("setting hostname: %w", err))
	}
	type child struct {
		sim   *simproc.Proc
		agent *exec.Cmd
		pid   int // a grandchild, started by a spawner
	}
	children := map[string]child{}
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64<<10), 4<<20)
	stop := func(c child) {
		if c.pid != 0 {
			// Its parent, the spawner, reaps it.
			_ = syscall.Kill(c.pid, syscall.SIGTERM)
			for i := 0; i < 250 && !gone(c.pid); i++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if c.sim != nil {
			c.sim.Stop()
		}
		if c.agent != nil {
			_ = c.agent.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = c.agent.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = c.agent.Process.Kill()
				<-done
			}
		}
	}
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fail(err)
		}
		rep := reply{ID: req.ID}
		switch req.Op {
		case "start":
			spec := simproc.Spec{Argv: req.Argv, CgroupProcs: req.Procs, BinDir: req.BinDir, Stderr: os.Stderr, Spawner: req.Spawner}
			if req.Parent != "" {
				parent, ok := children[req.Parent]
				if !ok || parent.sim == nil {
					rep.Error = "no spawner " + req.Parent
					break
				}
				pid, err := parent.sim.Spawn(spec)
				if err != nil {
					rep.Error = err.Error()
				} else {
					children[req.ID] = child{pid: pid}
					rep.Pid = pid
				}
				break
			}
			p, err := simproc.Start(spec)
			if err != nil {
				rep.Error = err.Error()
			} else {
				children[req.ID] = child{sim: p}
				rep.Pid = p.Pid
			}
		case "agent":
			f, err := os.OpenFile(req.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				rep.Error = err.Error()
				break
			}
			cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
			cmd.Stdout, cmd.Stderr = f, f
			if err := cmd.Start(); err != nil {
				rep.Error = err.Error()
			} else {
				children[req.ID] = child{agent: cmd}
				rep.Pid = cmd.Process.Pid
			}
			f.Close()
		case "stop":
			c, ok := children[req.ID]
			if !ok {
				rep.Error = "no such process " + req.ID
				break
			}
			stop(c)
			delete(children, req.ID)
		default:
			rep.Error = "unknown op " + req.Op
		}
		if err := out.Encode(rep); err != nil {
			fail(err)
		}
	}
	// Spawned processes first, while their spawners still reap them.
	for _, c := range children {
		if c.pid != 0 {
			stop(c)
		}
	}
	for _, c := range children {
		if c.pid == 0 {
			stop(c)
		}
	}
	os.Exit(0)
}

// gone reports whether a process has exited: no longer in /proc, or a
// zombie. A zombie whose spawner went first is this init's child now (it is
// PID 1 of the node), so it is reaped here.
func gone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	if i := strings.LastIndexByte(string(data), ')'); i >= 0 && i+2 < len(data) && data[i+2] == 'Z' {
		_, _ = syscall.Wait4(pid, nil, syscall.WNOHANG, nil)
		return true
	}
	return false
}

// Node is a simulated node: an init process in its own PID, mount and UTS
// namespaces, its processes in real cgroups, and a host root for its agent.
type Node struct {
	Name     string
	HostRoot string
	LogDir   string
	cgroups  *simproc.Cgroups
	cgPrefix string
	binDir   string

	mu    sync.Mutex
	init  *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	Pids  map[string]int
}

// StartNode starts a node's init process. hostFiles, if not empty, is copied
// into the node's host root (manifests, kubelet config, kubeadm-flags.env).
func StartNode(t testing.TB, name string, cg *simproc.Cgroups, hostFiles string) *Node {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: simulated nodes need root for namespaces and cgroups")
	}
	dir := t.TempDir()
	n := &Node{Name: name, HostRoot: filepath.Join(dir, "host"), LogDir: dir, cgroups: cg, cgPrefix: name, binDir: filepath.Join(dir, "bin"), Pids: map[string]int{}}
	if err := makeHostRoot(n.HostRoot, hostFiles); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Args = []string{"node-init", name}
	cmd.Env = append(os.Environ(), envNodeInit+"="+name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS, Pdeathsig: syscall.SIGKILL}
	errLog, err := os.Create(filepath.Join(dir, "node-init.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = errLog
	if n.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n.out = bufio.NewScanner(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node %s: %v", name, err)
	}
	n.init = cmd
	t.Cleanup(func() {
		n.stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		errLog.Close()
		if t.Failed() {
			t.Logf("--- node %s init log:\n%s", name, Tail(errLog.Name(), 20))
			if _, err := os.Stat(filepath.Join(dir, "agent.log")); err == nil {
				t.Logf("--- node %s agent log:\n%s", name, Tail(filepath.Join(dir, "agent.log"), 40))
			}
		}
	})
	return n
}

func (n *Node) call(req request) (reply, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	data, _ := json.Marshal(req)
	if _, err := n.stdin.Write(append(data, '\n')); err != nil {
		return reply{}, fmt.Errorf("node %s: %w", n.Name, err)
	}
	if !n.out.Scan() {
		return reply{}, fmt.Errorf("node %s: init ended: %v", n.Name, n.out.Err())
	}
	var rep reply
	if err := json.Unmarshal(n.out.Bytes(), &rep); err != nil {
		return reply{}, err
	}
	if rep.Error != "" {
		return rep, errors.New(rep.Error)
	}
	return rep, nil
}

// Start starts a process with argv in the cgroup at rel beneath the node's
// cgroup ("" leaves it in the node's init cgroup).
func (n *Node) Start(t testing.TB, id string, argv []string, rel string) int {
	t.Helper()
	return n.StartProcess(t, ProcSpec{ID: id, Argv: argv, Cgroup: rel})
}

// ProcSpec describes a process to start on a node.
type ProcSpec struct {
	ID     string
	Argv   []string
	Cgroup string // beneath the node's cgroup; "" for none
	// Parent is the ID of a Spawner process that becomes this one's parent.
	Parent  string
	Spawner bool
}

// StartProcess starts a process as spec says and returns its pid on the node.
func (n *Node) StartProcess(t testing.TB, spec ProcSpec) int {
	t.Helper()
	id, argv, rel := spec.ID, spec.Argv, spec.Cgroup
	var procs []string
	if rel != "" {
		p, err := n.cgroups.Procs(n.cgPrefix + "/" + strings.Trim(rel, "/"))
		if err != nil {
			t.Fatal(err)
		}
		procs = []string{p}
	}
	rep, err := n.call(request{Op: "start", ID: id, Argv: argv, Procs: procs, BinDir: n.binDir, Parent: spec.Parent, Spawner: spec.Spawner})
	if err != nil {
		t.Fatalf("node %s: starting %s: %v", n.Name, id, err)
	}
	n.Pids[id] = rep.Pid
	return rep.Pid
}

// Stop stops a process the node started.
func (n *Node) Stop(t testing.TB, id string) {
	t.Helper()
	if _, err := n.call(request{Op: "stop", ID: id}); err != nil {
		t.Fatalf("node %s: stopping %s: %v", n.Name, id, err)
	}
	delete(n.Pids, id)
}

// StartAgent runs kubeatlas-agent inside the node, reporting to server.
func (n *Node) StartAgent(t testing.TB, bins Binaries, cluster, server string, extra ...string) {
	t.Helper()
	argv := append([]string{bins.Agent, "run", "--cluster", cluster, "--node-name", n.Name, "--host-root", n.HostRoot,
		"--server", server, "--insecure", "--scan-interval", "1s", "--metrics-addr", ""}, extra...)
	if _, err := n.call(request{Op: "agent", ID: "agent", Argv: argv, Log: filepath.Join(n.LogDir, "agent.log")}); err != nil {
		t.Fatalf("node %s: starting the agent: %v", n.Name, err)
	}
}

// StopAgent stops the node's agent.
func (n *Node) StopAgent(t testing.TB) { n.Stop(t, "agent") }

func makeHostRoot(root, hostFiles string) error {
	for _, d := range []string{"proc", "sys"} {
		if err := os.MkdirAll(root, 0o755); err != nil {
			return err
		}
		if err := os.Symlink("/"+d, filepath.Join(root, d)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644); err != nil {
		return err
	}
	if hostFiles == "" {
		return nil
	}
	return filepath.Walk(hostFiles, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(hostFiles, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
}

// RunTests is TestMain for packages that run simulated nodes: the test
// binary serves as a node's init when started as one (MaybeRun), and every
// process, stream and client a test starts must be stopped by it (goleak).
func RunTests(m *testing.M) {
	MaybeRun()
	goleak.VerifyTestMain(m,
		// client-go's process-wide log flusher and idle HTTP connections of its shared transport cache.
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

// TestCgroups makes the test's own cgroup for simulated nodes, named
// kubeatlas-<what>-<pid> beneath this process's cgroup, and removes it when
// the test ends. It skips the test without root.
func TestCgroups(t testing.TB, what string) *simproc.Cgroups {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: simulated nodes need root for namespaces and cgroups")
	}
	cg, err := simproc.NewCgroups(fmt.Sprintf("kubeatlas-%s-%d", what, os.Getpid()))
	if err != nil {
		t.Fatalf("making the test's cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := cg.Remove(); err != nil {
			t.Error(err)
		}
	})
	return cg
}
