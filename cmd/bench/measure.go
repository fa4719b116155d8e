package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The measuring helpers every benchmark shares: percentiles, process CPU and
// memory, and the files the peers read.

// summary is the distribution of a set of samples.
type summary struct {
	P50, P95, P99, Mean float64
}

// summarise reads the percentiles (nearest rank) and mean of xs.
func summarise(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	q := func(p float64) float64 { return s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)] }
	return summary{P50: q(0.50), P95: q(0.95), P99: q(0.99), Mean: mean(s)}
}

func sum(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

func mean(xs []float64) float64 { return sum(xs) / float64(len(xs)) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// parseInts reads a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// parallelFor calls f(i) for every i in [0, n) from workers goroutines, each
// taking the next index, and returns when all calls have.
func parallelFor(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// writeJSON writes v, indented, to path; an empty path writes nothing.
func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// procStatus reads a "kB" field (VmRSS, VmHWM) of /proc/PID/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// heapBytes is the live Go heap after a collection: what a structure built
// since an earlier call holds.
func heapBytes() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// cpuSeconds is the user+system CPU time the process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
}

// maxRSSMiB is the process's peak resident set size (Linux reports KiB).
func maxRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Maxrss) / 1024
}

// memSampler records the peak of the Go heap in use by polling; the
// kernel's max RSS (which also counts freed-but-unreturned memory) is read
// separately at the end.
type memSampler struct {
	peak atomic.Uint64
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func startMemSampler(every time.Duration) *memSampler {
	m := &memSampler{done: make(chan struct{})}
	m.sample()
	m.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-m.done:
				return
			case <-tick.C:
				m.sample()
			}
		}
	})
	return m
}

func (m *memSampler) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for {
		old := m.peak.Load()
		if ms.HeapInuse <= old || m.peak.CompareAndSwap(old, ms.HeapInuse) {
			return
		}
	}
}

func (m *memSampler) peakMiB() float64 {
	m.sample()
	return float64(m.peak.Load()) / (1 << 20)
}

func (m *memSampler) stop() {
	m.once.Do(func() { close(m.done) })
	m.wg.Wait()
}
