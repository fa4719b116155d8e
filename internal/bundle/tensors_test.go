package bundle

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"

	"prodsearch/internal/describe"
	"prodsearch/internal/vec"
	"prodsearch/internal/vec/vectest"
)

// trained returns a coral_mnv1 bundle with a whitening and a linear head of
// random weights, as a training run would write.
func trained(t *testing.T, seed uint64) Bundle {
	t.Helper()
	b, err := Default("coral_mnv1")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	randv := func(n int) []float32 { return vectest.Gaussian(rng, n) }
	b.Heads = describe.Heads{
		{Kind: describe.KindLw, In: 1024, Out: 64, Mean: randv(1024), W: randv(64 * 1024)},
		{Kind: describe.KindLinear, In: 64, Out: 32, W: randv(32 * 64)},
	}
	return b
}

// savedTrained saves trained(t, seed) as m.json in a new folder.
func savedTrained(t *testing.T, seed uint64) (b Bundle, path string) {
	t.Helper()
	b, path = trained(t, seed), filepath.Join(t.TempDir(), "m.json")
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	return b, path
}

func TestSaveWritesWeightsAsSafetensors(t *testing.T) {
	b, p := savedTrained(t, 1)
	js, _ := os.ReadFile(p)
	if len(js) > 4096 {
		t.Fatalf("recipe is %d bytes: weights leaked into the JSON", len(js))
	}
	st, err := os.Stat(TensorPath(p))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(4 * (1024 + 64*1024 + 32*64)); st.Size() < want || st.Size() > want+2048 {
		t.Fatalf("tensor file %d bytes, want about %d", st.Size(), want)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != b.ID() {
		t.Fatal("weights changed across save/load")
	}
	if got.Path() != p {
		t.Fatalf("Path %q", got.Path())
	}

	// Half precision: half the bytes, the same descriptors within 1e-3.
	h := b
	h.Tensors = &TensorFile{Half: true}
	hp := filepath.Join(filepath.Dir(p), "half.json")
	if err := h.Save(hp); err != nil {
		t.Fatal(err)
	}
	hs, _ := os.Stat(TensorPath(hp))
	if hs.Size()*2 > st.Size()+4096 {
		t.Fatalf("half file %d bytes vs %d", hs.Size(), st.Size())
	}
	hb, err := Load(hp)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 1024)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
	}
	if c := vectest.Cosine(b.Heads.Apply(x), hb.Heads.Apply(x)); c < 0.999 {
		t.Fatalf("half-precision weights: cosine %v", c)
	}
}

// A fine-tuned tail keeps float32 in a half-precision file, unless it holds
// float16 values already: the ONNX file rebuilt from it must hash to what
// the bundle recorded, while the heads are rounded to float16.
func TestHalfKeepsFineTunedTailExact(t *testing.T) {
	b := trained(t, 3)
	tail := []float32{0.1, 1e-5, 3.14159265, -2.7182817}
	b.FineTuned = &FineTuned{BaseSHA256: b.Backbone.SHA256, File: "model.onnx", SHA256: strings.Repeat("b", 64),
		Tensors: []TailTensor{{Name: "t1_W", Dims: []int64{2, 2}, Data: slices.Clone(tail)}}}
	b.Tensors = &TensorFile{Half: true}
	p := filepath.Join(t.TempDir(), "ft.json")
	if err := b.Save(p); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.FineTuned.Tensors[0].Data, tail) {
		t.Errorf("tail %v after a half-precision save, want %v exactly", got.FineTuned.Tensors[0].Data, tail)
	}
	w, hw := b.Heads[0].W, got.Heads[0].W
	for i := range w {
		if hw[i] != vec.FromHalf(vec.Half(w[i])) {
			t.Fatalf("head weight %d = %v, want its float16 rounding %v", i, hw[i], vec.FromHalf(vec.Half(w[i])))
		}
	}

	// A tail rounded to float16 values is stored as float16, exactly;
	// the original is left as it was.
	orig := b.FineTuned
	if b.FineTuned, err = orig.RoundHalf(); err != nil {
		t.Fatal(err)
	}
	if slices.Equal(b.FineTuned.Tensors[0].Data, tail) || !slices.Equal(orig.Tensors[0].Data, tail) {
		t.Fatalf("RoundHalf: %v from %v", b.FineTuned.Tensors[0].Data, orig.Tensors[0].Data)
	}
	if err := b.Save(p); err != nil {
		t.Fatal(err)
	}
	if got, err = Load(p); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.FineTuned.Tensors[0].Data, b.FineTuned.Tensors[0].Data) {
		t.Errorf("rounded tail %v read back as %v", b.FineTuned.Tensors[0].Data, got.FineTuned.Tensors[0].Data)
	}
	data, err := os.ReadFile(TensorPath(p))
	if err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Deserialize(data)
	if err != nil {
		t.Fatal(err)
	}
	if tv, _ := st.Tensor("finetuned.t1_W"); tv.DType() != safetensors.F16 {
		t.Errorf("rounded tail stored as %v, want F16", tv.DType())
	}
	big := &FineTuned{Tensors: []TailTensor{{Name: "w", Dims: []int64{1}, Data: []float32{1e6}}}}
	if _, err := big.RoundHalf(); err == nil {
		t.Error("RoundHalf turned 1e6 into an infinity without an error")
	}
}

