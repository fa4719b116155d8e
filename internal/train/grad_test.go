package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// allLosses covers every loss, including normsoftmax with an ArcFace margin.
func allLosses() []lossSpec {
	return []lossSpec{
		{kind: LossNormSoftmax, scale: 5},
		{kind: LossArcFace, scale: 5, margin: 0.3},
		{kind: LossProxyAnchor, scale: 8, margin: 0.1},
		{kind: LossMS, msAlpha: 2, msBeta: 10, msBase: 0.5, msEps: 0.1},
		{kind: LossTriplet, margin: 0.2},
	}
}

// TestLossGradients checks dL/dS of every loss against central finite
// differences. S is float32 but each loss computes in float64, and the
// actual (rounded) perturbation is used as the denominator, so the check is
// tight.
func TestLossGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, l := range allLosses() {
		rows, cols := 8, 8
		y := []int{0, 0, 1, 1, 2, 2, 3, 3}
		if l.usesProxies() {
			cols = 4
			y = []int{0, 2, 1, 1, 3, 0, 2, 2}
		}
		s := make([]float32, rows*cols)
		for i := range s {
			s[i] = float32(r.Float64()*1.6 - 0.8)
		}
		g := make([]float32, rows*cols)
		l.eval(s, rows, cols, y, g)
		scratch := make([]float32, rows*cols)
		h := float32(1e-4)
		var maxErr, maxG float64
		for i := range s {
			orig := s[i]
			s[i] = orig + h
			up := float64(s[i])
			lp := l.eval(s, rows, cols, y, scratch)
			s[i] = orig - h
			dn := float64(s[i])
			lm := l.eval(s, rows, cols, y, scratch)
			s[i] = orig
			num := (lp - lm) / (up - dn)
			maxErr = max(maxErr, math.Abs(num-float64(g[i])))
			maxG = max(maxG, math.Abs(float64(g[i])))
		}
		if maxG == 0 {
			t.Errorf("%s: gradient is identically zero", l.kind)
		}
		if maxErr > 1e-4*max(1, maxG) {
			t.Errorf("%s: max |numeric - analytic| = %.3g (max |g| %.3g)", l.kind, maxErr, maxG)
		} else {
			t.Logf("%s: max abs err %.2g, max |g| %.2g", l.kind, maxErr, maxG)
		}
	}
}

// TestNormalizeGradient checks the L2-normalisation layer on its own with
// f(z) = sum_ij c_ij normalize(z)_ij.
func TestNormalizeGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	n, d := 3, 7
	z := make([]float64, n*d)
	c := make([]float64, n*d)
	for i := range z {
		z[i] = r.NormFloat64()
		c[i] = r.NormFloat64()
	}
	f := func(z []float64) float64 {
		zf := make([]float32, len(z))
		for i := range z {
			zf[i] = float32(z[i])
		}
		normalizeRows(zf, n, d, nil)
		var s float64
		for i := range zf {
			s += c[i] * float64(zf[i])
		}
		return s
	}
	zf := make([]float32, n*d)
	for i := range z {
		zf[i] = float32(z[i])
	}
	e := append([]float32(nil), zf...)
	norms := make([]float32, n)
	normalizeRows(e, n, d, norms)
	de := make([]float32, n*d)
	for i := range c {
		de[i] = float32(c[i])
	}
	dz := make([]float32, n*d)
	normalizeBackward(e, norms, de, dz, n, d)
	const h = 1e-3
	for i := range z {
		zp := append([]float64(nil), z...)
		zm := append([]float64(nil), z...)
		zp[i] += h
		zm[i] -= h
		num := (f(zp) - f(zm)) / (2 * h)
		if math.Abs(num-float64(dz[i])) > 1e-3*max(1, math.Abs(num)) {
			t.Fatalf("component %d: numeric %.6g analytic %.6g", i, num, dz[i])
		}
	}
	// Zero rows get zero gradient instead of NaN.
	zero := make([]float32, d)
	zn := []float32{0}
	out := make([]float32, d)
	normalizeBackward(zero, zn, de[:d], out, 1, d)
	for _, v := range out {
		if v != 0 {
			t.Fatal("zero row got non-zero gradient")
		}
	}
}

// TestNetGradients checks the whole forward/backward (Sgemm products, ReLU,
// both normalisations, proxies) for every loss, for a linear and an MLP
// head. The forward pass is float32, so the comparison is on the whole
// gradient vector: ||numeric - analytic|| / ||analytic||.
func TestNetGradients(t *testing.T) {
	for _, hidden := range []int{0, 7} {
		for _, l := range allLosses() {
			r := rand.New(rand.NewPCG(3, uint64(hidden)))
			b, in, out, classes := 8, 10, 6, 4
			n := newNet(in, hidden, out, classes, b, l)
			n.initWeights(r, false)
			for i := range n.b1 {
				n.b1[i] = float32(r.NormFloat64() * 0.1)
			}
			for i := range n.q {
				n.q[i] = float32(r.NormFloat64())
			}
			for i := range n.x {
				n.x[i] = float32(r.NormFloat64())
			}
			y := []int{0, 0, 1, 1, 2, 2, 3, 3}
			n.lossGrad(b, y)
			type tensor struct {
				name string
				w, g []float32
			}
			ts := []tensor{{"w", n.w, append([]float32(nil), n.gw...)}}
			if hidden > 0 {
				ts = append(ts, tensor{"w1", n.w1, append([]float32(nil), n.gw1...)}, tensor{"b1", n.b1, append([]float32(nil), n.gb1...)})
			}
			if n.q != nil {
				ts = append(ts, tensor{"proxies", n.q, append([]float32(nil), n.gq...)})
			}
			// Triplet and MS are piecewise (hinge, mining selection); a
			// smaller step keeps the difference on one piece.
			h := float32(1e-3)
			if l.kind == LossTriplet || l.kind == LossMS {
				h = 1e-4
			}
			for _, tt := range ts {
				var diff, norm float64
				for i := range tt.w {
					orig := tt.w[i]
					tt.w[i] = orig + h
					up := float64(tt.w[i])
					lp := n.lossGrad(b, y)
					tt.w[i] = orig - h
					dn := float64(tt.w[i])
					lm := n.lossGrad(b, y)
					tt.w[i] = orig
					num := (lp - lm) / (up - dn)
					diff += (num - float64(tt.g[i])) * (num - float64(tt.g[i]))
					norm += float64(tt.g[i]) * float64(tt.g[i])
				}
				rel := math.Sqrt(diff / norm)
				if norm == 0 || rel > 1e-2 {
					t.Errorf("hidden=%d %s d/d%s: relative error %.3g (|g|=%.3g)", hidden, l.kind, tt.name, rel, math.Sqrt(norm))
				} else {
					t.Logf("hidden=%d %s d/d%s: relative error %.2g", hidden, l.kind, tt.name, rel)
				}
			}
		}
	}
}

func TestSoftplusLSEStable(t *testing.T) {
	a := []float64{1000, 1000, -1000}
	v := softplusLSE(a)
	if math.Abs(v-(1000+math.Log(2))) > 1e-9 || math.IsNaN(a[0]) || math.Abs(a[0]-0.5) > 1e-12 {
		t.Fatalf("softplusLSE = %v, weights %v", v, a)
	}
	b := []float64{-1000}
	if v := softplusLSE(b); v < 0 || v > 1e-300 || math.IsNaN(b[0]) {
		t.Fatalf("softplusLSE(-1000) = %v, %v", v, b)
	}
}
