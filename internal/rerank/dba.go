package rerank

import (
	"context"
	"fmt"

	"prodsearch/internal/index"
	"prodsearch/internal/vec"
)

// DBA performs database-side augmentation: every reference is replaced by
// normalize(x + Σ_j max(s_j,0)^alpha · x_j) over its k most similar other
// references, the reference itself weighing 1. Augmented references sit
// closer to their same-class neighbours, which is what makes the following
// search (and query expansion) more robust.
//
// The result keeps the IDs and positions of refs, so hits against it can be
// mapped back directly. Its cost is one exact R×R search; memory is the
// augmented copy of the references plus the search's working memory. If refs
// is an *index.Flat the result inherits its threads and memory budget.
func DBA(ctx context.Context, refs Corpus, k int, alpha float64) (*index.Flat, error) {
	sums, err := dbaSums(ctx, refs, k, alpha)
	if err != nil {
		return nil, err
	}
	return finishDBA(refs, sums)
}

// DBAWithQueries is DBA where the query set also augments the references: on
// top of its reference neighbours, each reference gains every query for
// which it is among the k most similar references, weighted the same way.
// This transfers query-side context (e.g. all the photos of a product taken
// by users) into the database.
func DBAWithQueries(ctx context.Context, refs Corpus, queries [][]float32, k int, alpha float64) (*index.Flat, error) {
	sums, err := dbaSums(ctx, refs, k, alpha)
	if err != nil {
		return nil, err
	}
	if k > 0 && len(queries) > 0 && refs.Len() > 0 {
		type nb struct {
			pos int
			w   float32
		}
		lists := make([][]nb, len(queries))
		err := refs.SearchBatchFunc(ctx, queries, k, func(qi int, hits []index.Hit) error {
			l := make([]nb, len(hits))
			for i, h := range hits {
				l[i] = nb{h.Index, float32(weight(h.Score, alpha))}
			}
			lists[qi] = l
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("rerank: DBA query search: %w", err)
		}
		// Accumulate serially in query order so that float rounding, and
		// hence every later ranking, does not depend on scheduling.
		d := refs.Dim()
		for qi, l := range lists {
			for _, n := range l {
				row := sums[n.pos*d : (n.pos+1)*d]
				axpy32(row, n.w, queries[qi])
			}
		}
	}
	return finishDBA(refs, sums)
}

// dbaSums returns, row-major, the unnormalised augmented sum of every
// reference with its k nearest other references. Sums are float32, like the
// index they become: a float64 copy would double DBA's memory, the dominant
// term at hackathon scale, for no measurable change in ranking.
func dbaSums(ctx context.Context, refs Corpus, k int, alpha float64) ([]float32, error) {
	if k < 0 {
		return nil, fmt.Errorf("rerank: DBA: negative k %d", k)
	}
	if err := checkAlpha(alpha); err != nil {
		return nil, err
	}
	n, d := refs.Len(), refs.Dim()
	if d <= 0 {
		return nil, fmt.Errorf("rerank: DBA: invalid dimension %d", d)
	}
	sums := make([]float32, n*d)
	for i := range n {
		copy(sums[i*d:(i+1)*d], refs.Vector(i))
	}
	if k == 0 || n < 2 {
		return sums, nil
	}
	qs := make([][]float32, n)
	for i := range qs {
		qs[i] = refs.Vector(i)
	}
	// Ask for k+1 because a reference normally finds itself first; it is
	// skipped wherever it ranks (an exact duplicate may outrank it).
	err := refs.SearchBatchFunc(ctx, qs, k+1, func(i int, hits []index.Hit) error {
		row := sums[i*d : (i+1)*d]
		used := 0
		for _, h := range hits {
			if h.Index == i {
				continue
			}
			if used == k {
				break
			}
			axpy32(row, float32(weight(h.Score, alpha)), refs.Vector(h.Index))
			used++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rerank: DBA search: %w", err)
	}
	return sums, nil
}

// finishDBA normalises the sums in place and wraps them in a new index with
// refs' IDs.
func finishDBA(refs Corpus, sums []float32) (*index.Flat, error) {
	n, d := refs.Len(), refs.Dim()
	ids := make([]string, n)
	for i := range n {
		vec.Normalize(sums[i*d : (i+1)*d])
		ids[i] = refs.ID(i)
	}
	vecs := sums
	var opts []index.Option
	if o, ok := refs.(interface{ Options() []index.Option }); ok {
		opts = o.Options()
	}
	f, err := index.NewFlatFrom(d, ids, vecs, opts...)
	if err != nil {
		return nil, fmt.Errorf("rerank: DBA: %w", err)
	}
	return f, nil
}
