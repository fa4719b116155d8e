// Package describetest runs the real describe pipeline (crop, resize with
// the panorama cap, tensor fill, pooling, normalisation) on a tiny fake
// backbone, so tests of uploads and indexing exercise every preprocessing
// step a production request takes without ONNX Runtime or a model file.
package describetest

import (
	"context"
	"fmt"
	"sync"

	"prodsearch/internal/backbone"
	"prodsearch/internal/describe"
)

// Channels is the descriptor length: mean R, G and B of each quadrant of
// the input tensor, then a constant so no descriptor is all zeros.
const Channels = 13

// QuadRunner is a backbone stand-in. Its 1x1 "feature map" is the mean of
// each colour channel per quadrant, so descriptors tell colours apart and
// also layouts: an image shown the wrong way up gets another descriptor.
// It records the largest input it was given, so tests can bound the work a
// hostile image causes.
type QuadRunner struct {
	// MinSize is the backbone's smallest input side, as in real specs.
	MinSize int

	mu      sync.Mutex
	calls   int
	largest [2]int // h, w of the input with the most pixels
	last    [2]int
}

// Spec describes the runner like a real NHWC model with inputs in [-1, 1].
func (r *QuadRunner) Spec() backbone.Spec {
	return backbone.Spec{
		Name: "quad-test", File: "none.onnx", SHA256: fmt.Sprintf("%064x", 7), Input: "input", Output: "out",
		Layout: "NHWC", Color: "RGB", Scale: 1 / 127.5, Mean: [3]float32{1, 1, 1}, Std: [3]float32{1, 1, 1},
		OutputKind: backbone.OutputFeatureMap, Channels: Channels, Stride: 32, MinSize: r.MinSize, DefaultSize: 224,
	}
}

// Run pools each quadrant of every NHWC image in the batch.
func (r *QuadRunner) Run(ctx context.Context, in []float32, n, h, w int) (backbone.FeatureMap, error) {
	if err := ctx.Err(); err != nil {
		return backbone.FeatureMap{}, err
	}
	if n <= 0 || h <= 0 || w <= 0 || len(in) != n*h*w*3 {
		return backbone.FeatureMap{}, fmt.Errorf("quad runner: input of %d values for %dx%dx%dx3", len(in), n, h, w)
	}
	r.mu.Lock()
	r.calls++
	if h*w > r.largest[0]*r.largest[1] {
		r.largest = [2]int{h, w}
	}
	r.last = [2]int{h, w}
	r.mu.Unlock()
	fm := backbone.FeatureMap{N: n, C: Channels, H: 1, W: 1, Data: make([]float32, n*Channels)}
	for i := range n {
		img := in[i*h*w*3 : (i+1)*h*w*3]
		out := fm.Data[i*Channels : (i+1)*Channels]
		var count [4]float32
		for y := range h {
			for x := range w {
				q := 0
				if 2*x >= w {
					q++
				}
				if 2*y >= h {
					q += 2
				}
				count[q]++
				px := img[(y*w+x)*3:]
				out[q*3] += px[0]
				out[q*3+1] += px[1]
				out[q*3+2] += px[2]
			}
		}
		for q := range 4 {
			for c := range 3 {
				out[q*3+c] /= max(count[q], 1)
			}
		}
		out[12] = 1
	}
	return fm, nil
}

// Largest returns the height and width of the largest input seen, and how
// many backbone calls there were.
func (r *QuadRunner) Largest() (h, w, calls int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.largest[0], r.largest[1], r.calls
}

// Last returns the height and width of the latest input.
func (r *QuadRunner) Last() (h, w int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[0], r.last[1]
}

// Describer is a describe.Describer on a QuadRunner with the BundleID a
// store needs, so it can stand in for a bundle engine in a server or an
// `index add`.
type Describer struct {
	*describe.Describer
	Runner *QuadRunner
}

// New builds a Describer with the given settings on a runner whose minimum
// input side is 64, like the builtin backbones.
func New(s describe.Settings) (*Describer, error) {
	r := &QuadRunner{MinSize: 64}
	d, err := describe.New(r, s)
	if err != nil {
		return nil, err
	}
	return &Describer{Describer: d, Runner: r}, nil
}

// BundleID names the fake so its descriptors are never mixed with a real
// bundle's.
func (d *Describer) BundleID() string { return "test-quad-" + d.Key() }
