package server

import (
	"runtime/debug"
	"sync"
	"time"
)

// memBudget admits decodes against a memory budget in bytes: a request
// holds its image's imageio.Info.DecodeBytes from before the decode until
// its descriptor is made, and one that does not fit is refused at once
// (503 with Retry-After) rather than queued holding its upload, so memory
// stays bounded whatever arrives. When the last holder of a burst leaves,
// the freed pixel buffers are handed back to the operating system
// (debug.FreeOSMemory): Go's background scavenger alone returned them only
// over minutes, leaving RSS a gigabyte above idle after four hostile PNGs.
type memBudget struct {
	mu    sync.Mutex
	limit int64
	inUse int64
	// released counts bytes freed since memory was last returned; a burst
	// under returnAfter is left to the scavenger, since FreeOSMemory costs a
	// full collection.
	released    int64
	returnAfter int64
	lastReturn  time.Time
	returning   bool
}

// newMemBudget admits up to limit bytes at once.
func newMemBudget(limit int64) *memBudget {
	return &memBudget{limit: limit, returnAfter: min(limit/4, 128<<20)}
}

// tryAcquire reserves n bytes if they fit.
func (b *memBudget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inUse+n > b.limit {
		return false
	}
	b.inUse += n
	return true
}

// release gives n bytes back. The last release of a large burst schedules
// returning memory to the OS, at most once a second, done only if no decode
// is under way by then (a busy server reuses the memory instead).
func (b *memBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inUse -= n
	b.released += n
	if b.inUse == 0 && b.released >= b.returnAfter && !b.returning {
		b.returning = true
		time.AfterFunc(max(0, time.Second-time.Since(b.lastReturn)), b.returnMemory)
	}
}

func (b *memBudget) returnMemory() {
	b.mu.Lock()
	idle := b.inUse == 0
	if idle {
		b.released = 0
	} else {
		b.returning = false // the next release to zero schedules it again
	}
	b.mu.Unlock()
	if !idle {
		return
	}
	debug.FreeOSMemory()
	b.mu.Lock()
	b.returning, b.lastReturn = false, time.Now()
	b.mu.Unlock()
}

// used is the bytes held now.
func (b *memBudget) used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inUse
}
