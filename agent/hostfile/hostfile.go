// Package hostfile reads the host's files for the agent: /proc entries,
// /etc/passwd, the kubelet's configuration and static pod manifests.
//
// A file is opened without blocking and read only if it is a regular file,
// and never past a limit, so a FIFO or a device where a host file should be
// cannot hang the agent or fill its memory.
package hostfile

import (
	"fmt"
	"os"
	"slices"
	"syscall"
)

// Read reads at most max bytes of the regular file at path. Procfs entries
// count as regular files (their size reads as 0).
//
// It works on the file descriptor directly: an *os.File would add a poller
// registration and three fcntl calls to every read, and the agent reads
// several /proc files per process.
func Read(path string, max int64) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file but %s", path, kind(st.Mode))
	}
	size := int64(512)
	if st.Size > 0 {
		size = st.Size + 1 // one more, to see the end in the same read
	}
	buf := make([]byte, 0, min(size, max))
	for int64(len(buf)) < max {
		if len(buf) == cap(buf) {
			// Double, but never past max.
			buf = slices.Grow(buf, int(min(int64(cap(buf)), max-int64(len(buf)))))
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n <= 0 {
			break
		}
		buf = buf[:len(buf)+n]
	}
	return buf, nil
}

// ReadProc reads at most max bytes of a /proc pseudo-file such as
// /proc/<pid>/cgroup, in as few system calls as it can: no fstat, and a read
// that returns less than was asked for ends it, since procfs fills every read
// as far as its contents go. It still opens without blocking and stops at
// max, so something else in that place cannot hang or flood the agent.
func ReadProc(path string, max int) ([]byte, error) {
	data, _, err := readProc(path, max, false)
	return data, err
}

// ReadProcOwner is ReadProc that also returns the UID that owns the file.
// Every file under /proc/<pid> has the owner /proc/<pid> has (the process's
// effective UID, or root for a process that is not dumpable), so this tells
// a process's user with one fstat on a file already open instead of a second
// path lookup. When the file opens but cannot be read, the error's Op is
// "read" and the UID is still right.
func ReadProcOwner(path string, max int) ([]byte, uint32, error) {
	return readProc(path, max, true)
}

func readProc(path string, max int, owner bool) ([]byte, uint32, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var uid uint32
	if owner {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return nil, 0, &os.PathError{Op: "fstat", Path: path, Err: err}
		}
		uid = st.Uid
	}
	// A failed read still knows the owner: the file was there.
	data, err := readAll(fd, path, max)
	return data, uid, err
}

func readAll(fd int, path string, max int) ([]byte, error) {
	// Most such files are short: the first read goes to the stack, and only
	// what it read is copied out.
	var first [2048]byte
	n, err := readOnce(fd, first[:min(max, len(first))])
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	if n < len(first) || n >= max {
		return slices.Clone(first[:n]), nil
	}
	buf := make([]byte, 2*len(first))
	copy(buf, first[:])
	total := n
	for total < max {
		if total == len(buf) {
			buf = slices.Grow(buf, min(len(buf), max-total))[:min(2*len(buf), max)]
		}
		n, err := readOnce(fd, buf[total:])
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		total += n
		if n == 0 || total < len(buf) {
			break
		}
	}
	return buf[:total], nil
}

// readOnce makes one read into buf, again when interrupted.
func readOnce(fd int, buf []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		return max(n, 0), err
	}
}

// ReadAll reads the regular file at path whole, or fails when it holds more
// than max bytes.
func ReadAll(path string, max int64) ([]byte, error) {
	data, err := Read(path, max+1)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return data, nil
}

// kind names the kind of file a mode describes, for error messages.
func kind(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFIFO:
		return "a FIFO"
	case syscall.S_IFCHR:
		return "a character device"
	case syscall.S_IFBLK:
		return "a block device"
	case syscall.S_IFSOCK:
		return "a socket"
	case syscall.S_IFDIR:
		return "a directory"
	}
	return "an irregular file"
}
