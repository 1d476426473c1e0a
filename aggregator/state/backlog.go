package state

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Backlog tells work that can wait when a writer has changes queued, so
// that the writer gets the CPU first. A fleet view marks it while records
// wait in its bucket watch; its watchers hold back their sends meanwhile,
// for a bounded time (see query.Server.IngestFirst), so that fanning a burst
// out to many watchers does not slow the burst's own ingest.
//
// The zero Backlog is clear. A nil *Backlog is always clear.
type Backlog struct {
	busy    atomic.Bool
	periods atomic.Uint64
	mu      sync.Mutex
	clear   chan struct{} // closed when the backlog clears; nil while clear
}

// Set marks the writer as having changes queued (true) or not (false).
func (b *Backlog) Set(busy bool) {
	if b == nil || b.busy.Load() == busy {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.busy.Load() == busy {
		return
	}
	b.busy.Store(busy)
	switch {
	case busy:
		b.clear = make(chan struct{})
		b.periods.Add(1)
	case b.clear != nil:
		close(b.clear)
		b.clear = nil
	}
}

// Periods returns how many times the writer began to have changes queued.
func (b *Backlog) Periods() uint64 {
	if b == nil {
		return 0
	}
	return b.periods.Load()
}

// Busy reports whether the writer has changes queued.
func (b *Backlog) Busy() bool { return b != nil && b.busy.Load() }

// Wait returns when the backlog clears, d has passed, or ctx ends,
// whichever is first, and reports whether the writer is still busy.
func (b *Backlog) Wait(ctx context.Context, d time.Duration) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	ch := b.clear
	b.mu.Unlock()
	if ch == nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
	return b.Busy()
}
