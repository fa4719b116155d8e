package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"prodsearch/internal/eval"
	"slices"
	"sort"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// HoldOutClasses splits image indices by CLASS, so validation measures what
// the product needs: retrieval of classes the head never saw (GroceryStore's
// test classes are disjoint from training). round(frac x classes) classes
// go to validation — at least one when frac > 0 and, when there are 2 or
// more classes, at most all but one. frac is clamped to [0, 1]. The choice
// depends only on the set of labels and seed, not their order; both index
// lists are ascending.
func HoldOutClasses(labels []string, frac float64, seed int64) (trainIdx, valIdx []int) {
	set := map[string]bool{}
	for _, l := range labels {
		set[l] = true
	}
	names := make([]string, 0, len(set))
	for l := range set {
		names = append(names, l)
	}
	sort.Strings(names)
	if math.IsNaN(frac) {
		frac = 0
	}
	frac = min(max(frac, 0), 1)
	nVal := int(math.Round(frac * float64(len(names))))
	if frac > 0 && nVal == 0 && len(names) > 0 {
		nVal = 1
	}
	if frac < 1 && nVal == len(names) && len(names) > 1 {
		nVal = len(names) - 1
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x686f6c646f7574))
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	val := map[string]bool{}
	for _, l := range names[:nVal] {
		val[l] = true
	}
	for i, l := range labels {
		if val[l] {
			valIdx = append(valIdx, i)
		} else {
			trainIdx = append(trainIdx, i)
		}
	}
	return trainIdx, valIdx
}

// ValMAP is an exact leave-one-out retrieval evaluation: every image queries
// all the others by cosine similarity, AP is eval's (eval.APRanks) with R
// the number of other images of its class, and r1 is the fraction of queries
// whose nearest neighbour has the same class. Images whose class has no
// other image are not used as queries (they still act as distractors). Ties
// are broken by index so the result is deterministic. Rows need not be
// normalised.
func ValMAP(X [][]float32, labels []string) (mAP, r1 float64, err error) {
	d, err := checkMatrix(X, 2)
	if err != nil {
		return 0, 0, fmt.Errorf("valmap: %w", err)
	}
	ids, _, _, err := classIndex(labels, len(X), 0)
	if err != nil {
		return 0, 0, fmt.Errorf("valmap: %w", err)
	}
	n := len(X)
	m := make([]float32, n*d)
	for i, row := range X {
		copy(m[i*d:], row)
	}
	normalizeRows(m, n, d, nil)
	count := make(map[int]int)
	for _, c := range ids {
		count[c]++
	}
	const chunk = 256
	sims := make([]float32, chunk*n)
	order := make([]int, 0, n)
	var ranks []int
	queries := 0
	impl := blas32.Implementation()
	for q0 := 0; q0 < n; q0 += chunk {
		qn := min(chunk, n-q0)
		impl.Sgemm(blas.NoTrans, blas.Trans, qn, n, d, 1, m[q0*d:], d, m, d, 0, sims, n)
		for qi := 0; qi < qn; qi++ {
			q := q0 + qi
			r := count[ids[q]] - 1
			if r == 0 {
				continue
			}
			s := sims[qi*n : (qi+1)*n]
			order = order[:0]
			for j := 0; j < n; j++ {
				if j != q {
					order = append(order, j)
				}
			}
			slices.SortFunc(order, func(a, b int) int {
				switch {
				case s[a] > s[b]:
					return -1
				case s[a] < s[b]:
					return 1
				}
				return a - b
			})
			ranks = ranks[:0]
			for k, j := range order {
				if ids[j] == ids[q] {
					if ranks = append(ranks, k); len(ranks) == r {
						break
					}
				}
			}
			mAP += eval.APRanks(ranks, r)
			if ids[order[0]] == ids[q] {
				r1++
			}
			queries++
		}
	}
	if queries == 0 {
		return 0, 0, fmt.Errorf("valmap: %w: no class has 2 or more images", ErrSmallClass)
	}
	return mAP / float64(queries), r1 / float64(queries), nil
}
