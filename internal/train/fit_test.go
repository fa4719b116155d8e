package train

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"prodsearch/internal/describe"
)

// smallConfig is a quick recipe for the 64-d synthetic world.
func smallConfig(loss string) Config {
	c := DefaultConfig().WithLoss(loss)
	c.Dim = 16
	c.Epochs = 25
	c.BatchP, c.BatchK = 8, 4
	c.LR = 5e-3
	c.Warmup = 1
	c.Whiten = WhitenNone
	c.WhitenDim = 0
	return c
}

// TestHeadImprovesHeldOutClasses trains on 20 classes and evaluates
// leave-one-out mAP on 10 different classes from the same world: the learned
// head must generalise, not memorise. Every loss is covered, plus the MLP
// head and the default whitening + normsoftmax pipeline.
func TestHeadImprovesHeldOutClasses(t *testing.T) {
	w := newWorld(11, 64, 8, 8)
	xtr, ltr := w.sample(1, 20, 20, 2, "train")
	xte, lte := w.sample(2, 10, 20, 1, "test")
	te := view0(xte)
	raw := heldOutMAP(t, nil, te, lte)

	cases := map[string]Config{}
	for _, l := range []string{LossNormSoftmax, LossArcFace, LossProxyAnchor, LossMS, LossTriplet} {
		cases[l] = smallConfig(l)
	}
	mlp := smallConfig(LossNormSoftmax)
	mlp.Hidden = 32
	cases["normsoftmax+mlp"] = mlp
	sgd := smallConfig(LossMS)
	sgd.Optimizer, sgd.LR, sgd.Schedule = OptSGD, 0.05, SchedStep
	cases["ms+sgd+step"] = sgd
	def := smallConfig(LossNormSoftmax)
	def.Whiten, def.WhitenDim, def.Dim = WhitenPCA, 32, 32
	def.LR = 1e-3
	cases["pca+normsoftmax"] = def

	names := make([]string, 0, len(cases))
	for k := range cases {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		cfg := cases[name]
		var losses []float64
		hs, err := Fit(context.Background(), cfg, xtr, ltr, func(e Epoch) error {
			losses = append(losses, e.Loss)
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := hs.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := heldOutMAP(t, hs, te, lte)
		t.Logf("%-16s held-out mAP raw %.3f -> %.3f (loss %.3f -> %.3f)", name, raw, got, losses[0], losses[len(losses)-1])
		if got < raw+0.2 {
			t.Errorf("%s: held-out mAP %.3f, raw %.3f: no clear improvement", name, got, raw)
		}
		if losses[len(losses)-1] >= losses[0] {
			t.Errorf("%s: training loss did not decrease (%v)", name, losses)
		}
	}
}

func TestFitDeterministic(t *testing.T) {
	w := newWorld(12, 32, 4, 4)
	x, l := w.sample(1, 8, 10, 3, "c")
	cfg := smallConfig(LossMS)
	cfg.Epochs = 4
	cfg.Whiten, cfg.WhitenDim = WhitenLw, 16
	cfg.Dim = 8
	run := func(seed int64) describe.Heads {
		c := cfg
		c.Seed = seed
		hs, err := Fit(context.Background(), c, x, l, nil)
		if err != nil {
			t.Fatal(err)
		}
		return hs
	}
	a, b, c := run(7), run(7), run(8)
	if !slices.Equal(a[1].W, b[1].W) || !slices.Equal(a[0].W, b[0].W) {
		t.Fatal("same seed gave different heads")
	}
	if slices.Equal(a[1].W, c[1].W) {
		t.Fatal("different seeds gave identical heads")
	}
}

func TestFitCallbackAndCancel(t *testing.T) {
	w := newWorld(13, 16, 3, 3)
	x, l := w.sample(1, 4, 6, 1, "c")
	cfg := smallConfig(LossNormSoftmax)
	cfg.Dim = 8
	cfg.Epochs = 10

	// ErrStop ends training cleanly with that epoch's heads.
	var seen []int
	var snap describe.Heads
	hs, err := Fit(context.Background(), cfg, x, l, func(e Epoch) error {
		seen = append(seen, e.N)
		if e.Steps <= 0 || e.Elapsed <= 0 || e.LR <= 0 || math.IsNaN(e.Loss) {
			t.Errorf("epoch %+v has empty fields", e)
		}
		snap = e.Heads
		if e.N == 3 {
			return ErrStop
		}
		return nil
	})
	if err != nil || !slices.Equal(seen, []int{1, 2, 3}) || !slices.Equal(hs[0].W, snap[0].W) {
		t.Fatalf("ErrStop: err %v, epochs %v", err, seen)
	}

	// Cancellation keeps the last finished epoch.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hs, err = Fit(ctx, cfg, x, l, func(e Epoch) error {
		snap = e.Heads
		if e.N == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || hs == nil || !slices.Equal(hs[0].W, snap[0].W) {
		t.Fatalf("cancel: err %v, heads %v", err, hs != nil)
	}

	// Cancelled before any epoch: no heads.
	hs, err = Fit(ctx, cfg, x, l, nil)
	if !errors.Is(err, context.Canceled) || hs != nil {
		t.Fatalf("pre-cancelled: err %v heads %v", err, hs)
	}

	// A callback error stops training and is wrapped.
	boom := errors.New("disk full")
	hs, err = Fit(context.Background(), cfg, x, l, func(e Epoch) error { return boom })
	if !errors.Is(err, boom) || hs == nil {
		t.Fatalf("callback error: %v", err)
	}

	// Snapshots are deep copies: later epochs must not change them.
	var first describe.Heads
	var firstW []float32
	_, err = Fit(context.Background(), cfg, x, l, func(e Epoch) error {
		if e.N == 1 {
			first = e.Heads
			firstW = slices.Clone(e.Heads[0].W)
		}
		return nil
	})
	if err != nil || !slices.Equal(first[0].W, firstW) {
		t.Fatalf("snapshot was modified by training (err %v)", err)
	}
}

func TestFitWhitenOnly(t *testing.T) {
	w := newWorld(14, 16, 3, 3)
	x, l := w.sample(1, 4, 6, 1, "c")
	cfg := smallConfig(LossNone)
	cfg.Whiten, cfg.WhitenDim = WhitenPCA, 8
	hs, err := Fit(context.Background(), cfg, x, l, nil)
	if err != nil || len(hs) != 1 || hs[0].Kind != describe.KindPCA || hs.OutDim() != 8 {
		t.Fatalf("whiten only: %v %+v", err, hs)
	}
	cfg.Whiten = WhitenNone
	hs, err = Fit(context.Background(), cfg, x, l, nil)
	if err != nil || len(hs) != 0 {
		t.Fatalf("nothing to do: %v %v", err, hs)
	}
}

// TestFitHeadReusesWhitening: a whitening fitted once can be reused across
// head trainings, giving the same result as Fit.
func TestFitHeadReusesWhitening(t *testing.T) {
	w := newWorld(16, 24, 3, 3)
	x, l := w.sample(1, 5, 8, 2, "c")
	cfg := smallConfig(LossNormSoftmax)
	cfg.Whiten, cfg.WhitenDim, cfg.Dim, cfg.Epochs = WhitenLw, 12, 8, 3
	prefix, err := FitWhitening(cfg, view0(x), l)
	if err != nil {
		t.Fatal(err)
	}
	a, err := FitHead(context.Background(), cfg, prefix, x, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Fit(context.Background(), cfg, x, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 2 || !slices.Equal(a[1].W, b[1].W) || !slices.Equal(a[0].W, b[0].W) {
		t.Fatal("FitHead(FitWhitening) differs from Fit")
	}
	if &a[0].W[0] == &prefix[0].W[0] {
		t.Fatal("result shares storage with the prefix")
	}
	short := describe.Heads{prefix[0]}
	short[0].In = 5
	if _, err := FitHead(context.Background(), cfg, short, x, l, nil); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("invalid prefix: %v", err)
	}
	wide := make([][][]float32, len(x))
	for i := range x {
		wide[i] = [][]float32{append(slices.Clone(x[i][0]), 0)}
	}
	if _, err := FitHead(context.Background(), cfg, prefix, wide, l, nil); !errors.Is(err, ErrDimMismatch) {
		t.Fatalf("prefix/descriptor mismatch: %v", err)
	}
}

func TestFitBadInput(t *testing.T) {
	w := newWorld(15, 8, 2, 2)
	x, l := w.sample(1, 3, 4, 2, "c")
	cfg := smallConfig(LossNormSoftmax)
	cfg.Dim = 4
	cfg.Epochs = 1
	mutX := func(f func(x [][][]float32)) [][][]float32 {
		c := make([][][]float32, len(x))
		for i := range x {
			c[i] = make([][]float32, len(x[i]))
			for v := range x[i] {
				c[i][v] = slices.Clone(x[i][v])
			}
		}
		f(c)
		return c
	}
	mutL := func(f func(l []string)) []string {
		c := slices.Clone(l)
		f(c)
		return c
	}
	withCfg := func(f func(c *Config)) Config {
		c := cfg
		f(&c)
		return c
	}
	cases := []struct {
		name string
		cfg  Config
		x    [][][]float32
		l    []string
		want error
	}{
		{"no images", cfg, nil, nil, ErrNoData},
		{"image without views", cfg, mutX(func(x [][][]float32) { x[2] = nil }), l, ErrNoData},
		{"dim mismatch", cfg, mutX(func(x [][][]float32) { x[5][1] = x[5][1][:3] }), l, ErrDimMismatch},
		{"NaN", cfg, mutX(func(x [][][]float32) { x[1][1][0] = float32(math.NaN()) }), l, ErrNotFinite},
		{"Inf", cfg, mutX(func(x [][][]float32) { x[0][0][7] = float32(math.Inf(-1)) }), l, ErrNotFinite},
		{"label count", cfg, x, l[:4], ErrBadLabels},
		{"empty label", cfg, x, mutL(func(l []string) { l[3] = "" }), ErrBadLabels},
		{"one-image class", cfg, x, mutL(func(l []string) { l[0] = "lonely" }), ErrSmallClass},
		{"one class", cfg, x, mutL(func(l []string) {
			for i := range l {
				l[i] = "all"
			}
		}), ErrFewClasses},
		{"unknown loss", withCfg(func(c *Config) { c.Loss = "contrastive" }), x, l, ErrBadConfig},
		{"zero dim", withCfg(func(c *Config) { c.Dim = 0 }), x, l, ErrBadConfig},
		{"NaN lr", withCfg(func(c *Config) { c.LR = math.NaN() }), x, l, ErrBadConfig},
		{"bad whiten", withCfg(func(c *Config) { c.Whiten = "zca" }), x, l, ErrBadConfig},
		{"whiten dim too big", withCfg(func(c *Config) { c.Whiten, c.WhitenDim = WhitenPCA, 99 }), x, l, ErrBadConfig},
		{"pair loss with K=1", withCfg(func(c *Config) { c.Loss, c.BatchK = LossMS, 1 }), x, l, ErrBadConfig},
		{"bad optimizer", withCfg(func(c *Config) { c.Optimizer = "lbfgs" }), x, l, ErrBadConfig},
		{"bad schedule", withCfg(func(c *Config) { c.Schedule = "poly" }), x, l, ErrBadConfig},
		{"momentum 1", withCfg(func(c *Config) { c.Momentum = 1 }), x, l, ErrBadConfig},
	}
	for _, tc := range cases {
		hs, err := Fit(context.Background(), tc.cfg, tc.x, tc.l, nil)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
		if hs != nil {
			t.Errorf("%s: heads returned with error", tc.name)
		}
	}
}

func TestSamplerPK(t *testing.T) {
	members := [][]int{{0, 1, 2, 3, 4, 5}, {6, 7}, {8, 9, 10, 11, 12}, {13, 14, 15}}
	views := make([]int, 16)
	for i := range views {
		views[i] = 3
	}
	s := newPKSampler(newRand(1), members, views, 3, 4)
	seenView := map[int]bool{}
	seenImg := map[int]bool{}
	var img, view, cls []int
	for it := 0; it < 50; it++ {
		img, view, cls = s.next(img, view, cls)
		per := map[int][]int{}
		for i := range img {
			per[cls[i]] = append(per[cls[i]], img[i])
			seenView[view[i]] = true
			seenImg[img[i]] = true
			if !slices.Contains(members[cls[i]], img[i]) {
				t.Fatalf("image %d not in class %d", img[i], cls[i])
			}
		}
		if len(per) != 3 {
			t.Fatalf("batch has %d classes, want 3", len(per))
		}
		for c, ims := range per {
			want := min(4, len(members[c]))
			sorted := slices.Clone(ims)
			slices.Sort(sorted)
			if len(ims) != want || len(slices.Compact(sorted)) != want {
				t.Fatalf("class %d: images %v, want %d distinct", c, ims, want)
			}
		}
	}
	if len(seenView) != 3 || len(seenImg) != 16 {
		t.Fatalf("views seen %v, images seen %d", seenView, len(seenImg))
	}
}
