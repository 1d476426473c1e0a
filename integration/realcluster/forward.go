package realcluster

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// dialIn dials addr from inside the node's network namespace. The socket is
// made on a thread moved into the namespace and keeps it; the thread moves
// back before anything else runs on it.
func (n *Node) dialIn(addr string) (net.Conn, error) {
	target, err := os.Open("/run/netns/" + n.NetNS)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, err
	}
	defer home.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("entering the node's network namespace: %w", err)
	}
	conn, dialErr := net.Dial("tcp", addr)
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread cannot go home: keep it locked so that it dies with
		// this goroutine instead of running other work in the namespace.
		runtime.LockOSThread()
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("leaving the node's network namespace: %w", err)
	}
	return conn, dialErr
}

// Forward listens on a loopback port of this host and forwards each
// connection to addr inside the node, so that the aggregator and the CLI
// reach the node's API server as a user's machine would reach a cluster's.
// It returns the local address; t.Cleanup (through the node) closes it.
func (n *Node) Forward(addr string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	n.cleanups = append(n.cleanups, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				track(c, true)
				defer func() { c.Close(); track(c, false) }()
				up, err := n.dialIn(addr)
				if err != nil {
					return
				}
				track(up, true)
				defer func() { up.Close(); track(up, false) }()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
	return ln.Addr().String(), nil
}
