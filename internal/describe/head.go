package describe

import (
	"errors"
	"fmt"
	"prodsearch/internal/vec"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Head kinds. Kind is informational (it tells a reader of a model bundle how
// the head was obtained); Apply only looks at the shapes and weights.
const (
	KindPCA    = "pca"    // unsupervised PCA whitening
	KindLw     = "lw"     // supervised learned whitening (Radenovic et al.)
	KindLinear = "linear" // metric-learning linear projection
	KindMLP    = "mlp"    // metric-learning 2-layer MLP
)

// maxHeadParams bounds the size of a single weight matrix so that a corrupt
// or hostile bundle cannot make Validate accept an absurd allocation.
const maxHeadParams = 1 << 28

// Head is one learned stage applied after the frozen backbone. It is kept
// general enough to express PCA whitening, Lw whitening and a linear or 2-layer
// MLP metric-learning head, so a model bundle only ever stores plain weights:
//
//	linear (Hidden == 0): y = normalize( W (x - Mean) )
//	MLP    (Hidden >  0): y = normalize( W relu( W1 (x - Mean) + B1 ) )
//
// Every stage L2-normalises its output because retrieval compares
// descriptors by cosine similarity and because the next stage (if any) was
// trained on normalised inputs. Matrices are row-major; the zero-length Mean
// or B1 means zero. The struct is JSON-serialisable as is.
type Head struct {
	Kind string `json:"kind"`
	In   int    `json:"in"`
	Out  int    `json:"out"`
	// Mean (length In, or empty) is subtracted from the input first.
	Mean []float32 `json:"mean,omitempty"`
	// Hidden is the width of the MLP hidden layer; 0 for a linear head.
	Hidden int `json:"hidden,omitempty"`
	// W1 (Hidden x In) and B1 (Hidden, or empty) form the MLP hidden layer.
	W1 []float32 `json:"w1,omitempty"`
	B1 []float32 `json:"b1,omitempty"`
	// W is Out x In for a linear head and Out x Hidden for an MLP.
	W []float32 `json:"w"`
}

// Heads is a chain of stages applied in order (for example whitening then a
// learned linear head). The empty chain is the identity followed by L2
// normalisation.
type Heads []Head

// batchRows bounds the rows pushed through one Sgemm in ApplyBatch so that
// transforming a large gallery does not need an extra full-size buffer.
const batchRows = 2048

// Validate reports whether the head's shapes and weights are consistent and
// finite, so a loaded bundle fails loudly instead of producing NaN
// descriptors or panicking on a short slice.
func (h *Head) Validate() error {
	if h == nil {
		return nil
	}
	if h.In <= 0 || h.Out <= 0 {
		return fmt.Errorf("head %q: dimensions must be positive, got in=%d out=%d", h.Kind, h.In, h.Out)
	}
	if h.Hidden < 0 {
		return fmt.Errorf("head %q: negative hidden width %d", h.Kind, h.Hidden)
	}
	if len(h.Mean) != 0 && len(h.Mean) != h.In {
		return fmt.Errorf("head %q: mean has length %d, want %d", h.Kind, len(h.Mean), h.In)
	}
	inW := h.In
	if h.Hidden > 0 {
		if h.Hidden > maxHeadParams/h.In {
			return fmt.Errorf("head %q: hidden layer %dx%d too large", h.Kind, h.Hidden, h.In)
		}
		if len(h.W1) != h.Hidden*h.In {
			return fmt.Errorf("head %q: w1 has length %d, want %d (hidden %d x in %d)", h.Kind, len(h.W1), h.Hidden*h.In, h.Hidden, h.In)
		}
		if len(h.B1) != 0 && len(h.B1) != h.Hidden {
			return fmt.Errorf("head %q: b1 has length %d, want %d", h.Kind, len(h.B1), h.Hidden)
		}
		inW = h.Hidden
	} else if len(h.W1) != 0 || len(h.B1) != 0 {
		return fmt.Errorf("head %q: w1/b1 set but hidden is 0", h.Kind)
	}
	if h.Out > maxHeadParams/inW {
		return fmt.Errorf("head %q: weight matrix %dx%d too large", h.Kind, h.Out, inW)
	}
	if len(h.W) != h.Out*inW {
		return fmt.Errorf("head %q: w has length %d, want %d (out %d x %d)", h.Kind, len(h.W), h.Out*inW, h.Out, inW)
	}
	for _, p := range []struct {
		name string
		v    []float32
	}{{"mean", h.Mean}, {"w1", h.W1}, {"b1", h.B1}, {"w", h.W}} {
		if i := vec.FirstNonFinite(p.v); i >= 0 {
			return fmt.Errorf("head %q: %s[%d] = %v: %w", h.Kind, p.name, i, p.v[i], ErrNotFinite)
		}
	}
	return nil
}

// Validate checks every stage and that each stage's output feeds the next
// stage's input.
func (hs Heads) Validate() error {
	for i := range hs {
		if err := hs[i].Validate(); err != nil {
			return fmt.Errorf("stage %d: %w", i, err)
		}
		if i > 0 && hs[i-1].Out != hs[i].In {
			return fmt.Errorf("stage %d (%s) takes %d-d input but stage %d (%s) produces %d-d", i, hs[i].Kind, hs[i].In, i-1, hs[i-1].Kind, hs[i-1].Out)
		}
	}
	return nil
}

// InDim is the descriptor size the chain expects, 0 for the empty chain
// (which accepts any size).
func (hs Heads) InDim() int {
	if len(hs) == 0 {
		return 0
	}
	return hs[0].In
}

// OutDim is the size of the final descriptor, 0 for the empty chain (which
// keeps the input size).
func (hs Heads) OutDim() int {
	if len(hs) == 0 {
		return 0
	}
	return hs[len(hs)-1].Out
}

// Clone returns a deep copy, so a snapshot taken during training is not
// changed by later optimiser steps.
func (hs Heads) Clone() Heads {
	if hs == nil {
		return nil
	}
	out := make(Heads, len(hs))
	for i := range hs {
		out[i] = hs[i].Clone()
	}
	return out
}

// Clone returns a deep copy of the head.
func (h Head) Clone() Head {
	c := h
	c.Mean = cloneF32(h.Mean)
	c.W1 = cloneF32(h.W1)
	c.B1 = cloneF32(h.B1)
	c.W = cloneF32(h.W)
	return c
}

// Apply maps one descriptor. A nil head is the identity followed by L2
// normalisation. It returns nil when len(x) != h.In, because the run-time
// call sites have no error path and a nil descriptor is easy to detect; call
// Validate once after loading a head.
func (h *Head) Apply(x []float32) []float32 {
	if h == nil {
		return vec.Normalized(x)
	}
	if len(x) != h.In {
		return nil
	}
	out := h.ApplyBatch([][]float32{x})
	if out == nil {
		return nil
	}
	return out[0]
}

// ApplyBatch maps many descriptors with matrix-matrix products (BLAS Sgemm),
// which is much faster than calling Apply per row. It returns nil if any row
// has the wrong length. The result rows share one backing array.
func (h *Head) ApplyBatch(xs [][]float32) [][]float32 {
	if h == nil {
		out := make([][]float32, len(xs))
		for i, x := range xs {
			out[i] = vec.Normalized(x)
		}
		return out
	}
	for _, x := range xs {
		if len(x) != h.In {
			return nil
		}
	}
	if len(xs) == 0 {
		return [][]float32{}
	}
	res := make([]float32, len(xs)*h.Out)
	out := make([][]float32, len(xs))
	for i := range xs {
		out[i] = res[i*h.Out : (i+1)*h.Out : (i+1)*h.Out]
	}
	rows := min(len(xs), batchRows)
	xb := make([]float32, rows*h.In)
	var hb []float32
	if h.Hidden > 0 {
		hb = make([]float32, rows*h.Hidden)
	}
	impl := blas32.Implementation()
	for start := 0; start < len(xs); start += batchRows {
		n := min(batchRows, len(xs)-start)
		for i := 0; i < n; i++ {
			row := xb[i*h.In : (i+1)*h.In]
			copy(row, xs[start+i])
			if len(h.Mean) != 0 {
				for j, m := range h.Mean {
					row[j] -= m
				}
			}
		}
		y := res[start*h.Out : (start+n)*h.Out]
		if h.Hidden == 0 {
			impl.Sgemm(blas.NoTrans, blas.Trans, n, h.Out, h.In, 1, xb, h.In, h.W, h.In, 0, y, h.Out)
		} else {
			impl.Sgemm(blas.NoTrans, blas.Trans, n, h.Hidden, h.In, 1, xb, h.In, h.W1, h.In, 0, hb, h.Hidden)
			for i := 0; i < n; i++ {
				row := hb[i*h.Hidden : (i+1)*h.Hidden]
				for j := range row {
					v := row[j]
					if len(h.B1) != 0 {
						v += h.B1[j]
					}
					row[j] = max(v, 0)
				}
			}
			impl.Sgemm(blas.NoTrans, blas.Trans, n, h.Out, h.Hidden, 1, hb, h.Hidden, h.W, h.Hidden, 0, y, h.Out)
		}
		for i := 0; i < n; i++ {
			vec.Normalize(out[start+i])
		}
	}
	return out
}

// Apply runs the chain on one descriptor; nil if its length does not match.
func (hs Heads) Apply(x []float32) []float32 {
	if len(hs) == 0 {
		return vec.Normalized(x)
	}
	for i := range hs {
		x = hs[i].Apply(x)
		if x == nil {
			return nil
		}
	}
	return x
}

// ApplyBatch runs the chain on many descriptors; nil if any length does not
// match.
func (hs Heads) ApplyBatch(xs [][]float32) [][]float32 {
	if len(hs) == 0 {
		return (*Head)(nil).ApplyBatch(xs)
	}
	for i := range hs {
		xs = hs[i].ApplyBatch(xs)
		if xs == nil {
			return nil
		}
	}
	return xs
}

// ErrNotFinite reports a NaN or infinite value where a descriptor or weight
// was expected.
var ErrNotFinite = errors.New("value is not finite")

func cloneF32(v []float32) []float32 {
	if v == nil {
		return nil
	}
	c := make([]float32, len(v))
	copy(c, v)
	return c
}

// Fold merges consecutive linear stages into one matrix wherever the maths
// allows: every stage L2-normalises, and normalize(W2·normalize(z)) equals
// normalize(W2·z) because scaling z by a positive number only scales W2·z.
// So a linear stage without a mean, following a linear stage, folds into
// W2·W1 with the first stage's mean. MLP stages and stages that subtract a
// mean of their own stay as they are. The result describes the same images
// (cosine 1 up to float rounding) with one matrix product instead of two.
func (hs Heads) Fold() Heads {
	var out Heads
	for _, h := range hs {
		if n := len(out); n > 0 && out[n-1].Hidden == 0 && h.Hidden == 0 && len(h.Mean) == 0 && out[n-1].Out == h.In {
			prev := out[n-1]
			w := make([]float32, h.Out*prev.In)
			blas32.Implementation().Sgemm(blas.NoTrans, blas.NoTrans, h.Out, prev.In, h.In, 1, h.W, h.In, prev.W, prev.In, 0, w, prev.In)
			out[n-1] = Head{Kind: prev.Kind + "+" + h.Kind, In: prev.In, Out: h.Out, Mean: cloneF32(prev.Mean), W: w}
			continue
		}
		out = append(out, h.Clone())
	}
	return out
}
