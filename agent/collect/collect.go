// Package collect reads a node's inventory: its processes (through gopsutil),
// their cgroups and the components they host, the kubelet's configuration and
// static pod manifests, and the node's identity.
package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/process"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/agent/certs"
	"github.com/kubeatlas/kubeatlas/agent/cgroup"
	"github.com/kubeatlas/kubeatlas/agent/hostfile"
	"github.com/kubeatlas/kubeatlas/agent/manifest"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/recognize"
	"github.com/kubeatlas/kubeatlas/redact"
	"github.com/kubeatlas/kubeatlas/safetext"
)

// Config says where and how to collect.
type Config struct {
	// HostRoot is where the host's filesystem is mounted ("/" on the host,
	// e.g. "/host" in a DaemonSet). /proc, /sys and /etc are read beneath it.
	HostRoot string
	// Cluster is the cluster name to report.
	Cluster string
	// NodeName overrides the node name; else the kubelet's
	// --hostname-override, else the hostname.
	NodeName string
	// AgentVersion is reported in the identity.
	AgentVersion string
	// MaxArgvBytes bounds one process's reported command line.
	MaxArgvBytes int
	// MaxProcesses bounds how many processes one scan reports.
	MaxProcesses int
	// Logger receives problems worth a line.
	Logger *slog.Logger

	// ProcDir, SysDir and EtcDir are where /proc, /sys and /etc are read:
	// gopsutil's HOST_PROC, HOST_SYS and HOST_ETC when set, else beneath
	// HostRoot. Validate fills them.
	ProcDir, SysDir, EtcDir string
}

// Defaults for Config.
const (
	DefaultMaxArgvBytes = 32 << 10
	DefaultMaxProcesses = 100_000
)

// Validate fills defaults and checks the config.
func (c *Config) Validate() error {
	if c.HostRoot == "" {
		c.HostRoot = "/"
	}
	if !filepath.IsAbs(c.HostRoot) {
		return fmt.Errorf("host root %q must be an absolute path", c.HostRoot)
	}
	dir := func(set *string, env, sub string) {
		if *set != "" {
			return
		}
		if v := os.Getenv(env); v != "" {
			*set = v
			return
		}
		*set = filepath.Join(c.HostRoot, sub)
	}
	dir(&c.ProcDir, string(common.HostProcEnvKey), "proc")
	dir(&c.SysDir, string(common.HostSysEnvKey), "sys")
	dir(&c.EtcDir, string(common.HostEtcEnvKey), "etc")
	if c.MaxArgvBytes <= 0 {
		c.MaxArgvBytes = DefaultMaxArgvBytes
	}
	if c.MaxProcesses <= 0 {
		c.MaxProcesses = DefaultMaxProcesses
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AgentVersion == "" {
		c.AgentVersion = "dev"
	}
	return nil
}

type procKey struct {
	pid   int32
	start int64 // milliseconds since the epoch
}

// cached is a process read in full, with the command name it had then: a
// changed name under the same (pid, start time) means the process exec'd
// (runc's init becoming the container's program, say) and is read again.
type cached struct {
	comm string
	rec  *v1.Process
}

// Collector scans a node. It remembers what it read so that a process whose
// (pid, start time) is unchanged, or a manifest whose size and mtime are
// unchanged, is not read again. It is not safe for concurrent use.
type Collector struct {
	cfg   Config
	ctx   context.Context // carries gopsutil's host paths
	procs map[procKey]cached
	mans  map[string]*v1.StaticPodManifest
	users *userCache
	certs *certs.Reader
	boot  time.Time
}

// New returns a Collector for cfg.
func New(cfg Config) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	env := common.EnvMap{
		common.HostProcEnvKey: cfg.ProcDir,
		common.HostSysEnvKey:  cfg.SysDir,
		common.HostEtcEnvKey:  cfg.EtcDir,
		common.HostVarEnvKey:  filepath.Join(cfg.HostRoot, "var"),
		common.HostRunEnvKey:  filepath.Join(cfg.HostRoot, "run"),
		common.HostRootEnvKey: cfg.HostRoot,
	}
	// Boot time is read once: every process start time derives from it.
	process.EnableBootTimeCache(true)
	c := &Collector{
		cfg:   cfg,
		ctx:   context.WithValue(context.Background(), common.EnvKey, env),
		procs: map[procKey]cached{},
		mans:  map[string]*v1.StaticPodManifest{},
		users: newUserCache(filepath.Join(cfg.EtcDir, "passwd")),
		certs: certs.New(certs.Config{HostRoot: cfg.HostRoot, ProcDir: cfg.ProcDir}),
	}
	bt, err := bootTime(cfg.ProcDir)
	if err != nil {
		return nil, fmt.Errorf("reading boot time: %w", err)
	}
	c.boot = bt
	return c, nil
}

