package runs

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"prodsearch/internal/backbone"
	"prodsearch/internal/bundle"
	"prodsearch/internal/describe"
	"prodsearch/internal/imageio"
	"prodsearch/internal/onnxgraph"
	"prodsearch/internal/testenv"
	"prodsearch/internal/train"
	"prodsearch/internal/vec/vectest"
)

// TestFineTunedModelMatchesGoTail perturbs the tail of each fine-tunable
// backbone as training would, writes the fine-tuned checkpoint (bundle and
// ONNX model), and checks that ONNX Runtime on the written model gives the
// Go tail's output on the trunk's output; then that a bundle whose model
// file was deleted rebuilds the identical file from the base model and the
// tail tensors it stores.
func TestFineTunedModelMatchesGoTail(t *testing.T) {
	specs, dir, lib := testenv.FineTunable(t)
	rng := rand.New(rand.NewPCG(21, 22))
	for _, spec := range specs {
		t.Run(spec.Name, func(t *testing.T) {
			model := testenv.Graph(t, spec, dir)
			cut := spec.Blocks[len(spec.Blocks)-1]
			tail, err := train.NewTail(model, cut, spec.Output)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tail.Params() {
				for j := range p.W {
					p.W[j] *= float32(1 + 0.2*rng.NormFloat64())
				}
			}
			base, err := bundle.Default(spec.Name)
			if err != nil {
				t.Fatal(err)
			}
			ckpt := filepath.Join(t.TempDir(), "epoch-001")
			b, err := fineTunedBundle(base, model, tail, train.FineTuneEpoch{GeMP: 2.5}, ckpt)
			if err != nil {
				t.Fatal(err)
			}
			bpath := filepath.Join(ckpt, "bundle.json")
			if err := b.Save(bpath); err != nil {
				t.Fatal(err)
			}
			onnxPath := filepath.Join(ckpt, FineTunedModelFile)
			written, err := os.ReadFile(onnxPath)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(bundle.TensorPath(bpath)); err != nil || st.Size() > 10<<20 {
				t.Fatalf("bundle tensors: %v (size must stay under 10 MB)", err)
			}

			// The image: trunk in ORT, then the Go tail; the whole written
			// model in ORT.
			h, w := 224, 288
			img := make([]float32, h*w*3)
			for i := range img {
				img[i] = float32(rng.Float64()*2 - 1)
			}
			shape := []int64{1, int64(h), int64(w), 3}
			trunk := testenv.Trunk(t, model, spec, cut, lib)
			defer trunk.Destroy()
			opt := backbone.Options{Library: lib, Threads: 1}
			mid, err := trunk.Run(context.Background(), backbone.Tensor{Data: img, Shape: shape})
			if err != nil {
				t.Fatal(err)
			}
			goOut, _, _, err := tail.Forward(mid[0].Data, int(mid[0].Shape[2]), int(mid[0].Shape[3]))
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := bundle.Load(bpath)
			if err != nil {
				t.Fatal(err)
			}
			ft := loaded.FineTuned
			if ft == nil || ft.File != FineTunedModelFile || len(ft.Tensors) != len(tail.Params()) {
				t.Fatalf("loaded bundle's fine-tuning record: %+v", ft)
			}
			whole, err := backbone.OpenGraph(written, []string{spec.Input}, []string{spec.Output}, opt)
			if err != nil {
				t.Fatal(err)
			}
			defer whole.Destroy()
			ortOut, err := whole.Run(context.Background(), backbone.Tensor{Data: img, Shape: shape})
			if err != nil {
				t.Fatal(err)
			}
			c := vectest.Cosine(goOut, ortOut[0].Data)
			t.Logf("%s from %s: ORT on the written model vs the Go tail: cosine %.7f", spec.Name, cut, c)
			if c < 0.9999 {
				t.Errorf("cosine %.7f", c)
			}

			// A missing model file is rebuilt, byte for byte.
			if err := os.Remove(onnxPath); err != nil {
				t.Fatal(err)
			}
			eng, err := bundle.Open(loaded, bundle.Options{ModelDir: dir, Library: lib, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			eng.Close()
			rebuilt, err := os.ReadFile(onnxPath)
			if err != nil || string(rebuilt) != string(written) {
				t.Fatalf("rebuilt model differs from the written one (%v)", err)
			}
		})
	}
}

// TestTrunkStore caches a stand-in trunk (ReLU of the input tensor) over
// two views of a few photos and reads it back: values within float16
// rounding, mirrored view mirrored, and a second open served from the files
// without running the trunk.
func TestTrunkStore(t *testing.T) {
	_, lib := testenv.Models(t)
	tmp := t.TempDir()
	set := writeClasses(t, filepath.Join(tmp, "data"), 2, 3)
	var paths []string
	for _, it := range set.Items {
		paths = append(paths, it.Path)
	}
	d, err := describe.New(colourRunner{}, describe.Settings{Scales: []int{16}, Pool: describe.PoolGAP})
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnxgraph.New(13, onnxgraph.FloatValue("in"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AddNode(onnxgraph.NewNode("Relu", "r", []string{"in"}, []string{"out"})); err != nil {
		t.Fatal(err)
	}
	if err := m.AddOutput("out"); err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := backbone.OpenGraph(data, []string{"in"}, []string{"out"}, backbone.Options{Library: lib, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Destroy()
	views := []describe.View{{Scale: 16}, {Scale: 16, Mirror: true}}
	dir := filepath.Join(tmp, "trunk")
	runs := 0
	open := func() *trunkStore {
		s, err := openTrunkStore(context.Background(), d, g, "NCHW", "sha", "out", 3, dir, paths, views, imageio.Limits{}, func(done, total int) { runs++ })
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	defer s.Close()
	if runs != 2*len(paths) {
		t.Fatalf("trunk ran %d times, want %d", runs, 2*len(paths))
	}
	for i, p := range paths {
		img, err := imageio.ReadFile(p, imageio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		for v, view := range views {
			want, h, w, err := d.ViewTensor(img, view)
			if err != nil {
				t.Fatal(err)
			}
			got, gh, gw, err := s.Trunk(i, v)
			if err != nil || gh != h || gw != w || s.Views(i) != 2 {
				t.Fatalf("image %d view %d: %d×%d, want %d×%d (%v)", i, v, gh, gw, h, w, err)
			}
			for j := range want {
				if math.Abs(float64(got[j]-max(want[j], 0))) > 2e-3*max(1, math.Abs(float64(want[j]))) {
					t.Fatalf("image %d view %d value %d: %v, want %v", i, v, j, got[j], max(want[j], 0))
				}
			}
		}
	}
	runs = 0
	s2 := open()
	defer s2.Close()
	if runs != 0 || s2.bytes != s.bytes {
		t.Fatalf("second open ran the trunk %d times; %d bytes vs %d", runs, s2.bytes, s.bytes)
	}
}
