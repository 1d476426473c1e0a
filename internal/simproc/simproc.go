// Package simproc starts real processes that look like a node's Kubernetes
// components: the test binary itself, copied under the component's name and
// run with the component's exact argv, placed in a real cgroup laid out as a
// kubelet and container runtime lay it out. Tests call MaybeRun first thing in
// TestMain; the copies then sleep until they are signalled.
package simproc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	envCgroupProcs = "KUBEATLAS_SIMPROC_CGROUP_PROCS"
	envExec        = "KUBEATLAS_SIMPROC_EXEC"
	envSleep       = "KUBEATLAS_SIMPROC_SLEEP"
	envSpawner     = "KUBEATLAS_SIMPROC_SPAWNER"
)

// MaybeRun turns this process into a launcher or a sleeper when the
// environment says so, and then never returns. Otherwise it returns at once.
func MaybeRun() {
	if procs := os.Getenv(envCgroupProcs); procs != "" || os.Getenv(envExec) != "" {
		launch(procs)
	}
	if os.Getenv(envSleep) != "" {
		sleep()
	}
}

// launch joins the cgroups, then execs the sleeper copy with the same argv, so
// the process is in its cgroup before it shows its final command line.
func launch(procs string) {
	for _, p := range strings.Split(procs, string(os.PathListSeparator)) {
		if p == "" {
			continue
		}
		if err := os.WriteFile(p, []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "simproc: joining cgroup %s: %v\n", p, err)
			os.Exit(3)
		}
	}
	target := os.Getenv(envExec)
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, envCgroupProcs+"=") && !strings.HasPrefix(e, envExec+"=") {
			env = append(env, e)
		}
	}
	env = append(env, envSleep+"=1")
	err := syscall.Exec(target, os.Args, env)
	fmt.Fprintf(os.Stderr, "simproc: exec %s: %v\n", target, err)
	os.Exit(3)
}

func sleep() {
	// Say we are ready, then wait for a signal (the default action ends us).
	fmt.Fprintln(os.Stdout, "ready")
	if os.Getenv(envSpawner) != "" {
		spawn()
	}
	for {
		time.Sleep(time.Hour)
	}
}

// spawn starts children on request, one JSON Spec a line on stdin, and
// answers each with the child's pid (or an error) on stdout. The children
// are this process's own, as a container shim's containers are.
func spawn() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64<<10), 4<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var spec Spec
		var rep spawnReply
		if err := json.Unmarshal(in.Bytes(), &spec); err != nil {
			rep.Error = err.Error()
		} else if p, err := Start(spec); err != nil {
			rep.Error = err.Error()
		} else {
			rep.Pid = p.Pid
			go func() { _ = p.Cmd.Wait() }() // reap it when it ends
		}
		if err := out.Encode(rep); err != nil {
			os.Exit(3)
		}
	}
	// The parent closed our stdin: keep sleeping with the children.
}

type spawnReply struct {
	Pid   int    `json:"pid"`
	Error string `json:"error,omitempty"`
}

// Spec describes one process to start.
type Spec struct {
	// Argv is the exact command line; its first word's base name names the
	// binary copy, so /proc/<pid>/exe ends in it.
	Argv []string
	// CgroupProcs are cgroup.procs files to join before exec (one per
	// hierarchy); empty leaves the process where it starts.
	CgroupProcs []string
	// BinDir is where copies of the binary are made.
	BinDir string
	// SysProcAttr, if set, is used to start the process (namespaces, parent).
	SysProcAttr *syscall.SysProcAttr `json:"-"`
	// Stderr receives the process's errors; nil discards them.
	Stderr io.Writer `json:"-"`
	// Spawner makes the process start children on request (see Spawn).
	Spawner bool
	// Dir is the process's working directory; empty keeps the caller's.
	Dir string
}

// Proc is a running simulated process.
type Proc struct {
	Cmd *exec.Cmd
	Pid int
	out *bufio.Reader
	in  io.WriteCloser
	mu  sync.Mutex
}

// Spawn starts a child of a Spawner process and returns its pid.
func (p *Proc) Spawn(spec Spec) (int, error) {
	if p.in == nil {
		return 0, errors.New("simproc: not a spawner")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	data, err := json.Marshal(spec)
	if err != nil {
		return 0, err
	}
	if _, err := p.in.Write(append(data, '\n')); err != nil {
		return 0, err
	}
	line, err := p.out.ReadBytes('\n')
	if err != nil {
		return 0, fmt.Errorf("simproc: spawner: %w", err)
	}
	var rep spawnReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return 0, err
	}
	if rep.Error != "" {
		return 0, errors.New(rep.Error)
	}
	return rep.Pid, nil
}

