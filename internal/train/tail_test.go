package train

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"

	"prodsearch/internal/backbone"
	"prodsearch/internal/onnxgraph"
	"prodsearch/internal/testenv"
	"prodsearch/internal/vec/vectest"
)

// synthTail builds a small graph with every operator the Go tail supports:
// 1×1 conv, Clip (ReLU6), depthwise 3×3 with stride 2 and SAME_UPPER,
// Identity, depthwise 3×3 with explicit pads, a residual Add.
func synthTail(t *testing.T, rng *rand.Rand) *onnxgraph.Model {
	t.Helper()
	m, must := testenv.NewGraph(t)
	randn := func(name string, sd float64, dims ...int64) {
		n := int64(1)
		for _, d := range dims {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * sd)
		}
		must(m.AddInitializer(name, dims, v))
	}
	randn("w1", 0.6, 6, 4, 1, 1)
	randn("b1", 0.3, 6)
	randn("w2", 0.4, 6, 1, 3, 3)
	randn("b2", 0.3, 6)
	randn("w3", 0.4, 4, 6, 1, 1)
	randn("b3", 0.1, 4)
	randn("w4", 0.4, 4, 1, 3, 3)
	randn("b4", 0.1, 4)
	randn("w5", 0.5, 5, 4, 1, 1)
	randn("b5", 0.5, 5)
	must(m.AddInitializer("lo", []int64{1}, []float32{0}))
	must(m.AddInitializer("hi", []int64{1}, []float32{6}))
	conv := func(name, in, w, b, out string, attrs ...*onnx.AttributeProto) {
		must(m.AddNode(onnxgraph.NewNode("Conv", name, []string{in, w, b}, []string{out}, attrs...)))
	}
	clip := func(in, out string) {
		must(m.AddNode(onnxgraph.NewNode("Clip", "clip_"+out, []string{in, "lo", "hi"}, []string{out})))
	}
	conv("c1", "x", "w1", "b1", "a1", onnxgraph.IntsAttr("kernel_shape", 1, 1))
	clip("a1", "r1")
	conv("c2", "r1", "w2", "b2", "a2", onnxgraph.IntAttr("group", 6), onnxgraph.IntsAttr("kernel_shape", 3, 3),
		onnxgraph.IntsAttr("strides", 2, 2), onnxgraph.StringAttr("auto_pad", "SAME_UPPER"))
	clip("a2", "r2")
	conv("c3", "r2", "w3", "b3", "a3")
	must(m.AddNode(onnxgraph.NewNode("Identity", "id", []string{"a3"}, []string{"a3i"})))
	conv("c4", "a3i", "w4", "b4", "a4", onnxgraph.IntAttr("group", 4), onnxgraph.IntsAttr("pads", 1, 1, 1, 1))
	must(m.AddNode(onnxgraph.NewNode("Add", "add", []string{"a4", "a3i"}, []string{"s"})))
	conv("c5", "s", "w5", "b5", "a5")
	clip("a5", "y")
	must(m.AddOutput("y"))
	return m
}

// batchOf lays out images (each c×h×w) as the tail's channel-major batch.
func batchOf(imgs [][]float32, c int, h, w []int) ([]float32, planes) {
	pl := newPlanes(h, w)
	x := make([]float32, c*pl.p)
	for i, img := range imgs {
		hw := h[i] * w[i]
		for ch := 0; ch < c; ch++ {
			copy(x[ch*pl.p+pl.off[i]:], img[ch*hw:(ch+1)*hw])
		}
	}
	return x, pl
}

// imageOf extracts image i (c×h×w) from a channel-major batch.
func imageOf(x []float32, c int, pl planes, i int) []float32 {
	hw := pl.h[i] * pl.w[i]
	out := make([]float32, c*hw)
	for ch := 0; ch < c; ch++ {
		copy(out[ch*hw:], x[ch*pl.p+pl.off[i]:ch*pl.p+pl.off[i]+hw])
	}
	return out
}

func randImages(rng *rand.Rand, c int, h, w []int, scale float64) [][]float32 {
	imgs := make([][]float32, len(h))
	for i := range imgs {
		imgs[i] = make([]float32, c*h[i]*w[i])
		for j := range imgs[i] {
			imgs[i][j] = float32(rng.Float64() * scale)
		}
	}
	return imgs
}

