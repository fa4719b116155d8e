package bundle

import (
	"context"
	"fmt"
	"image"

	"prodsearch/internal/backbone"
	"prodsearch/internal/describe"
)

// Options say where the runtime and models are and how many threads to use.
type Options struct {
	ModelDir string // "" = backbone.FindModelDir
	Library  string // "" = backbone.FindLibrary
	Threads  int    // 0 = all cores
}

// Engine is an opened bundle: one backbone session reused for every image.
// It owns native resources; Close releases them.
type Engine struct {
	b    Bundle
	sess *backbone.Session
	desc *describe.Describer
}

// Open starts the backbone of b.
func Open(b Bundle, opt Options) (*Engine, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	dir, err := backbone.FindModelDir(opt.ModelDir)
	if err != nil {
		return nil, err
	}
	sess, err := backbone.Open(b.Backbone, dir, backbone.Options{Library: opt.Library, Threads: opt.Threads})
	if err != nil {
		return nil, err
	}
	d, err := describe.New(sess, b.Describe)
	if err != nil {
		sess.Destroy()
		return nil, err
	}
	return &Engine{b: b, sess: sess, desc: d}, nil
}

// Bundle returns the recipe the engine runs.
func (e *Engine) Bundle() Bundle { return e.b }

// BundleID identifies the descriptors this engine produces.
func (e *Engine) BundleID() string { return e.b.ID() }

// Dim is the final descriptor length.
func (e *Engine) Dim() int { return e.b.Dim() }

// Describer exposes the backbone describer (descriptors before the heads),
// which training caches and fits heads on.
func (e *Engine) Describer() *describe.Describer { return e.desc }

// Describe returns the final descriptor of one decoded image.
func (e *Engine) Describe(ctx context.Context, img image.Image) ([]float32, error) {
	v, err := e.desc.Describe(ctx, img)
	if err != nil {
		return nil, err
	}
	return e.b.Heads.Apply(v), nil
}

// DescribeFiles describes files through the cache (which holds pre-head
// descriptors, so a new head never re-runs the network) and applies the heads.
func (e *Engine) DescribeFiles(ctx context.Context, paths []string, opt describe.FileOptions) ([][]float32, []describe.Failure, describe.Stats, error) {
	vecs, fails, st, err := e.desc.DescribeFiles(ctx, paths, opt)
	if err != nil {
		return nil, nil, st, err
	}
	for i, v := range vecs {
		if v != nil {
			vecs[i] = e.b.Heads.Apply(v)
		}
	}
	return vecs, fails, st, nil
}

// Close releases the backbone session.
func (e *Engine) Close() error {
	if e == nil || e.sess == nil {
		return nil
	}
	if err := e.sess.Destroy(); err != nil {
		return fmt.Errorf("closing %s: %w", e.b.Backbone.Name, err)
	}
	return nil
}
