package main

import (
	"context"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"prodsearch/internal/backbone"
	"prodsearch/internal/describe"
	"prodsearch/internal/imageio/imagetest"
	"prodsearch/internal/vec"
)

// fakeRunner stands in for ONNX Runtime: a 2×2 feature map that depends on
// every input value, and the GeM+L2 of each view in call order, as the
// PyTorch peer would return them.
type fakeRunner struct {
	spec  backbone.Spec
	views []float32
}

func (f *fakeRunner) Spec() backbone.Spec { return f.spec }

func (f *fakeRunner) Run(_ context.Context, input []float32, n, h, w int) (backbone.FeatureMap, error) {
	c, per := f.spec.Channels, 3*h*w
	fm := backbone.FeatureMap{N: n, C: c, H: 2, W: 2, Data: make([]float32, n*c*4)}
	pooled := make([]float32, c)
	for v := range n {
		var s float64
		for i, x := range input[v*per : (v+1)*per] {
			s += float64(x) * float64(i%7+1)
		}
		m := fm.At(v)
		for i := range m {
			m[i] = float32(math.Abs(math.Sin(s*1e-3*float64(i/4+1) + float64(i%4))))
		}
		if err := describe.Pool(pooled, m, c, 4, describe.PoolGeM, 3); err != nil {
			return fm, err
		}
		vec.Normalize(pooled)
		f.views = append(f.views, pooled...)
	}
	return fm, nil
}

// writeImages writes PNGs of three aspect ratios, so that batches hold
// several shape groups, the case where views are hardest to map to images.
func writeImages(t *testing.T, n int) []string {
	t.Helper()
	dir := t.TempDir()
	sizes := []image.Point{{90, 90}, {90, 120}, {120, 90}}
	var paths []string
	for i := range n {
		sz := sizes[i%len(sizes)]
		p := filepath.Join(dir, strings.Repeat("a", i+1)+".png")
		imagetest.WriteFile(t, p, imagetest.PNG(t, imagetest.Photo(uint64(i), sz.X, sz.Y)))
		paths = append(paths, p)
	}
	return paths
}

// TestRecordReplay checks the peer plumbing without ONNX Runtime or Python:
// recording the first photos' tensors, replaying per-view descriptors through
// the describer, and getting back the very descriptors of the recorded run.
func TestRecordReplay(t *testing.T) {
	spec, err := backbone.LookupSpec("coral_mnv1")
	if err != nil {
		t.Fatal(err)
	}
	paths := writeImages(t, 7)
	set := describe.Settings{Scales: []int{64, 96}, Flip: true, Pool: describe.PoolGeM, P: 3}
	opt := describe.FileOptions{Batch: 2, Workers: 2}
	const peerN = 4 // two whole batches
	ctx := context.Background()

	fake := &fakeRunner{spec: spec}
	rec := &recordingRunner{Runner: fake}
	d, err := describe.New(rec, set)
	if err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(t.TempDir(), "input.f32")
	if err := rec.startRecording(input, peerN*4); err != nil {
		t.Fatal(err)
	}
	vecs, fails, _, err := d.DescribeFiles(ctx, paths, opt)
	if err != nil || len(fails) > 0 {
		t.Fatal(err, fails)
	}
	if err := rec.stopRecording(); err != nil {
		t.Fatal(err)
	}
	if rec.recorded != peerN*4 || rec.views != len(paths)*4 {
		t.Fatalf("recorded %d views of %d, want %d of %d", rec.recorded, rec.views, peerN*4, len(paths)*4)
	}
	var floats int
	for _, c := range rec.calls {
		floats += c.N * 3 * c.H * c.W
	}
	if st, err := os.Stat(input); err != nil || st.Size() != int64(4*floats) {
		t.Fatalf("input file: %v, want %d bytes", err, 4*floats)
	}
	if len(rec.calls) < 2*len(set.Scales)+1 {
		t.Fatalf("only %d calls: the images should need several shape groups", len(rec.calls))
	}

	peer := fake.views[:peerN*4*spec.Channels]
	pv, err := replay(ctx, spec, rec.calls, peer, set, paths[:peerN], opt)
	if err != nil {
		t.Fatal(err)
	}
	lo, mean := cosineStats(vecs[:peerN], pv)
	if lo < 0.999999 {
		t.Fatalf("replayed descriptors differ: cos min %v mean %v", lo, mean)
	}
	// Another image's descriptor must not pass: the check has teeth.
	if lo, _ := cosineStats(vecs[:1], pv[1:2]); lo > 0.9999 {
		t.Fatalf("different photos have cosine %v", lo)
	}

	// A different pipeline (no flip) is caught by the shape/checksum check.
	noFlip := set
	noFlip.Flip = false
	if _, err := replay(ctx, spec, rec.calls, peer, noFlip, paths[:peerN], opt); err == nil || !strings.Contains(err.Error(), "replay: call 0") {
		t.Fatalf("mismatched replay: err = %v", err)
	}
}

func TestCosineStats(t *testing.T) {
	a := [][]float32{{1, 0}, {0, 1}}
	if lo, mean := cosineStats(a, [][]float32{{1, 0}, {1, 1}}); math.Abs(lo-math.Sqrt(0.5)) > 1e-6 || math.Abs(mean-(1+math.Sqrt(0.5))/2) > 1e-6 {
		t.Fatalf("got %v %v", lo, mean)
	}
	if lo, _ := cosineStats(a, [][]float32{{1, 0}, nil}); lo != -1 {
		t.Fatalf("missing vector: min %v, want -1", lo)
	}
}
