// Package storetest provides a deterministic stand-in for the ONNX describer,
// so store and server tests (and the load generator) run without a model.
package storetest

import (
	"context"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"prodsearch/internal/vec/vectest"
)

const (
	grid    = 2 // spatial cells per side
	bins    = 4 // per colour channel
	samples = 64
	raw     = grid * grid * bins * bins * bins
)

// ColourDescriber describes a photo by a spatial colour histogram, square
// rooted (Hellinger) and randomly projected to Dim values, then L2
// normalised. It is cheap, deterministic and good enough that a photo of a
// product tends to retrieve other photos of it; the projection makes the
// search cost that of a real descriptor of the same size.
type ColourDescriber struct {
	dim  int
	proj []float32 // raw x dim, fixed seed
}

// NewColourDescriber returns a describer producing dim-long descriptors.
func NewColourDescriber(dim int) *ColourDescriber {
	p := vectest.Gaussian(rand.New(rand.NewPCG(42, uint64(dim))), raw*dim)
	return &ColourDescriber{dim: dim, proj: p}
}

// Dim is the descriptor length.
func (d *ColourDescriber) Dim() int { return d.dim }

// BundleID names the fake so a store filled by it is never opened with the
// real backbone.
func (d *ColourDescriber) BundleID() string { return fmt.Sprintf("test-colour-histogram-%d", d.dim) }

// Describe samples a samples x samples grid of pixels.
func (d *ColourDescriber) Describe(ctx context.Context, img image.Image) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := img.Bounds()
	if b.Empty() {
		return nil, fmt.Errorf("storetest: empty image")
	}
	var h [raw]float32
	for sy := range samples {
		y := b.Min.Y + (2*sy+1)*b.Dy()/(2*samples)
		cy := sy * grid / samples
		for sx := range samples {
			x := b.Min.X + (2*sx+1)*b.Dx()/(2*samples)
			cx := sx * grid / samples
			r, g, bl, _ := img.At(x, y).RGBA()
			bin := int(r>>14)*bins*bins + int(g>>14)*bins + int(bl>>14)
			h[(cy*grid+cx)*bins*bins*bins+bin]++
		}
	}
	out := make([]float32, d.dim)
	for i, v := range h {
		if v == 0 {
			continue
		}
		w := float32(math.Sqrt(float64(v)))
		row := d.proj[i*d.dim : (i+1)*d.dim]
		for j := range out {
			out[j] += w * row[j]
		}
	}
	var n float64
	for _, v := range out {
		n += float64(v) * float64(v)
	}
	inv := float32(1 / math.Sqrt(n))
	for j := range out {
		out[j] *= inv
	}
	return out, nil
}
