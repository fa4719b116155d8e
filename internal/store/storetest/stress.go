package storetest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// StressConfig is one concurrency run against a Model.
type StressConfig struct {
	Duration         time.Duration
	Writers, Readers int
	// Seed picks the random streams: writer w draws from PCG(w, Seed),
	// reader g from PCG(g, Seed+1).
	Seed uint64
	// Write performs one write of writer w (each writer owns its IDs);
	// Read performs one read and checks it against a Window.
	Write func(w int, r *rand.Rand) error
	Read  func(r *rand.Rand) error
	// Verify checks the whole store against the model; it runs every 300 ms
	// with every writer paused, so it sees no write in flight, and at the end.
	Verify func() error
}

// Stress runs writers and readers at once for the configured time and
// returns the number of quiescent checks that passed, stopping at the first
// error, which names the goroutine or check that failed.
func Stress(c StressConfig) (quiescent int, err error) {
	// Writers hold gate for reading during each write; the quiescent
	// checker takes it for writing.
	var gate sync.RWMutex
	var first atomic.Value
	fail := func(e error) { first.CompareAndSwap(nil, e) }
	deadline := time.Now().Add(c.Duration)
	running := func() bool { return time.Now().Before(deadline) && first.Load() == nil }
	var wg sync.WaitGroup
	for w := range c.Writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), c.Seed))
			for running() {
				gate.RLock()
				err := c.Write(w, r)
				gate.RUnlock()
				if err != nil {
					fail(fmt.Errorf("writer %d: %w", w, err))
					return
				}
			}
		})
	}
	for g := range c.Readers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), c.Seed+1))
			for running() {
				if err := c.Read(r); err != nil {
					fail(fmt.Errorf("reader %d: %w", g, err))
					return
				}
			}
		})
	}
	var checks atomic.Int64
	wg.Go(func() {
		for running() {
			time.Sleep(300 * time.Millisecond)
			gate.Lock()
			err := c.Verify()
			gate.Unlock()
			if err != nil {
				fail(fmt.Errorf("quiescent point: %w", err))
				return
			}
			checks.Add(1)
		}
	})
	wg.Wait()
	if e, ok := first.Load().(error); ok {
		return int(checks.Load()), e
	}
	if err := c.Verify(); err != nil {
		return int(checks.Load()), fmt.Errorf("at the end: %w", err)
	}
	return int(checks.Load()), nil
}
