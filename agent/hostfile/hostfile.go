// Package hostfile reads the host's files for the agent: /proc entries,
// /etc/passwd, the kubelet's configuration and static pod manifests.
//
// A file is opened without blocking and read only if it is a regular file,
// and never past a limit, so a FIFO or a device where a host file should be
// cannot hang the agent or fill its memory.
package hostfile

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// Read reads at most max bytes of the regular file at path. Procfs entries
// count as regular files (their size reads as 0).
func Read(path string, max int64) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file but %s", path, kind(st.Mode()))
	}
	return io.ReadAll(io.LimitReader(f, max))
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
func kind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return "an irregular file"
}
