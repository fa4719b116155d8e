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

// Recall is the mean, over queries, of the fraction of want[i] (the exact
// results) that got[i] also returns, matched by ID: how an approximate index
// is measured against Flat. A query with nothing to find counts as 1.
func Recall(got, want [][]Hit) float64 {
	var sum float64
	for i := range want {
		if len(want[i]) == 0 {
			sum++
			continue
		}
		ids := make(map[string]bool, len(want[i]))
		for _, h := range want[i] {
			ids[h.ID] = true
		}
		k := 0
		for _, h := range got[i] {
			if ids[h.ID] {
				k++
			}
		}
		sum += float64(k) / float64(len(want[i]))
	}
	return sum / float64(len(want))
}

// candidate is a scored position, the unit a top-k selection works on. It is
// kept small (no ID string) because selections touch millions of them.
type candidate struct {
	score float32
	pos   int32
}

// topK keeps the k best candidates seen so far in a bounded heap whose root
// is the worst retained candidate.
type topK struct {
	k   int
	ids []string // position -> ID, for tie-breaking
	h   heap[candidate]
}

// newTopKs makes n selections of the k best of ids, one per query of a block.
func newTopKs(n, k int, ids []string) []*topK {
	sels := make([]*topK, n)
	for i := range sels {
		sels[i] = newTopK(k, ids)
	}
	return sels
}

func newTopK(k int, ids []string) *topK {
	t := &topK{k: k, ids: ids}
	t.h = heap[candidate]{items: make([]candidate, 0, min(k, 1<<16)), less: t.worse}
	return t
}

// reset empties the selection, keeping its storage.
func (t *topK) reset() { t.h.reset() }

// worse reports whether a ranks after b (the inverse of Better on hits).
func (t *topK) worse(a, b candidate) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return t.ids[a.pos] > t.ids[b.pos]
}

// push offers a candidate to the selection. A score below the worst retained
// one is rejected here, without the call through the heap's comparison.
func (t *topK) push(score float32, pos int) {
	if t.h.len() == t.k && t.k > 0 && score < t.h.top().score {
		return
	}
	t.h.offer(candidate{score: score, pos: int32(pos)}, t.k)
}

// hits returns the retained candidates as hits, best first. The selection is
// left in an unspecified state; reset it before reuse.
func (t *topK) hits() []Hit {
	out := make([]Hit, t.h.len())
	for i, c := range t.h.items {
		out[i] = Hit{ID: t.ids[c.pos], Index: int(c.pos), Score: c.score}
	}
	SortHits(out)
	return out
}
