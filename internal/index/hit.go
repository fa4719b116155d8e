// Package index holds the nearest-neighbour indexes of prodsearch and the
// types they share.
//
// Descriptors are expected to be L2-normalised, so the dot product that every
// index ranks by is the cosine similarity. Flat is the exact, brute-force
// index; approximate or persistent implementations reuse Hit and SortHits so
// that every index ranks ties the same way.
package index

import (
	"cmp"
	"slices"
)

// Hit is one search result.
type Hit struct {
	// ID is the external identifier the vector was added with.
	ID string
	// Index is the vector's position in the index it was found in; it is
	// only stable until the index is next modified.
	Index int
	// Score is the similarity to the query (the dot product, i.e. the
	// cosine for unit vectors); higher is better.
	Score float32
}

// Better reports whether a ranks before b: higher score first, then
// lexicographically smaller ID. Breaking ties by ID (rather than by position)
// keeps rankings reproducible across indexes that store the same vectors in a
// different order.
func Better(a, b Hit) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.ID < b.ID
}

// SortHits sorts hits best first, in the order defined by Better.
func SortHits(hits []Hit) {
	slices.SortFunc(hits, func(a, b Hit) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// candidate is a scored position, the unit a top-k selection works on. It is
// kept small (no ID string) because selections touch millions of them.
type candidate struct {
	score float32
	pos   int32
}

// topK keeps the k best candidates seen so far in a bounded min-heap whose
// root is the worst retained candidate, so that rejecting a candidate (the
// common case once the heap is full) costs one comparison.
type topK struct {
	k    int
	ids  []string // position -> ID, for tie-breaking
	heap []candidate
}

func newTopK(k int, ids []string) *topK {
	return &topK{k: k, ids: ids, heap: make([]candidate, 0, min(k, 1<<16))}
}

// reset empties the selection, keeping its storage.
func (t *topK) reset() { t.heap = t.heap[:0] }

// worse reports whether a ranks after b (the inverse of Better on hits).
func (t *topK) worse(a, b candidate) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return t.ids[a.pos] > t.ids[b.pos]
}

// push offers a candidate to the selection.
func (t *topK) push(score float32, pos int) {
	if t.k <= 0 {
		return
	}
	c := candidate{score: score, pos: int32(pos)}
	if len(t.heap) < t.k {
		t.heap = append(t.heap, c)
		t.up(len(t.heap) - 1)
		return
	}
	root := t.heap[0]
	if score < root.score || !t.worse(root, c) {
		return
	}
	t.heap[0] = c
	t.down(0)
}

func (t *topK) up(i int) {
	h := t.heap
	for i > 0 {
		p := (i - 1) / 2
		if !t.worse(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (t *topK) down(i int) {
	h := t.heap
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.worse(h[r], h[l]) {
			m = r
		}
		if !t.worse(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// hits returns the retained candidates as hits, best first. The selection is
// left in an unspecified state; reset it before reuse.
func (t *topK) hits() []Hit {
	out := make([]Hit, len(t.heap))
	for i, c := range t.heap {
		out[i] = Hit{ID: t.ids[c.pos], Index: int(c.pos), Score: c.score}
	}
	SortHits(out)
	return out
}