// TestTailGradients checks dL/dw of every tail parameter and dL/dp of GeM
// against central differences, with L = sum_ic coef_ic * GeM_p(tail(x))_ic
// over two images of odd, different sizes.
func TestTailGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := synthTail(t, rng)
	tail, err := NewTail(m, "x", "y")
	if err != nil {
		t.Fatal(err)
	}
	if tail.InC != 4 || tail.Out != 5 || len(tail.Params()) != 10 {
		t.Fatalf("tail: in %d, out %d, %d params", tail.InC, tail.Out, len(tail.Params()))
	}
	h, w := []int{7, 6}, []int{5, 6}
	x, pl := batchOf(randImages(rng, 4, h, w, 1), 4, h, w)
	coef := make([]float64, 2*5)
	for i := range coef {
		coef[i] = rng.NormFloat64()
	}
	p := 2.5
	loss := func() float64 {
		r := tail.forward(x, pl)
		f, mm := make([]float32, 2*5), make([]float32, 2*5)
		gemPool(f, mm, r.val[tail.out], 5, r.pl[tail.out], p)
		var l float64
		for i, v := range f {
			l += coef[i] * float64(v)
		}
		return l
	}
	// analytic
	tail.ZeroGrad()
	r := tail.forward(x, pl)
	op := r.pl[tail.out]
	if op.h[0] != 4 || op.w[0] != 3 || op.h[1] != 3 || op.w[1] != 3 {
		t.Fatalf("SAME_UPPER stride 2 output sizes %v×%v, want [4 3]×[3 3]", op.h, op.w)
	}
	out := r.val[tail.out]
	f, mm := make([]float32, 10), make([]float32, 10)
	gemPool(f, mm, out, 5, op, p)
	gf := make([]float32, 10)
	for i := range gf {
		gf[i] = float32(coef[i])
	}
	gout := make([]float32, len(out))
	gp := gemBackward(gout, out, f, mm, gf, 5, op, p)
	tail.backward(r, gout)

	checkTailGrads(t, tail.Params(), loss, 5e-3)
	checkScalarGrad(t, "dL/dp", &p, loss, gp, 0.1)
}

// checkScalarGrad compares the analytic derivative of loss with respect to
// *x with a central difference, to 1% of max(|numeric|, floor).
func checkScalarGrad(t *testing.T, name string, x *float64, loss func() float64, analytic, floor float64) {
	t.Helper()
	x0 := *x
	*x = x0 + 1e-3
	up := loss()
	*x = x0 - 1e-3
	dn := loss()
	*x = x0
	if num := (up - dn) / 2e-3; math.Abs(num-analytic) > 1e-2*max(math.Abs(num), floor) {
		t.Errorf("%s: numeric %.5g, analytic %.5g", name, num, analytic)
	}
}

// checkTailGrads compares the analytic gradients the params hold with
// central differences of loss (which may overwrite them). A coordinate whose ±h interval holds a
// ReLU6 kink has one-sided differences that disagree; those (a few in
// hundreds) are skipped, and more than a tenth skipped fails the test.
func checkTailGrads(t *testing.T, params []*TailParam, loss func() float64, tol float64) {
	t.Helper()
	grads := make([][]float32, len(params))
	for i, prm := range params {
		grads[i] = append([]float32(nil), prm.G...)
	}
	const h = 1e-3
	l0 := loss()
	skipped, checked := 0, 0
	for i, prm := range params {
		var maxErr, maxG float64
		for j := range prm.W {
			orig := prm.W[j]
			prm.W[j] = orig + h
			up := loss()
			prm.W[j] = orig - h
			dn := loss()
			prm.W[j] = orig
			if math.Abs((up-l0)-(l0-dn)) > 1e-3*math.Abs(up-dn)+1e-5 {
				skipped++
				continue
			}
			checked++
			maxErr = max(maxErr, math.Abs((up-dn)/(2*h)-float64(grads[i][j])))
			maxG = max(maxG, math.Abs(float64(grads[i][j])))
		}
		if maxG == 0 || maxErr > tol*max(maxG, 0.05) {
			t.Errorf("%s: max |numeric - analytic| %.3g, max |g| %.3g", prm.Name, maxErr, maxG)
		}
	}
	if skipped > checked/10 {
		t.Errorf("%d of %d coordinates skipped as kinks", skipped, skipped+checked)
	}
	t.Logf("%d coordinates checked, %d skipped at kinks", checked, skipped)
}