// Scan reads the node once and returns its inventory.
func (c *Collector) Scan(ctx context.Context) (*v1.NodeInventory, error) {
	procs, stats, err := c.scanProcesses(ctx)
	if err != nil {
		return nil, err
	}
	var kubeletFlags recognize.Flags
	kubeletCwd := ""
	for _, p := range procs {
		for _, hc := range p.Components {
			if hc.Component == v1.ComponentKubelet && hc.Implementation == "kubelet" {
				kubeletFlags = recognize.ParseFlags(argvTail(p.Argv))
				kubeletCwd = c.cwd(p.Pid)
			}
		}
	}
	kubelet := manifest.Kubelet(c.cfg.HostRoot, kubeletCwd, kubeletFlags)
	mans, err := manifest.Dir(c.cfg.HostRoot, kubelet.StaticPodPath, c.mans)
	if err != nil {
		kubelet.Errors = append(kubelet.Errors, err.Error())
		c.cfg.Logger.Warn("reading static pods", "error", err)
	}
	c.mans = make(map[string]*v1.StaticPodManifest, len(mans))
	for _, m := range mans {
		c.mans[m.Path] = m
	}
	// Containers whose runtime the cgroup name does not give run under the
	// kubelet's runtime.
	if rt := runtimeOfEndpoint(kubelet.ContainerRuntimeEndpoint); rt != v1.ContainerRuntime_CONTAINER_RUNTIME_UNSPECIFIED {
		for i, p := range procs {
			if p.PodUid != "" && p.ContainerId != "" && p.Runtime == v1.ContainerRuntime_CONTAINER_RUNTIME_UNSPECIFIED {
				// A record may already have been sent: change a copy, and
				// cache the copy for the next scan.
				q := proto.CloneOf(p)
				q.Runtime = rt
				procs[i] = q
				c.recache(q)
			}
		}
	}
	markSandboxes(procs, c.recache)
	id := c.identity(kubeletFlags)
	safetext.Message(id)
	// os-release and the hostname are free text from the node.
	for _, f := range []*string{&id.Hostname, &id.OsImage, &id.KernelVersion} {
		*f, _ = redact.Text(*f)
	}
	safetext.Message(kubelet)
	for _, m := range mans {
		safetext.Message(m)
	}
	return &v1.NodeInventory{
		Identity:     id,
		Kubelet:      kubelet,
		Processes:    procs,
		Manifests:    mans,
		Stats:        stats,
		Certificates: c.certs.Scan(procs, kubelet, c.cwd),
	}, nil
}

// markSandboxes marks the processes of pod sandboxes as plumbing, from the
// runtime's own evidence rather than the binary's name (a locally built
// pause image need not run "/pause"): containerd's CRI plugin starts one
// shim per pod, "containerd-shim-runc-v2 -namespace k8s.io -id <sandbox id>",
// so a process whose container is that ID is the sandbox. Other namespaces
// (Docker's "moby") start a shim per container and are left alone. Records
// already sent are not changed: a changed copy replaces them.
func markSandboxes(procs []*v1.Process, recache func(*v1.Process)) {
	var sandboxes map[string]bool
	for _, p := range procs {
		if !strings.HasPrefix(recognize.Program(p.Argv), "containerd-shim") {
			continue
		}
		f := recognize.ParseFlags(argvTail(p.Argv))
		ns, _ := f.Get("namespace")
		id, ok := f.Get("id")
		if ns != "k8s.io" || !ok || id == "" {
			continue
		}
		if sandboxes == nil {
			sandboxes = map[string]bool{}
		}
		sandboxes[id] = true
	}
	for i, p := range procs {
		if p.Infrastructure || len(p.Components) > 0 || p.ContainerId == "" || !sandboxes[p.ContainerId] {
			continue
		}
		q := proto.CloneOf(p)
		q.Infrastructure = true
		procs[i] = q
		recache(q)
	}
}

