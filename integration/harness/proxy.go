package harness

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards loopback TCP connections to a target and can cut the link:
// every connection is closed and new ones are refused until it heals.
type Proxy struct {
	Addr   string
	target string
	mu     sync.Mutex
	lis    net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// StartProxy listens on a loopback port and forwards to target.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: lis.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.serve(lis)
	t.Cleanup(func() {
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *Proxy) serve(lis net.Listener) {
	p.mu.Lock()
	p.lis = lis
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			p.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer p.wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
				p.mu.Lock()
				delete(p.conns, dst)
				delete(p.conns, src)
				p.mu.Unlock()
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
}

// Cut closes the listener and every connection.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis != nil {
		p.lis.Close()
		p.lis = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// Heal listens again on the same address.
func (p *Proxy) Heal() error {
	lis, err := net.Listen("tcp", p.Addr)
	if err != nil {
		return errors.Join(errors.New("re-listening on "+p.Addr), err)
	}
	p.serve(lis)
	return nil
}
