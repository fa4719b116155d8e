package describe

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"prodsearch/internal/vec/vectest"
	"testing"
)

// headRefApply is a straightforward float64 implementation of the documented
// formula, independent of the Sgemm path.
func headRefApply(h *Head, x []float32) []float64 {
	in := make([]float64, h.In)
	for j := range in {
		in[j] = float64(x[j])
		if len(h.Mean) > 0 {
			in[j] -= float64(h.Mean[j])
		}
	}
	if h.Hidden > 0 {
		hid := make([]float64, h.Hidden)
		for k := range hid {
			var s float64
			for j := range in {
				s += float64(h.W1[k*h.In+j]) * in[j]
			}
			if len(h.B1) > 0 {
				s += float64(h.B1[k])
			}
			hid[k] = math.Max(s, 0)
		}
		in = hid
	}
	out := make([]float64, h.Out)
	var n float64
	for k := range out {
		for j := range in {
			out[k] += float64(h.W[k*len(in)+j]) * in[j]
		}
		n += out[k] * out[k]
	}
	n = math.Sqrt(n)
	for k := range out {
		if n > 0 {
			out[k] /= n
		}
	}
	return out
}

func headLinear(r *rand.Rand, in, out int) *Head {
	return &Head{Kind: KindLinear, In: in, Out: out, Mean: vectest.Gaussian(r, in), W: vectest.Gaussian(r, in*out)}
}

func headMLP(r *rand.Rand, in, hidden, out int) *Head {
	return &Head{Kind: KindMLP, In: in, Out: out, Hidden: hidden, Mean: vectest.Gaussian(r, in),
		W1: vectest.Gaussian(r, hidden*in), B1: vectest.Gaussian(r, hidden), W: vectest.Gaussian(r, out*hidden)}
}

func headAssertClose(t *testing.T, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("length %d, want %d", len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i])-want[i]) > tol {
			t.Fatalf("component %d: got %v want %v", i, got[i], want[i])
		}
	}
}

func TestHeadMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, h := range []*Head{headLinear(r, 13, 5), headMLP(r, 13, 9, 4)} {
		if err := h.Validate(); err != nil {
			t.Fatal(err)
		}
		// More rows than one Sgemm chunk, to cover the chunking.
		xs := make([][]float32, batchRows+37)
		for i := range xs {
			xs[i] = vectest.Gaussian(r, h.In)
		}
		batch := h.ApplyBatch(xs)
		if len(batch) != len(xs) {
			t.Fatalf("%s: %d rows out, want %d", h.Kind, len(batch), len(xs))
		}
		for _, i := range []int{0, 1, batchRows - 1, batchRows, len(xs) - 1} {
			want := headRefApply(h, xs[i])
			headAssertClose(t, batch[i], want, 1e-5)
			headAssertClose(t, h.Apply(xs[i]), want, 1e-5)
		}
	}
}