// cwd returns a process's working directory on the host, or "" when it
// cannot be read.
func (c *Collector) cwd(pid int32) string {
	var buf [4096]byte
	n, err := syscall.Readlink(filepath.Join(c.cfg.ProcDir, strconv.Itoa(int(pid)), "cwd"), buf[:])
	if err != nil || n <= 0 || n >= len(buf) || buf[0] != '/' {
		return ""
	}
	// A directory name is text from the node: it goes where argv goes.
	dir, _ := redact.Text(clean(string(buf[:n])))
	return dir
}

func argvTail(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	return argv[1:]
}

func runtimeOfEndpoint(ep string) v1.ContainerRuntime {
	switch {
	case strings.Contains(ep, "containerd"):
		return v1.ContainerRuntime_CONTAINER_RUNTIME_CONTAINERD
	case strings.Contains(ep, "crio"):
		return v1.ContainerRuntime_CONTAINER_RUNTIME_CRIO
	case strings.Contains(ep, "docker"):
		return v1.ContainerRuntime_CONTAINER_RUNTIME_DOCKER
	}
	return v1.ContainerRuntime_CONTAINER_RUNTIME_UNSPECIFIED
}

func (c *Collector) scanProcesses(ctx context.Context) ([]*v1.Process, *v1.ScanStats, error) {
	pids, err := process.PidsWithContext(c.ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("listing processes: %w", err)
	}
	stats := &v1.ScanStats{ProcessesSeen: uint32(len(pids))}
	c.users.refresh()
	seen := make(map[procKey]cached, len(pids))
	procDir := c.cfg.ProcDir
	bootMS := c.boot.UnixMilli()
	out := make([]*v1.Process, 0, len(pids))
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if len(out) >= c.cfg.MaxProcesses {
			stats.ProcessesSkipped += uint32(len(pids) - len(out))
			c.cfg.Logger.Warn("too many processes; the rest are not reported", "limit", c.cfg.MaxProcesses, "seen", len(pids))
			break
		}
		// One read of /proc/<pid>/stat tells whether the process is new.
		dir := filepath.Join(procDir, strconv.Itoa(int(pid)))
		st, err := readStat(dir + "/stat")
		if err != nil {
			stats.ProcessesSkipped++
			continue
		}
		start := bootMS + int64(st.start*1000/userHZ)
		key := procKey{pid, start}
		hit, ok := c.procs[key]
		rec := hit.rec
		if !ok || hit.comm != st.comm {
			rec, err = c.readProcess(&process.Process{Pid: pid}, dir, st, start)
			if err != nil {
				stats.ProcessesSkipped++
				continue
			}
		}
		seen[key] = cached{comm: st.comm, rec: rec}
		out = append(out, rec)
		if len(rec.Components) > 0 {
			stats.ComponentProcesses++
		}
	}
	c.procs = seen
	sort.Slice(out, func(i, j int) bool { return out[i].Pid < out[j].Pid })
	return out, stats, nil
}

