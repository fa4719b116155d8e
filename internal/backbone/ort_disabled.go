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
