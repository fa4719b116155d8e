package store

import (
	"context"
	"image"
)

// Describer turns a decoded photo into a descriptor. It must be safe for
// concurrent use: indexing and the server call it from several goroutines.
type Describer interface {
	Describe(ctx context.Context, img image.Image) ([]float32, error)
	// Dim is the descriptor length.
	Dim() int
	// BundleID names the model bundle, recorded in the store so descriptors
	// from different bundles are never mixed.
	BundleID() string
}

// MinDecodeShort is the short side d lets an image be decoded at
// (imageio.DecodeAtLeast): a describer that knows how small its views are
// says so with a MinDecodeShort method; any other gets full-size decodes (0).
func MinDecodeShort(d Describer) int {
	if m, ok := d.(interface{ MinDecodeShort() int }); ok {
		return m.MinDecodeShort()
	}
	return 0
}
