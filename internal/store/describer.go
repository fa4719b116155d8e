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
