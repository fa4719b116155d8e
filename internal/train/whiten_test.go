package train

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"prodsearch/internal/describe"
)

// gaussian draws n points of an anisotropic Gaussian in d dimensions
// (random rotation, variances spread over three orders of magnitude).
func gaussian(seed uint64, n, d int) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 3))
	rot := make([][]float64, d)
	for i := range rot {
		rot[i] = make([]float64, d)
		for j := range rot[i] {
			rot[i][j] = r.NormFloat64() / math.Sqrt(float64(d))
		}
	}
	x := make([][]float32, n)
	for k := range x {
		z := make([]float64, d)
		for j := range z {
			z[j] = r.NormFloat64() * math.Pow(10, -1.5*float64(j)/float64(d))
		}
		row := make([]float32, d)
		for i := range row {
			v := 0.5 // common offset, so centring matters
			for j := range z {
				v += rot[i][j] * z[j]
			}
			row[i] = float32(v)
		}
		x[k] = row
	}
	return x
}

// project applies W(x - Mean) without the final normalisation.
func project(h *describe.Head, x []float32) []float64 {
	out := make([]float64, h.Out)
	for k := range out {
		for j := 0; j < h.In; j++ {
			out[k] += float64(h.W[k*h.In+j]) * (float64(x[j]) - float64(h.Mean[j]))
		}
	}
	return out
}

func covariance(rows [][]float64) [][]float64 {
	d := len(rows[0])
	mean := make([]float64, d)
	for _, r := range rows {
		for j, v := range r {
			mean[j] += v / float64(len(rows))
		}
	}
	c := make([][]float64, d)
	for i := range c {
		c[i] = make([]float64, d)
	}
	for _, r := range rows {
		for i := 0; i < d; i++ {
			for j := 0; j < d; j++ {
				c[i][j] += (r[i] - mean[i]) * (r[j] - mean[j]) / float64(len(rows)-1)
			}
		}
	}
	return c
}

func TestPCAWhiteningGivesIdentityCovariance(t *testing.T) {
	x := gaussian(1, 3000, 16)
	for _, outDim := range []int{16, 6} {
		h, err := FitPCAWhitening(x, outDim, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Validate(); err != nil {
			t.Fatal(err)
		}
		ys := make([][]float64, len(x))
		for i := range x {
			ys[i] = project(h, x[i])
		}
		c := covariance(ys)
		var worst float64
		for i := range c {
			for j := range c[i] {
				want := 0.0
				if i == j {
					want = 1
				}
				worst = max(worst, math.Abs(c[i][j]-want))
			}
		}
		if worst > 1e-3 {
			t.Errorf("outDim %d: whitened covariance deviates from I by %.3g", outDim, worst)
		}
	}
	// Shrinkage damps every direction, the weakest most.
	h, err := FitPCAWhitening(x, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	ys := make([][]float64, len(x))
	for i := range x {
		ys[i] = project(h, x[i])
	}
	c := covariance(ys)
	if !(c[0][0] < 1 && c[15][15] < c[0][0]) {
		t.Errorf("shrink=1: variances %.3g (first) %.3g (last), want decreasing below 1", c[0][0], c[15][15])
	}
}

func TestPCAWhiteningErrors(t *testing.T) {
	x := gaussian(2, 10, 8)
	if _, err := FitPCAWhitening(x, 9, 0); !errors.Is(err, ErrBadConfig) {
		t.Errorf("outDim > d: %v", err)
	}
	if _, err := FitPCAWhitening(x, 4, -1); !errors.Is(err, ErrBadConfig) {
		t.Errorf("negative shrink: %v", err)
	}
	if _, err := FitPCAWhitening(x[:1], 4, 0); !errors.Is(err, ErrNoData) {
		t.Errorf("one row: %v", err)
	}
	if _, err := FitPCAWhitening(nil, 4, 0); !errors.Is(err, ErrNoData) {
		t.Errorf("no rows: %v", err)
	}
	bad := append([][]float32(nil), x...)
	bad[3] = append([]float32(nil), bad[3]...)
	bad[3][2] = float32(math.NaN())
	if _, err := FitPCAWhitening(bad, 4, 0); !errors.Is(err, ErrNotFinite) {
		t.Errorf("NaN: %v", err)
	}
	bad[3] = bad[3][:5]
	if _, err := FitPCAWhitening(bad, 4, 0); !errors.Is(err, ErrDimMismatch) {
		t.Errorf("ragged: %v", err)
	}
	// 5 points span at most 4 dimensions: exact whitening of 8 must refuse,
	// shrinkage makes it well defined.
	if _, err := FitPCAWhitening(x[:5], 8, 0); !errors.Is(err, ErrRankDeficient) {
		t.Errorf("rank deficient: %v", err)
	}
	if _, err := FitPCAWhitening(x[:5], 8, 0.1); err != nil {
		t.Errorf("rank deficient with shrink: %v", err)
	}
}

func heldOutMAP(t *testing.T, hs describe.Heads, x [][]float32, labels []string) float64 {
	t.Helper()
	m, _, err := ValMAP(hs.ApplyBatch(x), labels)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLwBeatsRaw: classes differ only in a low-variance subspace while a
// high-variance nuisance varies within classes. Lw, fitted on training
// classes, must improve retrieval of different (held-out) classes with the
// same structure; it should also beat unsupervised PCA whitening, which
// cannot tell nuisance from identity.
func TestLwBeatsRaw(t *testing.T) {
	w := newWorld(5, 48, 6, 6)
	xtr, ltr := w.sample(1, 20, 15, 1, "train")
	xte, lte := w.sample(2, 10, 15, 1, "test")
	tr, te := view0(xtr), view0(xte)

	raw := heldOutMAP(t, nil, te, lte)
	lw, err := FitLw(tr, ltr, 12)
	if err != nil {
		t.Fatal(err)
	}
	if err := lw.Validate(); err != nil {
		t.Fatal(err)
	}
	lwMAP := heldOutMAP(t, describe.Heads{*lw}, te, lte)
	pca, err := FitPCAWhitening(tr, 12, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	pcaMAP := heldOutMAP(t, describe.Heads{*pca}, te, lte)
	t.Logf("held-out mAP: raw %.3f  pca %.3f  lw %.3f", raw, pcaMAP, lwMAP)
	if lwMAP < raw+0.2 {
		t.Errorf("Lw mAP %.3f does not beat raw %.3f by 0.2", lwMAP, raw)
	}
	if lwMAP <= pcaMAP {
		t.Errorf("Lw mAP %.3f not above PCA whitening %.3f", lwMAP, pcaMAP)
	}
}

func TestLwErrors(t *testing.T) {
	w := newWorld(6, 8, 2, 2)
	x, l := w.sample(1, 3, 4, 1, "c")
	xs := view0(x)
	l2 := append([]string(nil), l...)
	l2[0] = "singleton"
	if _, err := FitLw(xs, l2, 4); !errors.Is(err, ErrSmallClass) {
		t.Errorf("singleton class: %v", err)
	}
	if _, err := FitLw(xs, l[:5], 4); !errors.Is(err, ErrBadLabels) {
		t.Errorf("short labels: %v", err)
	}
	one := make([]string, len(l))
	for i := range one {
		one[i] = "same"
	}
	if _, err := FitLw(xs, one, 4); !errors.Is(err, ErrFewClasses) {
		t.Errorf("one class: %v", err)
	}
	l3 := append([]string(nil), l...)
	l3[2] = ""
	if _, err := FitLw(xs, l3, 4); !errors.Is(err, ErrBadLabels) {
		t.Errorf("empty label: %v", err)
	}
}