// readProcess reads one process in full. A process that vanished returns an
// error; fields that cannot be read (exe of a kernel thread, say) stay empty.
//
// The stat fields (ppid, CPU times, RSS) come from the scan's own read of
// /proc/<pid>/stat, the command line from /proc/<pid>/cmdline; gopsutil reads
// the executable. The user is the owner of /proc/<pid>/cmdline, which is the
// owner of /proc/<pid>: the process's effective UID, as ps shows it.
func (c *Collector) readProcess(p *process.Process, dir string, st procStat, start int64) (*v1.Process, error) {
	rec := &v1.Process{
		Pid:        p.Pid,
		Ppid:       st.ppid,
		StartTime:  timestamppb.New(time.UnixMilli(start)),
		RssBytes:   st.rssPages * pageSize,
		CpuSeconds: float64(st.utime+st.stime) / userHZ,
	}
	raw, uid, err := hostfile.ReadProcOwner(dir+"/cmdline", maxCmdline)
	if pe := (*os.PathError)(nil); err != nil && (!errors.As(err, &pe) || pe.Op != "read") {
		return nil, fmt.Errorf("reading pid %d: %w", p.Pid, err) // it has gone
	}
	rec.User = c.users.name(uid)
	argv := splitCmdline(raw)
	// Redact first, then bound: a cut must never ship the first part of a
	// secret. Both work on valid UTF-8, and the bound cuts on rune boundaries.
	for i, a := range argv {
		argv[i] = safetext.Valid(a)
	}
	rec.Argv, rec.ArgvTruncated = bound(redact.Argv(argv), c.cfg.MaxArgvBytes)
	if exe, err := p.ExeWithContext(c.ctx); err == nil {
		// A file name can hold any text; it goes where argv goes.
		rec.Exe, _ = redact.Text(clean(exe))
	}
	if data, err := hostfile.ReadProc(dir+"/cgroup", 64<<10); err == nil {
		cg := cgroup.Parse(data)
		rec.CgroupPath = clean(cg.Path)
		rec.PodUid = cg.PodUID
		rec.ContainerId = cg.ContainerID
		rec.SystemdUnit = clean(cg.Unit)
		rec.Runtime = runtimeProto(cg.Runtime)
		rec.QosClass = qosProto(cg.QOS)
		if cg.Conmon {
			// conmon watches the container from a cgroup named after it;
			// it is plumbing, not the container's process.
			rec.ContainerId = ""
			rec.Infrastructure = true
		}
	}
	r := recognize.Recognize(rec.Argv)
	rec.Infrastructure = rec.Infrastructure || r.Infrastructure
	cwd, cwdRead := "", false
	for _, comp := range r.Components {
		hc := comp.Proto()
		if hc.ConfigFile != "" && !filepath.IsAbs(hc.ConfigFile) {
			// The process reads it from its working directory.
			if !cwdRead {
				cwd, cwdRead = c.cwd(rec.Pid), true
			}
			if cwd != "" {
				hc.ConfigFile = manifest.Resolve(cwd, hc.ConfigFile)
			}
		}
		rec.Components = append(rec.Components, hc)
	}
	// Whatever else came from the node (a user name from /etc/passwd, a
	// cgroup path, a working directory) is made valid too.
	validText(rec)
	return rec, nil
}

// validText makes every string of a process record valid UTF-8, as
// safetext.Message does, written out for this one message: the scan runs it
// for every new process, where the reflective walk cost 2.5 µs a process.
// TestValidTextCoversProcess fails when a string field is added and not here.
func validText(p *v1.Process) {
	p.User, p.Exe, p.CgroupPath = clean(p.User), clean(p.Exe), clean(p.CgroupPath)
	p.ContainerId, p.PodUid, p.SystemdUnit = clean(p.ContainerId), clean(p.PodUid), clean(p.SystemdUnit)
	validWords(p.Argv)
	for _, hc := range p.Components {
		hc.Component, hc.Implementation, hc.ConfigFile = clean(hc.Component), clean(hc.Implementation), clean(hc.ConfigFile)
		for _, f := range hc.Flags {
			f.Name = clean(f.Name)
			validWords(f.Values)
		}
	}
}

func validWords(words []string) {
	for i, w := range words {
		words[i] = clean(w)
	}
}

// bound makes every word of argv valid UTF-8 and keeps argv within max
// bytes, cutting its last word on a rune boundary.
func bound(argv []string, max int) ([]string, bool) {
	total := 0
	out := make([]string, 0, len(argv))
	for _, a := range argv {
		a = safetext.Valid(a)
		if total+len(a) > max {
			if rest := max - total; rest > 0 {
				out = append(out, safetext.Cut(a, rest))
			}
			return out, true
		}
		total += len(a)
		out = append(out, a)
	}
	return out, false
}

func clean(s string) string { return safetext.Valid(s) }

func runtimeProto(r cgroup.Runtime) v1.ContainerRuntime {
	switch r {
	case cgroup.RuntimeContainerd:
		return v1.ContainerRuntime_CONTAINER_RUNTIME_CONTAINERD
	case cgroup.RuntimeCRIO:
		return v1.ContainerRuntime_CONTAINER_RUNTIME_CRIO
	case cgroup.RuntimeDocker:
		return v1.ContainerRuntime_CONTAINER_RUNTIME_DOCKER
	case cgroup.RuntimePodman:
		return v1.ContainerRuntime_CONTAINER_RUNTIME_PODMAN
	}
	return v1.ContainerRuntime_CONTAINER_RUNTIME_UNSPECIFIED
}

func qosProto(q cgroup.QOS) v1.QOSClass {
	switch q {
	case cgroup.QOSGuaranteed:
		return v1.QOSClass_QOS_CLASS_GUARANTEED
	case cgroup.QOSBurstable:
		return v1.QOSClass_QOS_CLASS_BURSTABLE
	case cgroup.QOSBestEffort:
		return v1.QOSClass_QOS_CLASS_BEST_EFFORT
	}
	return v1.QOSClass_QOS_CLASS_UNSPECIFIED
}