// Start starts a process and waits until it is in its cgroup with its final
// command line.
func Start(spec Spec) (*Proc, error) {
	if len(spec.Argv) == 0 {
		return nil, errors.New("simproc: empty argv")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	name := filepath.Base(strings.Fields(spec.Argv[0])[0])
	bin, err := copyBinary(self, spec.BinDir, name)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Args = spec.Argv
	cmd.Env = append(os.Environ(), envExec+"="+bin, envCgroupProcs+"="+strings.Join(spec.CgroupProcs, string(os.PathListSeparator)))
	cmd.SysProcAttr = spec.SysProcAttr
	cmd.Stderr = spec.Stderr
	cmd.Dir = spec.Dir
	if spec.Spawner {
		cmd.Env = append(cmd.Env, envSpawner+"=1")
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stdin io.WriteCloser
	if spec.Spawner {
		if stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("simproc: starting %s: %w", name, err)
	}
	out := bufio.NewReader(stdout)
	ready := make(chan error, 1)
	go func() {
		line, err := out.ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected output %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("simproc: %s did not start: %w", name, err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("simproc: %s did not start in 30s", name)
	}
	return &Proc{Cmd: cmd, Pid: cmd.Process.Pid, out: out, in: stdin}, nil
}

// Stop ends the process and waits for it.
func (p *Proc) Stop() {
	if p == nil || p.Cmd.Process == nil {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-done
	}
}

func copyBinary(src, dir, name string) (string, error) {
	dst := filepath.Join(dir, name)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// A hard link is instant where the directories share a file system.
	if err := os.Link(src, dst); err == nil {
		return dst, nil
	}
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return dst, out.Close()
}

// Cgroups is a tree of test cgroups made beneath this process's own cgroup,
// in one hierarchy (the unified one on cgroup v2, the pids controller on v1).
type Cgroups struct {
	// Root is the directory of the tree's root cgroup.
	Root string
	// Path is Root as /proc/<pid>/cgroup shows it.
	Path string
	dirs []string
}

// NewCgroups makes a cgroup named name beneath this process's own cgroup.
func NewCgroups(name string) (*Cgroups, error) {
	mount, own, err := ownCgroup()
	if err != nil {
		return nil, err
	}
	root := filepath.Join(mount, own, name)
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, fmt.Errorf("making cgroup %s: %w", root, err)
	}
	return &Cgroups{Root: root, Path: filepath.Join(own, name), dirs: []string{root}}, nil
}

// ownCgroup finds the hierarchy to use and this process's place in it.
func ownCgroup() (mount, path string, err error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", "", err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		for _, l := range lines {
			if p, ok := strings.CutPrefix(l, "0::"); ok {
				return "/sys/fs/cgroup", p, nil
			}
		}
	}
	for _, l := range lines {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 {
			for _, c := range strings.Split(parts[1], ",") {
				if c == "pids" {
					return "/sys/fs/cgroup/pids", parts[2], nil
				}
			}
		}
	}
	return "", "", errors.New("no cgroup v2 mount and no v1 pids hierarchy")
}

// Procs makes the cgroup at rel (e.g. "kubepods/burstable/pod<uid>/<id>")
// beneath the root and returns its cgroup.procs file.
func (c *Cgroups) Procs(rel string) (string, error) {
	dir := c.Root
	for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
		dir = filepath.Join(dir, part)
		if _, err := os.Stat(dir); err == nil {
			continue
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", fmt.Errorf("making cgroup %s: %w", dir, err)
		}
		c.dirs = append(c.dirs, dir)
	}
	return filepath.Join(dir, "cgroup.procs"), nil
}

// Remove removes every cgroup made, deepest first. The processes in them
// must have ended.
func (c *Cgroups) Remove() error {
	dirs := append([]string(nil), c.dirs...)
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var errs []error
	for _, d := range dirs {
		for i := 0; ; i++ {
			err := os.Remove(d)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if i == 50 {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
				break
			}
			time.Sleep(20 * time.Millisecond) // the kernel frees a cgroup shortly after its last process exits
		}
	}
	return errors.Join(errs...)
}
