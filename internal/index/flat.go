package index

import (
	"errors"
	"fmt"
	"math"
	"prodsearch/internal/vec"
	"runtime"
)

// ErrDuplicateID is returned (wrapped) when an ID is added twice. Flat never
// merges or overwrites silently: a repeated ID is almost always a bug in the
// caller's data.
var ErrDuplicateID = errors.New("index: duplicate id")

// ErrDim is returned (wrapped) when a vector's length does not match the
// index dimension or the dimension itself is invalid.
var ErrDim = errors.New("index: dimension mismatch")

// maxLen bounds the number of vectors so positions fit the int32 used by
// top-k selection (which halves its memory).
const maxLen = math.MaxInt32

// defaultMemoryBudget is the working memory SearchBatch may use on top of the
// index, the queries and its output: enough for blocks of a few hundred
// queries at k=1000 on every core.
const defaultMemoryBudget = 64 << 20

// Option configures a Flat.
type Option func(*config)

type config struct {
	threads int   // <= 0: GOMAXPROCS at search time
	budget  int64 // bytes of working memory for batch search
}

// WithThreads sets how many goroutines searches may use; n <= 0 (the
// default) means runtime.GOMAXPROCS(0) at search time.
func WithThreads(n int) Option { return func(c *config) { c.threads = n } }

// WithMemoryBudget bounds the working memory (per-query top-k state) of
// SearchBatch and SearchBatchFunc, in bytes, across all workers. Queries are
// processed in blocks sized to fit it; a budget too small for even one query
// per worker still processes one query per worker. bytes <= 0 restores the
// default (64 MiB).
func WithMemoryBudget(bytes int64) Option { return func(c *config) { c.budget = bytes } }

// Flat is an exact (brute-force) index over dense float32 vectors, ranking by
// dot product. Vectors live in one contiguous slice, so a scan streams memory
// linearly.
//
// Flat is not safe for concurrent writes: Add and Remove must not run
// concurrently with each other or with any read. Any number of reads (Search,
// SearchBatch, accessors) may run concurrently.
type Flat struct {
	cfg  config
	dim  int
	ids  []string
	vecs []float32 // len(ids)*dim values, row-major
	pos  map[string]int
}

// NewFlat returns an empty exact index for vectors of length dim. An invalid
// dim (<= 0) is reported by the first Add or search rather than by a panic.
func NewFlat(dim int, opts ...Option) *Flat {
	f := &Flat{dim: dim, pos: make(map[string]int)}
	for _, o := range opts {
		o(&f.cfg)
	}
	return f
}

// NewFlatFrom builds an index from len(ids) vectors stored row-major in vecs,
// without copying: the index takes ownership of vecs, which the caller must
// not modify afterwards. It is the bulk-loading path, avoiding the transient
// double memory of copying a large matrix vector by vector.
func NewFlatFrom(dim int, ids []string, vecs []float32, opts ...Option) (*Flat, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("%w: invalid dimension %d", ErrDim, dim)
	}
	if len(vecs) != len(ids)*dim {
		return nil, fmt.Errorf("%w: %d values for %d vectors of dimension %d", ErrDim, len(vecs), len(ids), dim)
	}
	if len(ids) > maxLen {
		return nil, fmt.Errorf("index: %d vectors exceed the limit of %d", len(ids), maxLen)
	}
	f := NewFlat(dim, opts...)
	f.ids = make([]string, len(ids))
	copy(f.ids, ids)
	f.pos = make(map[string]int, len(ids))
	for i, id := range ids {
		if err := checkID(id); err != nil {
			return nil, err
		}
		if _, dup := f.pos[id]; dup {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateID, id)
		}
		if err := checkFinite(vecs[i*dim : (i+1)*dim]); err != nil {
			return nil, fmt.Errorf("index: vector %q: %w", id, err)
		}
		f.pos[id] = i
	}
	f.vecs = vecs
	return f, nil
}

// Options returns options that reproduce this index's configuration, so that
// an index derived from it (for instance by re-ranking) searches the same way.
func (f *Flat) Options() []Option {
	return []Option{WithThreads(f.cfg.threads), WithMemoryBudget(f.cfg.budget)}
}