// userHZ is the unit of /proc/<pid>/stat times on Linux.
const userHZ = 100

var pageSize = uint64(os.Getpagesize())

// procStat is what one read of /proc/<pid>/stat gives.
type procStat struct {
	comm         string
	ppid         int32
	utime, stime uint64 // clock ticks
	start        uint64 // clock ticks since boot
	rssPages     uint64
}

// readStat reads /proc/<pid>/stat with raw system calls: it runs for every
// process on every scan, and os.Open's extra fcntl and poller work would
// double its cost.
func readStat(path string) (procStat, error) {
	var buf [1024]byte
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return procStat{}, err
	}
	n, err := syscall.Read(fd, buf[:])
	syscall.Close(fd)
	if err != nil {
		return procStat{}, err
	}
	return parseStat(buf[:max(n, 0)])
}

// parseStat parses /proc/<pid>/stat. The command name is in parentheses and
// may itself hold spaces and parentheses, so fields are counted from the last
// ')'. Only the five fields the agent uses are converted, without splitting
// the line.
//
// It is kept by hand rather than taken from prometheus/procfs: procfs parses
// stat with fmt.Fscan, 17 µs against 7 µs a process here, and every scan
// reads the stat of every process (BENCHMARKS.md).
func parseStat(data []byte) (procStat, error) {
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return procStat{}, errors.New("malformed stat: no command name")
	}
	st := procStat{comm: string(data[open+1 : end])}
	// After ") ": state(3) ppid(4) … utime(14) stime(15) … starttime(22) vsize(23) rss(24).
	var ppid, utime, stime, start, rss uint64
	rest, field := data[end+1:], 2
	for field < 24 {
		rest = bytes.TrimLeft(rest, " \n")
		if len(rest) == 0 {
			return procStat{}, errors.New("malformed stat: too few fields")
		}
		field++
		n := bytes.IndexAny(rest, " \n")
		if n < 0 {
			n = len(rest)
		}
		var dst *uint64
		switch field {
		case 4:
			dst = &ppid
		case 14:
			dst = &utime
		case 15:
			dst = &stime
		case 22:
			dst = &start
		case 24:
			dst = &rss
		}
		if dst != nil {
			v, err := strconv.ParseUint(string(rest[:n]), 10, 64)
			if err != nil {
				return procStat{}, fmt.Errorf("malformed stat: field %d: %w", field, err)
			}
			*dst = v
		}
		rest = rest[n:]
	}
	if ppid > math.MaxInt32 {
		return procStat{}, fmt.Errorf("malformed stat: ppid %d", ppid)
	}
	st.ppid, st.utime, st.stime, st.start, st.rssPages = int32(ppid), utime, stime, start, rss
	return st, nil
}

// maxCmdline bounds one read of /proc/<pid>/cmdline. The kernel keeps argv
// within ARG_MAX (a quarter of the stack limit, 2 MiB by default), so this
// reads any real command line whole; redaction then sees every word before
// bound cuts it.
const maxCmdline = 8 << 20

// splitCmdline splits /proc/<pid>/cmdline as gopsutil's CmdlineSlice does
// (trailing NULs dropped, split on NUL). The file is read by hand, with raw
// system calls and an fstat on it for the user: gopsutil's os.ReadFile adds
// an fstat, two fcntl calls and a poller registration, and the user would
// take a second path lookup, for every process of every scan (BENCHMARKS.md).
func splitCmdline(data []byte) []string {
	if len(data) == 0 {
		return nil
	}
	data = bytes.TrimRight(data, "\x00")
	argv := make([]string, 0, bytes.Count(data, []byte{0})+1)
	for word := range bytes.SplitSeq(data, []byte{0}) {
		argv = append(argv, string(word))
	}
	return argv
}

func readLimited(path string, max int64) ([]byte, error) { return hostfile.Read(path, max) }

// recache replaces the cached record of a process with a changed copy.
func (c *Collector) recache(p *v1.Process) {
	key := procKey{p.Pid, p.StartTime.AsTime().UnixMilli()}
	if hit, ok := c.procs[key]; ok {
		hit.rec = p
		c.procs[key] = hit
	}
}
