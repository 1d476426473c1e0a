package collect

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/recognize"
	"github.com/kubeatlas/kubeatlas/safetext"
)

// identity says which node this is. The node name is the configured one, else
// the kubelet's --hostname-override, else the hostname, lower-cased as the
// kubelet does.
func (c *Collector) identity(kubeletFlags recognize.Flags) *v1.NodeIdentity {
	root := c.cfg.HostRoot
	proc, etc := c.cfg.ProcDir, c.cfg.EtcDir
	hostname := firstLine(filepath.Join(proc, "sys", "kernel", "hostname"))
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	name := c.cfg.NodeName
	if name == "" {
		if v, ok := kubeletFlags.Get("hostname-override"); ok && v != "true" {
			name = v
		}
	}
	if name == "" {
		name = strings.ToLower(strings.TrimSpace(hostname))
	}
	return &v1.NodeIdentity{
		Cluster:       c.cfg.Cluster,
		NodeName:      clean(name),
		Hostname:      clean(hostname),
		MachineId:     clean(firstLine(filepath.Join(etc, "machine-id"))),
		BootId:        clean(firstLine(filepath.Join(proc, "sys", "kernel", "random", "boot_id"))),
		KernelVersion: clean(firstLine(filepath.Join(proc, "sys", "kernel", "osrelease"))),
		OsImage:       clean(osImage(root, etc)),
		AgentVersion:  c.cfg.AgentVersion,
		WallClock:     timestamppb.Now(),
		BootTime:      timestamppb.New(c.boot),
	}
}

func firstLine(path string) string {
	data, err := readLimited(path, 4096)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSpace(line)
}

func osImage(root, etc string) string {
	for _, p := range []string{filepath.Join(etc, "os-release"), filepath.Join(root, "usr/lib/os-release")} {
		data, err := readLimited(p, 64<<10)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				return strings.Trim(v, `"'`)
			}
		}
	}
	return ""
}

// bootTime reads btime from /proc/stat.
func bootTime(path string) (time.Time, error) {
	data, err := readLimited(path, 1<<20)
	if err != nil {
		return time.Time{}, err
	}
	t, err := parseBootTime(data)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// parseBootTime finds the btime line of /proc/stat.
func parseBootTime(data []byte) (time.Time, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || s < 0 || s > 1<<40 {
				return time.Time{}, fmt.Errorf("parsing btime %q: not a time", safetext.Ellipsis(v, 32))
			}
			return time.Unix(s, 0), nil
		}
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, errors.New("no btime line")
}

// userCache maps UIDs to names from the host's /etc/passwd (not the agent
// container's), re-reading the file only when it changes.
type userCache struct {
	path  string
	mu    sync.Mutex
	mtime time.Time
	names map[uint32]string
}

func newUserCache(path string) *userCache {
	return &userCache{path: path, names: map[uint32]string{}}
}

// parsePasswd maps UIDs to user names from /etc/passwd lines; the first
// name of a UID wins, and lines that are not name:x:uid:… are skipped.
func parsePasswd(data []byte) map[uint32]string {
	names := map[uint32]string{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.SplitN(line, ":", 4)
		if len(f) < 3 || f[0] == "" {
			continue
		}
		id, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(id)]; !dup {
			names[uint32(id)] = safetext.Cut(f[0], 256)
		}
	}
	return names
}

func (u *userCache) name(uid uint32) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if st, err := os.Stat(u.path); err == nil && !st.ModTime().Equal(u.mtime) {
		u.mtime = st.ModTime()
		u.names = map[uint32]string{}
		if data, err := readLimited(u.path, 4<<20); err == nil {
			u.names = parsePasswd(data)
		}
	}
	if n, ok := u.names[uid]; ok {
		return n
	}
	return strconv.FormatUint(uint64(uid), 10)
}
