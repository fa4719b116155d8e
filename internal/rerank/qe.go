// Package rerank improves a first ranking of references for each query using
// the structure of the descriptor space: alpha query expansion (αQE) and
// database-side augmentation (DBA) from Radenović et al. ("Fine-tuning CNN
// image retrieval with no human annotation", 2018), and k-reciprocal
// re-ranking from Zhong et al. ("Re-ranking person re-identification with
// k-reciprocal encoding", CVPR 2017).
//
// Everything here assumes L2-normalised descriptors, so that a dot product is
// a cosine similarity and 2-2·cos is the squared Euclidean distance. All
// functions are deterministic: the same inputs give bit-identical outputs
// whatever the number of threads.
package rerank

import (
	"context"
	"errors"
	"fmt"
	"math"

	"prodsearch/internal/index"
)

// Corpus is what re-ranking needs from a reference index: stored vectors by
// position and a streaming exact batch search. *index.Flat implements it;
// Hit.Index values must be positions valid for Vector. (index.Index, the
// serving interface, has neither.)
type Corpus interface {
	Len() int
	Dim() int
	ID(i int) string
	Vector(i int) []float32
	SearchBatchFunc(ctx context.Context, qs [][]float32, k int, fn func(qi int, hits []index.Hit) error) error
}

// weight is the αQE/DBA weight of a neighbour with similarity s. Negative
// similarities get weight 0 (s^α is undefined for them and they are not
// evidence of a match), except that α = 0 weighs every neighbour 1, which is
// plain average query expansion.
func weight(s float32, alpha float64) float64 {
	if alpha == 0 {
		return 1
	}
	return math.Pow(max(float64(s), 0), alpha)
}

// normalizeInto writes acc/‖acc‖ into dst. A zero sum is written as zeros:
// it has no direction to keep, and a zero vector scores 0 against everything
// rather than poisoning rankings with NaN.
func normalizeInto(dst []float32, acc []float64) {
	var ss float64
	for _, x := range acc {
		ss += x * x
	}
	inv := 0.0
	if ss > 0 {
		inv = 1 / math.Sqrt(ss)
	}
	for i, x := range acc {
		dst[i] = float32(x * inv)
	}
}

func checkAlpha(alpha float64) error {
	if alpha < 0 || math.IsNaN(alpha) || math.IsInf(alpha, 0) {
		return fmt.Errorf("rerank: alpha must be a finite number >= 0, got %v", alpha)
	}
	return nil
}

// AlphaQE returns the α-weighted query expansion of q:
// normalize(q + Σ_i max(sims[i],0)^alpha · neighbours[i]), the query itself
// weighing 1 (its similarity to itself). alpha = 0 gives average query
// expansion. neighbours are usually the top-ranked references for q and sims
// their similarities to q.
func AlphaQE(q []float32, neighbours [][]float32, sims []float32, alpha float64) ([]float32, error) {
	if len(neighbours) != len(sims) {
		return nil, fmt.Errorf("rerank: %d neighbours but %d similarities", len(neighbours), len(sims))
	}
	if err := checkAlpha(alpha); err != nil {
		return nil, err
	}
	if len(q) == 0 {
		return nil, errors.New("rerank: empty query")
	}
	acc := make([]float64, len(q))
	for i, x := range q {
		acc[i] = float64(x)
	}
	for n, x := range neighbours {
		if len(x) != len(q) {
			return nil, fmt.Errorf("rerank: neighbour %d has dimension %d, query %d", n, len(x), len(q))
		}
		axpy(acc, weight(sims[n], alpha), x)
	}
	out := make([]float32, len(q))
	normalizeInto(out, acc)
	return out, nil
}

// axpy adds w·x to acc.
func axpy(acc []float64, w float64, x []float32) {
	if w == 0 {
		return
	}
	for i, v := range x {
		acc[i] += w * float64(v)
	}
}

// axpy32 adds w·x to acc.
func axpy32(acc []float32, w float32, x []float32) {
	if w == 0 {
		return
	}
	for i, v := range x {
		acc[i] += w * v
	}
}