func TestLoadRefusesTamperedTensors(t *testing.T) {
	_, p := savedTrained(t, 2)
	data, _ := os.ReadFile(TensorPath(p))
	data[len(data)-1] ^= 1
	if err := os.WriteFile(TensorPath(p), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("flipped bit: %v", err)
	}
	if err := os.Remove(TensorPath(p)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "m.safetensors") {
		t.Fatalf("missing tensors: %v", err)
	}
}

func TestEnsembleRefersToMembers(t *testing.T) {
	dir := t.TempDir()
	a, b := trained(t, 3), trained(t, 4)
	if err := a.Save(filepath.Join(dir, "members", "a.json")); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(filepath.Join(dir, "members", "b.json")); err != nil {
		t.Fatal(err)
	}
	frozen, _ := Default("mnv2_int8")
	ens := Bundle{Version: FormatVersion, Name: "ens", Members: []Member{{Bundle: a, Weight: 1}, {Bundle: b, Weight: 0.5}, {Bundle: frozen, Weight: 0.5}}}
	p := filepath.Join(dir, "model.json")
	if err := ens.Save(p); err != nil {
		t.Fatal(err)
	}
	js, _ := os.ReadFile(p)
	if !strings.Contains(string(js), `"ref": "members/a.json"`) || len(js) > 8192 {
		t.Fatalf("ensemble copies its members:\n%s", js)
	}
	if _, err := os.Stat(TensorPath(p)); !os.IsNotExist(err) {
		t.Fatalf("an ensemble of referred members wrote its own tensors: %v", err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != ens.ID() {
		t.Fatal("ensemble ID changed across save/load")
	}
	// A member retrained in place no longer matches the ensemble.
	c := trained(t, 5)
	if err := c.Save(filepath.Join(dir, "members", "a.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "made with") {
		t.Fatalf("changed member: %v", err)
	}
}

func TestInlineMembersKeepTheirWeights(t *testing.T) {
	dir := t.TempDir()
	a := trained(t, 6)
	ens := Bundle{Version: FormatVersion, Name: "ens", Members: []Member{{Bundle: a, Weight: 1}, {Bundle: trained(t, 7), Weight: 1}}}
	roundTrip(t, ens, filepath.Join(dir, "e.json"))
}

// roundTrip saves b at p and checks that loading it gives the same ID.
func roundTrip(t *testing.T, b Bundle, p string) Bundle {
	t.Helper()
	if err := b.Save(p); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != b.ID() {
		t.Fatal("ID changed across save/load")
	}
	return got
}

func TestVersion1StillLoads(t *testing.T) {
	p := filepath.Join(t.TempDir(), "v1.json")
	js := `{"version":1,"name":"x","backbone":` + specJSON(t) + `,"describe":{"scales":[224],"flip":false,"pool":"gap","crop":0.6},
	"heads":[{"kind":"linear","in":1024,"out":2,"w":[` + strings.Repeat("0.5,", 2047) + `0.5]}]}`
	if err := os.WriteFile(p, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if b.Dim() != 2 {
		t.Fatalf("dim %d", b.Dim())
	}
}

func TestFloat16RoundTrip(t *testing.T) {
	for _, f := range []float32{0, 1, -2.5, 65504, 1e-5, -6e-8, 3.14159, 0.1} {
		g := vec.FromHalf(vec.Half(f))
		if d := math.Abs(float64(g - f)); d > math.Abs(float64(f))/1000+6e-8 {
			t.Errorf("%v -> %v", f, g)
		}
	}
	if !math.IsInf(float64(vec.FromHalf(vec.Half(1e6))), 1) {
		t.Error("overflow must saturate to +Inf")
	}
}

func specJSON(t *testing.T) string {
	t.Helper()
	b, err := Default("coral_mnv1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(b.Backbone)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// BenchmarkLoadShipped times reading the shipped model (recipe, member files
// and float16 weights, every checksum): what `serve` spends on the model
// before its ONNX Runtime sessions.
func BenchmarkLoadShipped(b *testing.B) {
	p := filepath.Join("..", "..", filepath.FromSlash(ShippedPath))
	if _, err := os.Stat(p); err != nil {
		b.Skip("no shipped model:", err)
	}
	for b.Loop() {
		if _, err := Load(p); err != nil {
			b.Fatal(err)
		}
	}
}
