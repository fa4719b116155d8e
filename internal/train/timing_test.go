//go:build unix

package train

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"prodsearch/internal/describe"
)

// cpuTime is user+system CPU of this process: on a shared machine it shows
// what a phase costs independently of other load (wall time on 2 idle cores
// is between cpuTime/2 and cpuTime).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestTimingFullSize measures whitening and head training on
// GroceryStore-sized synthetic data (2,715 images of 41 classes, 1280-d, 2
// views each). It takes minutes on 2 cores, so it only runs with
// PRODSEARCH_TRAIN_TIMING=1.
func TestTimingFullSize(t *testing.T) {
	if os.Getenv("PRODSEARCH_TRAIN_TIMING") == "" {
		t.Skip("set PRODSEARCH_TRAIN_TIMING=1 to run")
	}
	w := newWorld(21, 1280, 32, 64)
	x, l := w.sample(1, 41, 67, 2, "c")
	x, l = x[:2715], l[:2715]
	xte, lte := w.sample(2, 25, 40, 1, "test")
	te := view0(xte)
	t.Logf("raw held-out mAP %.3f", heldOutMAP(t, nil, te, lte))

	start, cpu := time.Now(), cpuTime()
	if _, err := FitLw(view0(x), l, 512); err != nil {
		t.Fatal(err)
	}
	t.Logf("FitLw 2715x1280 -> 512: wall %.1fs cpu %.1fs", time.Since(start).Seconds(), (cpuTime() - cpu).Seconds())

	// The default recipe end to end.
	run := func(name string, f func(cb func(Epoch) error) (describe.Heads, error)) {
		start, cpu := time.Now(), cpuTime()
		var sum time.Duration
		n := 0
		hs, err := f(func(e Epoch) error { sum += e.Elapsed; n++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		total, used := time.Since(start), cpuTime()-cpu
		t.Logf("%-32s wall %5.1fs cpu %5.1fs, %2d epochs, %4d ms/epoch (wall), held-out mAP %.3f",
			name, total.Seconds(), used.Seconds(), n, sum.Milliseconds()/int64(n), heldOutMAP(t, hs, te, lte))
	}
	cfg := DefaultConfig()
	run("Fit default (pca512+normsoftmax)", func(cb func(Epoch) error) (describe.Heads, error) {
		return Fit(context.Background(), cfg, x, l, cb)
	})

	// Variants reuse one whitening through FitHead.
	start, cpu = time.Now(), cpuTime()
	prefix, err := FitWhitening(cfg, view0(x), l)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FitWhitening pca 2715x1280 -> 512: wall %.1fs cpu %.1fs", time.Since(start).Seconds(), (cpuTime() - cpu).Seconds())
	variant := func(name string, c Config, prefix describe.Heads) {
		run(name, func(cb func(Epoch) error) (describe.Heads, error) {
			return FitHead(context.Background(), c, prefix, x, l, cb)
		})
	}
	c := cfg
	c.Epochs = 5
	variant("raw 1280 -> linear 512", c, nil)
	variant("pca512 -> ms", c.WithLoss(LossMS), prefix)
	variant("pca512 -> proxyanchor", c.WithLoss(LossProxyAnchor), prefix)
	c.Hidden = 1024
	variant("pca512 -> mlp 1024 -> 512", c, prefix)
}