// TestGeMInputGradient checks dL/dx of GeM pooling, including pixels at 0.
func TestGeMInputGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	h, w := []int{3, 2}, []int{2, 4}
	imgs := randImages(rng, 3, h, w, 2)
	imgs[0][1] = 0
	x, pl := batchOf(imgs, 3, h, w)
	p := 3.2
	coef := make([]float32, 6)
	for i := range coef {
		coef[i] = float32(rng.NormFloat64())
	}
	loss := func() float64 {
		f, m := make([]float32, 6), make([]float32, 6)
		gemPool(f, m, x, 3, pl, p)
		var l float64
		for i := range f {
			l += float64(coef[i]) * float64(f[i])
		}
		return l
	}
	f, m := make([]float32, 6), make([]float32, 6)
	gemPool(f, m, x, 3, pl, p)
	gx := make([]float32, len(x))
	gemBackward(gx, x, f, m, coef, 3, pl, p)
	for j := range x {
		if x[j] == 0 {
			if gx[j] != 0 {
				t.Errorf("x[%d] = 0 has gradient %v", j, gx[j])
			}
			continue
		}
		orig := x[j]
		x[j] = orig + 1e-3
		up := loss()
		x[j] = orig - 1e-3
		dn := loss()
		x[j] = orig
		if num := (up - dn) / 2e-3; math.Abs(num-float64(gx[j])) > 1e-2*max(math.Abs(num), 0.05) {
			t.Errorf("dL/dx[%d]: numeric %.5g, analytic %.5g", j, num, gx[j])
		}
	}
}

// goVsORT runs the Go tail and ONNX Runtime on the same inputs (image i is
// c×h[i]×w[i]) and returns the smallest per-image cosine.
func goVsORT(t *testing.T, lib string, m *onnxgraph.Model, tail *Tail, input, output string, imgs [][]float32, h, w []int) float64 {
	t.Helper()
	sub, err := m.Extract([]string{input}, []string{output})
	if err != nil {
		t.Fatal(err)
	}
	data, err := sub.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := backbone.OpenGraph(data, []string{input}, []string{output}, backbone.Options{Library: lib, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Destroy()
	x, pl := batchOf(imgs, tail.InC, h, w)
	r := tail.forward(x, pl)
	worst := 1.0
	for i := range imgs {
		want, err := g.Run(context.Background(), backbone.Tensor{Data: imgs[i], Shape: []int64{1, int64(tail.InC), int64(h[i]), int64(w[i])}})
		if err != nil {
			t.Fatal(err)
		}
		got := imageOf(r.val[tail.out], tail.Out, r.pl[tail.out], i)
		if len(got) != len(want[0].Data) {
			t.Fatalf("image %d: Go tail gives %d values, ORT %v", i, len(got), want[0].Shape)
		}
		worst = min(worst, vectest.Cosine(got, want[0].Data))
	}
	return worst
}

func TestSynthTailMatchesORT(t *testing.T) {
	_, lib := testenv.Models(t)
	rng := rand.New(rand.NewPCG(7, 8))
	m := synthTail(t, rng)
	tail, err := NewTail(m, "x", "y")
	if err != nil {
		t.Fatal(err)
	}
	h, w := []int{7, 6, 1}, []int{5, 6, 2}
	if c := goVsORT(t, lib, m, tail, "x", "y", randImages(rng, 4, h, w, 1), h, w); c < 0.99999 {
		t.Fatalf("Go tail vs ORT cosine %.7f", c)
	}
}

// TestShippedTailsMatchORT runs each fine-tunable backbone's trunk in ORT on
// random images of two sizes and compares the Go tail with ORT's tail on
// those real trunk outputs, at every listed block boundary.
func TestShippedTailsMatchORT(t *testing.T) {
	specs, dir, lib := testenv.FineTunable(t)
	rng := rand.New(rand.NewPCG(9, 10))
	for _, spec := range specs {
		m := testenv.Graph(t, spec, dir)
		for _, cut := range spec.Blocks {
			trunk := testenv.Trunk(t, m, spec, cut, lib)
			var imgs [][]float32
			var hs, ws []int
			for _, sz := range [][2]int{{224, 160}, {97, 131}} {
				in := make([]float32, sz[0]*sz[1]*3)
				for i := range in {
					in[i] = float32(rng.Float64()*2 - 1)
				}
				out, err := trunk.Run(context.Background(), backbone.Tensor{Data: in, Shape: []int64{1, int64(sz[0]), int64(sz[1]), 3}})
				if err != nil {
					t.Fatal(err)
				}
				imgs = append(imgs, out[0].Data)
				hs, ws = append(hs, int(out[0].Shape[2])), append(ws, int(out[0].Shape[3]))
			}
			trunk.Destroy()
			tail, err := NewTail(m, cut, spec.Output)
			if err != nil {
				t.Fatalf("%s at %s: %v", spec.Name, cut, err)
			}
			c := goVsORT(t, lib, m, tail, cut, spec.Output, imgs, hs, ws)
			t.Logf("%s from %s (%d params, trunk outputs %v×%v): Go vs ORT cosine %.7f", spec.Name, cut, len(tail.Params()), hs, ws, c)
			if c < 0.9999 {
				t.Errorf("%s from %s: cosine %.7f", spec.Name, cut, c)
			}
		}
	}
}
