//go:build !cgo

package backbone

import (
	"context"
	"errors"
)

// errNoCgo explains why inference is unavailable in this build.
var errNoCgo = errors.New("backbone: this binary was built without cgo, so ONNX Runtime is unavailable (rebuild with CGO_ENABLED=1)")

// Session is unavailable without cgo; Open always fails.
type Session struct{ spec Spec }

// Open fails: ONNX Runtime needs cgo.
func Open(spec Spec, modelDir string, opt Options) (*Session, error) { return nil, errNoCgo }

// Spec returns the spec.
func (s *Session) Spec() Spec { return s.spec }

// Run fails: ONNX Runtime needs cgo.
func (s *Session) Run(ctx context.Context, input []float32, n, h, w int) (FeatureMap, error) {
	return FeatureMap{}, errNoCgo
}

// Destroy does nothing.
func (s *Session) Destroy() error { return nil }

// Graph is unavailable without cgo; OpenGraph always fails.
type Graph struct{}

// OpenGraph fails: ONNX Runtime needs cgo.
func OpenGraph(model []byte, inputs, outputs []string, opt Options) (*Graph, error) {
	return nil, errNoCgo
}

// Run fails: ONNX Runtime needs cgo.
func (g *Graph) Run(ctx context.Context, inputs ...Tensor) ([]Tensor, error) { return nil, errNoCgo }

// Destroy does nothing.
func (g *Graph) Destroy() error { return nil }
