package collect

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moby/sys/user"
	"github.com/prometheus/procfs"

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

// bootTime reads btime from the stat file of the proc file system at
// procDir, through prometheus/procfs.
func bootTime(procDir string) (time.Time, error) {
	fs, err := procfs.NewFS(procDir)
	if err != nil {
		return time.Time{}, err
	}
	st, err := fs.Stat()
	if err != nil {
		return time.Time{}, err
	}
	if st.BootTime == 0 || st.BootTime > 1<<40 {
		return time.Time{}, fmt.Errorf("%s/stat: no usable btime line (%d)", procDir, st.BootTime)
	}
	return time.Unix(int64(st.BootTime), 0), nil
}

// userCache maps UIDs to names from the host's /etc/passwd (not the agent
// container's), re-reading the file only when it changes, checked once a
// scan.
type userCache struct {
	path  string
	mu    sync.Mutex
	mtime time.Time
	names map[uint32]string
}

func newUserCache(path string) *userCache {
	return &userCache{path: path, names: map[uint32]string{}}
}

// parsePasswd maps UIDs to user names from /etc/passwd, parsed by
// moby/sys/user; the first name of a UID wins.
func parsePasswd(data []byte) map[uint32]string {
	names := map[uint32]string{}
	users, err := user.ParsePasswdFilter(bytes.NewReader(data), func(u user.User) bool {
		return u.Name != "" && u.Uid >= 0 && u.Uid <= math.MaxUint32
	})
	if err != nil {
		return names
	}
	for _, u := range users {
		if _, dup := names[uint32(u.Uid)]; !dup {
			names[uint32(u.Uid)] = safetext.Cut(safetext.Valid(u.Name), 256)
		}
	}
	return names
}

// refresh re-reads the file if it changed; the scan calls it once, not once
// per process.
func (u *userCache) refresh() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if st, err := os.Stat(u.path); err == nil && !st.ModTime().Equal(u.mtime) {
		u.mtime = st.ModTime()
		u.names = map[uint32]string{}
		if data, err := readLimited(u.path, 4<<20); err == nil {
			u.names = parsePasswd(data)
		}
	}
}

func (u *userCache) name(uid uint32) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if n, ok := u.names[uid]; ok {
		return n
	}
	return strconv.FormatUint(uint64(uid), 10)
}
