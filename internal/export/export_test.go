package export

import (
	"context"
	"image"
	"math/rand/v2"
	"testing"

	"prodsearch/internal/backbone"
	"prodsearch/internal/bundle"
	"prodsearch/internal/describe"
	"prodsearch/internal/imageio/imagetest"
	"prodsearch/internal/testenv"
	"prodsearch/internal/vec/vectest"
)

func randomHead(rng *rand.Rand, kind string, in, hidden, out int, mean bool) describe.Head {
	r := func(n int) []float32 { return vectest.Gaussian(rng, n) }
	h := describe.Head{Kind: kind, In: in, Out: out, Hidden: hidden}
	if mean {
		h.Mean = r(in)
	}
	if hidden > 0 {
		h.W1, h.B1, h.W = r(hidden*in), r(hidden), r(out*hidden)
	} else {
		h.W = r(out * in)
	}
	return h
}

// pixels is an exported graph's input for one image: the view prodsearch
// feeds its backbone, before normalisation, as N×H×W×3 floats.
func pixels(t *testing.T, d *describe.Describer, img image.Image, scale int) backbone.Tensor {
	t.Helper()
	r := d.ViewImage(img, scale)
	w, h := r.Rect.Dx(), r.Rect.Dy()
	out := make([]float32, 0, 3*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := r.PixOffset(r.Rect.Min.X+x, r.Rect.Min.Y+y)
			out = append(out, float32(r.Pix[o]), float32(r.Pix[o+1]), float32(r.Pix[o+2]))
		}
	}
	return backbone.Tensor{Data: out, Shape: []int64{1, int64(h), int64(w), 3}}
}

// checkExport runs the exported graph of b in ONNX Runtime on a few images
// and compares with prodsearch's own descriptor.
func checkExport(t *testing.T, b bundle.Bundle, models, lib string) {
	t.Helper()
	g, inputs, err := Graph(b, models)
	if err != nil {
		t.Fatal(err)
	}
	data, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(inputs))
	for i, in := range inputs {
		names[i] = in.Name
	}
	sess, err := backbone.OpenGraph(data, names, []string{Output}, backbone.Options{Library: lib, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Destroy()
	eng, err := bundle.Open(b, bundle.Options{ModelDir: models, Library: lib, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	// A describer per member prepares the inputs (they share crop and
	// scale where inputs are shared).
	members := b.Members
	if !b.IsEnsemble() {
		members = []bundle.Member{{Bundle: b, Weight: 1}}
	}
	for k, size := range [][2]int{{120, 90}, {97, 131}} {
		img := imagetest.Photo(uint64(k), size[0], size[1])
		feeds := make([]backbone.Tensor, len(inputs))
		for _, m := range members {
			me, err := bundle.Open(m.Bundle, bundle.Options{ModelDir: models, Library: lib, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			d := m.Bundle.Describe
			for _, s := range d.Scales {
				for i, in := range inputs {
					if in.Crop == d.Crop && in.Scale == s && in.MaxLong == d.MaxLong {
						feeds[i] = pixels(t, me.Describer(), img, s)
					}
				}
			}
			me.Close()
		}
		out, err := sess.Run(context.Background(), feeds...)
		if err != nil {
			t.Fatal(err)
		}
		want, err := eng.Describe(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		if len(out[0].Data) != len(want) {
			t.Fatalf("exported descriptor has %d values, prodsearch %d", len(out[0].Data), len(want))
		}
		if c := vectest.Cosine(out[0].Data, want); c < 0.9999 {
			t.Errorf("image %d (%dx%d): cosine %.6f between the exported graph and prodsearch", k, size[0], size[1], c)
		} else {
			t.Logf("image %d (%dx%d): cosine %.7f, inputs %v", k, size[0], size[1], c, names)
		}
	}
}

func TestExportMatchesDescribe(t *testing.T) {
	models, lib := testenv.Models(t)
	rng := rand.New(rand.NewPCG(1, 1))

	single, err := bundle.Default("coral_mnv1")
	if err != nil {
		t.Fatal(err)
	}
	single.Describe.Scales = []int{96}
	single.Heads = describe.Heads{randomHead(rng, describe.KindLw, 1024, 0, 64, true)}
	t.Run("single", func(t *testing.T) { checkExport(t, single, models, lib) })

	a, _ := bundle.Default("mnv2_int8")
	a.Describe = describe.Settings{Scales: []int{96}, Flip: true, Pool: describe.PoolGeM, P: 3, Crop: 0.8}
	a.Heads = describe.Heads{randomHead(rng, describe.KindMLP, 1280, 32, 16, true)}
	c, _ := bundle.Default("coral_mnv2")
	c.Describe = describe.Settings{Scales: []int{64, 96}, Pool: describe.PoolMax}
	ens := bundle.Bundle{Version: bundle.FormatVersion, Name: "ens", Members: []bundle.Member{{Bundle: a, Weight: 1}, {Bundle: c, Weight: 0.5}}}
	t.Run("ensemble", func(t *testing.T) { checkExport(t, ens, models, lib) })
}