func TestHeadNilAndEmptyChainNormalise(t *testing.T) {
	x := []float32{3, 4}
	var h *Head
	for _, got := range [][]float32{h.Apply(x), Heads(nil).Apply(x), h.ApplyBatch([][]float32{x})[0], Heads{}.ApplyBatch([][]float32{x})[0]} {
		headAssertClose(t, got, []float64{0.6, 0.8}, 1e-7)
	}
	if x[0] != 3 {
		t.Fatal("input modified")
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := Heads(nil).Validate(); err != nil {
		t.Fatal(err)
	}
	// Zero vectors stay zero instead of becoming NaN.
	z := Heads(nil).Apply([]float32{0, 0})
	if z[0] != 0 || z[1] != 0 {
		t.Fatalf("zero vector -> %v", z)
	}
}

func TestHeadChain(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	hs := Heads{*headLinear(r, 8, 6), *headMLP(r, 6, 5, 3)}
	if err := hs.Validate(); err != nil {
		t.Fatal(err)
	}
	if hs.InDim() != 8 || hs.OutDim() != 3 {
		t.Fatalf("dims %d -> %d", hs.InDim(), hs.OutDim())
	}
	x := vectest.Gaussian(r, 8)
	mid := hs[0].Apply(x)
	want := headRefApply(&hs[1], mid)
	headAssertClose(t, hs.Apply(x), want, 1e-5)
	headAssertClose(t, hs.ApplyBatch([][]float32{x, x})[1], want, 1e-5)

	bad := Heads{*headLinear(r, 8, 6), *headLinear(r, 7, 3)}
	if err := bad.Validate(); err == nil {
		t.Fatal("mismatched chain accepted")
	}
}

func TestHeadWrongInputLengthNoPanic(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	h := headLinear(r, 4, 2)
	if got := h.Apply([]float32{1, 2, 3}); got != nil {
		t.Fatalf("short input gave %v", got)
	}
	if got := h.ApplyBatch([][]float32{{1, 2, 3, 4}, {1}}); got != nil {
		t.Fatalf("ragged batch gave %v", got)
	}
	if got := (Heads{*h}).Apply(nil); got != nil {
		t.Fatalf("nil input gave %v", got)
	}
	if got := h.ApplyBatch(nil); got == nil || len(got) != 0 {
		t.Fatalf("empty batch gave %v", got)
	}
}

func TestHeadValidateRejects(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	cases := map[string]func(h *Head){
		"zero out":      func(h *Head) { h.Out = 0 },
		"short w":       func(h *Head) { h.W = h.W[:len(h.W)-1] },
		"short mean":    func(h *Head) { h.Mean = h.Mean[:1] },
		"nan w":         func(h *Head) { h.W[3] = float32(math.NaN()) },
		"inf mean":      func(h *Head) { h.Mean[0] = float32(math.Inf(1)) },
		"w1 not hidden": func(h *Head) { h.W1 = []float32{1} },
		"huge":          func(h *Head) { h.In, h.Out = 1<<20, 1<<20 },
		"neg hidden":    func(h *Head) { h.Hidden = -1 },
	}
	for name, mutate := range cases {
		h := headLinear(r, 5, 3)
		mutate(h)
		if err := h.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	h := headLinear(r, 5, 3)
	h.W[0] = float32(math.NaN())
	if err := h.Validate(); !errors.Is(err, ErrNotFinite) {
		t.Errorf("NaN: got %v, want ErrNotFinite", err)
	}
	m := headMLP(r, 5, 4, 3)
	m.W1 = m.W1[:3]
	if err := m.Validate(); err == nil {
		t.Error("short w1 accepted")
	}
}

func TestHeadJSONRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	hs := Heads{*headLinear(r, 6, 4), *headMLP(r, 4, 3, 2)}
	b, err := json.Marshal(hs)
	if err != nil {
		t.Fatal(err)
	}
	var back Heads
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	x := vectest.Gaussian(r, 6)
	a, c := hs.Apply(x), back.Apply(x)
	for i := range a {
		if a[i] != c[i] {
			t.Fatalf("round trip changed output: %v vs %v", a, c)
		}
	}
}

func TestHeadCloneIsDeep(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	hs := Heads{*headMLP(r, 4, 3, 2)}
	c := hs.Clone()
	c[0].W[0] += 1
	c[0].W1[0] += 1
	c[0].Mean[0] += 1
	if hs[0].W[0] == c[0].W[0] || hs[0].W1[0] == c[0].W1[0] || hs[0].Mean[0] == c[0].Mean[0] {
		t.Fatal("clone shares storage")
	}
}

func TestFoldKeepsDescriptors(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	randv := func(n int) []float32 { return vectest.Gaussian(rng, n) }
	hs := Heads{
		{Kind: KindLw, In: 40, Out: 20, Mean: randv(40), W: randv(20 * 40)},
		{Kind: KindLinear, In: 20, Out: 8, W: randv(8 * 20)},
	}
	f := hs.Fold()
	if len(f) != 1 || f[0].In != 40 || f[0].Out != 8 || f[0].Kind != "lw+linear" {
		t.Fatalf("folded to %+v", f)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		x := randv(40)
		a, b := hs.Apply(x), f.Apply(x)
		var dot float64
		for j := range a {
			dot += float64(a[j]) * float64(b[j])
		}
		if dot < 0.99999 {
			t.Fatalf("cosine %v between chained and folded heads", dot)
		}
	}
	// A stage with its own mean, or an MLP, cannot fold.
	hs[1].Mean = randv(20)
	if len(hs.Fold()) != 2 {
		t.Fatal("folded a stage that subtracts its own mean")
	}
}