func checkID(id string) error {
	if id == "" {
		return errors.New("index: empty id")
	}
	return nil
}

// checkFinite rejects NaN and infinities, which would make scores unordered
// and rankings meaningless.
func checkFinite(v []float32) error {
	if i := vec.FirstNonFinite(v); i >= 0 {
		return fmt.Errorf("non-finite value %v at component %d", v[i], i)
	}
	return nil
}

// checkVec validates a vector against an index of dimension dim.
func checkVec(dim int, v []float32) error {
	if dim <= 0 {
		return fmt.Errorf("%w: invalid dimension %d", ErrDim, dim)
	}
	if len(v) != dim {
		return fmt.Errorf("%w: got %d, want %d", ErrDim, len(v), dim)
	}
	return checkFinite(v)
}

// checkEntry validates a reference about to be added to an index of
// dimension dim: Flat and HNSW refuse the same input the same way.
func checkEntry(dim int, id string, v []float32) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := checkVec(dim, v); err != nil {
		return fmt.Errorf("index: add %q: %w", id, err)
	}
	return nil
}

// Add appends a copy of vec under id.
func (f *Flat) Add(id string, vec []float32) error {
	if err := checkEntry(f.dim, id, vec); err != nil {
		return err
	}
	if _, dup := f.pos[id]; dup {
		return fmt.Errorf("%w: %q", ErrDuplicateID, id)
	}
	if len(f.ids) >= maxLen {
		return fmt.Errorf("index: add %q: index full (%d vectors)", id, maxLen)
	}
	f.pos[id] = len(f.ids)
	f.ids = append(f.ids, id)
	f.vecs = append(f.vecs, vec...)
	return nil
}

// Remove deletes id and reports whether it was present. The last vector is
// moved into the freed position (O(dim), no reshuffle), so the position of
// that one vector changes.
func (f *Flat) Remove(id string) bool {
	i, ok := f.pos[id]
	if !ok {
		return false
	}
	last := len(f.ids) - 1
	if i != last {
		f.ids[i] = f.ids[last]
		copy(f.vecs[i*f.dim:(i+1)*f.dim], f.vecs[last*f.dim:])
		f.pos[f.ids[i]] = i
	}
	f.ids[last] = ""
	f.ids = f.ids[:last]
	f.vecs = f.vecs[:last*f.dim]
	delete(f.pos, id)
	return true
}

// Close releases nothing (a Flat holds only memory); it exists so that Flat
// satisfies Index.
func (f *Flat) Close() error { return nil }

var _ Index = (*Flat)(nil)

// Len returns the number of vectors.
func (f *Flat) Len() int { return len(f.ids) }

// Dim returns the vector dimension.
func (f *Flat) Dim() int { return f.dim }

// ID returns the ID at position i, or "" if i is out of range.
func (f *Flat) ID(i int) string {
	if i < 0 || i >= len(f.ids) {
		return ""
	}
	return f.ids[i]
}

// Position returns the position of id and whether it is present.
func (f *Flat) Position(id string) (int, bool) {
	i, ok := f.pos[id]
	return i, ok
}

// Vector returns the vector at position i, or nil if i is out of range. It is
// a view into the index's storage (copying every vector would dominate
// re-ranking costs): callers must not modify it, and it is invalidated by the
// next Add or Remove.
func (f *Flat) Vector(i int) []float32 {
	if i < 0 || i >= len(f.ids) {
		return nil
	}
	return f.vecs[i*f.dim : (i+1)*f.dim : (i+1)*f.dim]
}

// threads returns the number of goroutines a search may use.
func (f *Flat) threads() int {
	if f.cfg.threads > 0 {
		return f.cfg.threads
	}
	return runtime.GOMAXPROCS(0)
}

// budget returns the batch-search working-memory budget in bytes.
func (f *Flat) budget() int64 {
	if f.cfg.budget > 0 {
		return f.cfg.budget
	}
	return defaultMemoryBudget
}
