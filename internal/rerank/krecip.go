package rerank

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/viterin/vek/vek32"
	"golang.org/x/sync/errgroup"

	"prodsearch/internal/index"
)

// KReciprocal re-ranks the references for every query with k-reciprocal
// encoding (Zhong et al. 2017) and returns the top k (k <= 0: all) per query.
//
// Queries and references form one set of N = Q+R points. Each point's
// k1-reciprocal neighbours (expanded by the k1/2-reciprocal sets of its
// members that overlap them by more than 2/3) are encoded as a sparse vector
// of Gaussian weights exp(-d), with d the squared distance divided by the
// point's largest distance to any point; local query expansion averages the
// encodings of the point's k2 nearest neighbours. The final distance is
// (1-lambda)·Jaccard + lambda·d, and Hit.Score is 1 minus it (higher is
// better). Zero k1, k2 or lambda are not defaults: k1 and k2 must be >= 1
// (the paper uses k1=20, k2=6, lambda=0.3) and lambda in [0, 1].
//
// It follows the authors' reference implementation but never materialises
// an N×N matrix: neighbour lists come from blockwise exact searches, the
// encodings are sparse, and Jaccard distances are computed through an
// inverted index only for pairs that share support (all other pairs have
// Jaccard distance 1 and keep their original order). Cost: about 2·N²·dim
// multiply-adds (the neighbour lists and each point's farthest distance)
// plus Q·R·dim for the final ranking; memory: a copy of the queries, O(N·k1·k2)
// for the encodings, and the index search budget. At hackathon phase-2 size
// (N = 54,775, dim 1280) that is several minutes on two cores and well under
// 1 GiB; it is meant for offline evaluation, not per-request serving.
//
// Exact ties between neighbour similarities are broken by position (queries
// first, then references in index order).
func KReciprocal(ctx context.Context, queries [][]float32, refs Corpus, k, k1, k2 int, lambda float64) ([][]index.Hit, error) {
	out := make([][]index.Hit, len(queries))
	err := kReciprocal(ctx, queries, refs, k, k1, k2, lambda, func(qi int, hits []index.Hit) error {
		out[qi] = hits
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// sparseRow is a sparse vector with indices in increasing order.
type sparseRow struct {
	idx []int32
	val []float64
}

func checkKRecip(k1, k2 int, lambda float64) error {
	if k1 < 1 || k2 < 1 {
		return fmt.Errorf("rerank: k-reciprocal needs k1, k2 >= 1, got k1=%d k2=%d", k1, k2)
	}
	if !(lambda >= 0 && lambda <= 1) {
		return fmt.Errorf("rerank: k-reciprocal lambda must be in [0,1], got %v", lambda)
	}
	return nil
}

func kReciprocal(ctx context.Context, qs [][]float32, refs Corpus, k, k1, k2 int, lambda float64, fn func(int, []index.Hit) error) error {
	if err := checkKRecip(k1, k2, lambda); err != nil {
		return err
	}
	nq, nr, d := len(qs), refs.Len(), refs.Dim()
	for i, q := range qs {
		if len(q) != d {
			return fmt.Errorf("rerank: k-reciprocal: query %d has dimension %d, index %d", i, len(q), d)
		}
	}
	if nq == 0 {
		return nil
	}
	if nr == 0 {
		for qi := range qs {
			if err := fn(qi, []index.Hit{}); err != nil {
				return err
			}
		}
		return nil
	}
	n := nq + nr

	// The queries become an index too, so that every point's neighbours
	// among all points are the merge of two exact searches.
	qids := make([]string, nq)
	qvecs := make([]float32, 0, nq*d)
	for i, q := range qs {
		qids[i] = fmt.Sprintf("q%010d", i) // ID order = position order
		qvecs = append(qvecs, q...)
	}
	var opts []index.Option
	if o, ok := refs.(interface{ Options() []index.Option }); ok {
		opts = o.Options()
	}
	qf, err := index.NewFlatFrom(d, qids, qvecs, opts...)
	if err != nil {
		return fmt.Errorf("rerank: k-reciprocal: %w", err)
	}
	pts := make([][]float32, n)
	for i := range nq {
		pts[i] = qf.Vector(i)
	}
	for i := range nr {
		pts[nq+i] = refs.Vector(i)
	}

	rank, err := neighbourLists(ctx, pts, qf, refs, k1+1)
	if err != nil {
		return err
	}
	maxd, err := farthest(ctx, pts, qf, refs)
	if err != nil {
		return err
	}
	half := int(math.RoundToEven(float64(k1) / 2)) // numpy's around
	recip := reciprocalSets(rank, k1+1)
	recipHalf := reciprocalSets(rank, half+1)

	v := make([]sparseRow, n)
	err = parallelFor(ctx, n, func(lo, hi int) error {
		for p := lo; p < hi; p++ {
			v[p] = encode(p, pts, maxd[p], recip[p], recipHalf)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if k2 > 1 {
		vqe := make([]sparseRow, n)
		err = parallelFor(ctx, n, func(lo, hi int) error {
			acc := newAccumulator(n)
			for p := lo; p < hi; p++ {
				rows := rank[p][:min(k2, len(rank[p]))]
				for _, r := range rows {
					for j, t := range v[r].idx {
						acc.add(t, v[r].val[j])
					}
				}
				vqe[p] = acc.drain(float64(len(rows)))
			}
			return nil
		})
		if err != nil {
			return err
		}
		v = vqe
	}
	inv := invertGallery(v, nq)

	// Every reference sharing support with a query gets a Jaccard distance
	// below 1; all others keep their original order, so the top k are among
	// the overlapping references and the first k+|overlap| original hits.
	counts := make([]int, nq)
	err = parallelFor(ctx, nq, func(lo, hi int) error {
		acc := newAccumulator(nr)
		for qi := lo; qi < hi; qi++ {
			overlap(acc, v[qi], inv)
			counts[qi] = len(acc.touched)
			acc.clear()
		}
		return nil
	})
	if err != nil {
		return err
	}
	kOut := k
	if kOut <= 0 || kOut > nr {
		kOut = nr
	}
	search := min(nr, kOut+slices.Max(counts))

	pool := sync.Pool{New: func() any { return newAccumulator(nr) }}
	err = refs.SearchBatchFunc(ctx, qs, search, func(qi int, hits []index.Hit) error {
		acc := pool.Get().(*accumulator)
		defer pool.Put(acc)
		overlap(acc, v[qi], inv)
		defer acc.clear()
		type cand struct {
			pos   int32
			s     float32
			final float64
		}
		cands := make([]cand, 0, kOut+len(acc.touched))
		seen := make(map[int32]struct{}, len(acc.touched))
		score := func(pos int32, s float32) {
			m := acc.sum[pos]
			jd := 1 - m/(2-m)
			dd := (2 - 2*float64(s)) / maxd[qi]
			cands = append(cands, cand{pos, s, (1-lambda)*jd + lambda*dd})
		}
		for _, h := range hits[:min(len(hits), kOut+len(acc.touched))] {
			seen[int32(h.Index)] = struct{}{}
			score(int32(h.Index), h.Score)
		}
		for _, g := range acc.touched {
			if _, ok := seen[g]; !ok {
				score(g, vek32.Dot(qs[qi], refs.Vector(int(g))))
			}
		}
		slices.SortFunc(cands, func(a, b cand) int {
			if c := cmp.Compare(a.final, b.final); c != 0 {
				return c
			}
			if c := cmp.Compare(b.s, a.s); c != 0 {
				return c
			}
			return cmp.Compare(refs.ID(int(a.pos)), refs.ID(int(b.pos)))
		})
		out := make([]index.Hit, min(kOut, len(cands)))
		for i := range out {
			c := cands[i]
			out[i] = index.Hit{ID: refs.ID(int(c.pos)), Index: int(c.pos), Score: float32(1 - c.final)}
		}
		return fn(qi, out)
	})
	if err != nil {
		return fmt.Errorf("rerank: k-reciprocal: %w", err)
	}
	return nil
}

// neighbourLists returns, for every point, itself followed by its kk-1 most
// similar other points (fewer if there are not enough), ties by position.
func neighbourLists(ctx context.Context, pts [][]float32, qf *index.Flat, refs Corpus, kk int) ([][]int32, error) {
	nq := qf.Len()
	type nb struct {
		pos int32
		s   float32
	}
	lists := make([][]nb, len(pts))
	collect := func(offset int) func(int, []index.Hit) error {
		return func(p int, hits []index.Hit) error {
			for _, h := range hits {
				lists[p] = append(lists[p], nb{int32(offset + h.Index), h.Score})
			}
			return nil
		}
	}
	// Sequential searches: the callbacks of one search touch distinct
	// points, but the two searches append to the same lists.
	if err := refs.SearchBatchFunc(ctx, pts, kk, collect(nq)); err != nil {
		return nil, fmt.Errorf("rerank: k-reciprocal neighbours: %w", err)
	}
	if err := qf.SearchBatchFunc(ctx, pts, kk, collect(0)); err != nil {
		return nil, fmt.Errorf("rerank: k-reciprocal neighbours: %w", err)
	}
	rank := make([][]int32, len(pts))
	for p, l := range lists {
		l = slices.DeleteFunc(l, func(x nb) bool { return int(x.pos) == p })
		slices.SortFunc(l, func(a, b nb) int {
			if c := cmp.Compare(b.s, a.s); c != 0 {
				return c
			}
			return cmp.Compare(a.pos, b.pos)
		})
		r := make([]int32, 1, kk)
		r[0] = int32(p)
		for _, x := range l[:min(len(l), kk-1)] {
			r = append(r, x.pos)
		}
		rank[p] = r
	}
	return rank, nil
}

// farthest returns each point's largest squared distance to any point
// (2 - 2·min similarity), found as the top hit of the negated point. It is
// the per-point normaliser of the reference implementation; a degenerate 0
// becomes 1.
func farthest(ctx context.Context, pts [][]float32, qf *index.Flat, refs Corpus) ([]float64, error) {
	const chunk = 4096
	minSim := make([]float32, len(pts))
	for i := range minSim {
		minSim[i] = float32(math.Inf(1))
	}
	d := qf.Dim()
	buf := make([]float32, min(chunk, len(pts))*d)
	neg := make([][]float32, 0, chunk)
	for lo := 0; lo < len(pts); lo += chunk {
		hi := min(lo+chunk, len(pts))
		neg = neg[:0]
		for p := lo; p < hi; p++ {
			row := buf[(p-lo)*d : (p-lo+1)*d]
			for j, x := range pts[p] {
				row[j] = -x
			}
			neg = append(neg, row)
		}
		for _, ix := range []Corpus{refs, qf} {
			err := ix.SearchBatchFunc(ctx, neg, 1, func(i int, hits []index.Hit) error {
				if len(hits) > 0 {
					minSim[lo+i] = min(minSim[lo+i], -hits[0].Score)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("rerank: k-reciprocal farthest points: %w", err)
			}
		}
	}
	maxd := make([]float64, len(pts))
	for p, s := range minSim {
		maxd[p] = 2 - 2*float64(s)
		if !(maxd[p] > 0) {
			maxd[p] = 1
		}
	}
	return maxd, nil
}

// reciprocalSets returns, for every point p, the members j of its first m
// neighbours that also have p among their first m neighbours, in p's
// neighbour order (p itself included).
func reciprocalSets(rank [][]int32, m int) [][]int32 {
	out := make([][]int32, len(rank))
	for p, r := range rank {
		fwd := r[:min(m, len(r))]
		var set []int32
		for _, j := range fwd {
			back := rank[j][:min(m, len(rank[j]))]
			if slices.Contains(back, int32(p)) {
				set = append(set, j)
			}
		}
		out[p] = set
	}
	return out
}

// encode builds the k-reciprocal feature of point p: its reciprocal set,
// expanded by every member's half-size reciprocal set that overlaps it by
// more than two thirds, weighted by exp(-normalised distance) and summing
// to 1.
func encode(p int, pts [][]float32, maxd float64, base []int32, half [][]int32) sparseRow {
	exp := slices.Clone(base)
	for _, c := range base {
		cand := half[c]
		inter := 0
		for _, x := range cand {
			if slices.Contains(base, x) {
				inter++
			}
		}
		if float64(inter) > 2.0/3.0*float64(len(cand)) {
			exp = append(exp, cand...)
		}
	}
	slices.Sort(exp)
	exp = slices.Compact(exp)
	row := sparseRow{idx: exp, val: make([]float64, len(exp))}
	var sum float64
	for i, j := range exp {
		s := vek32.Dot(pts[p], pts[j])
		w := math.Exp(-(2 - 2*float64(s)) / maxd)
		row.val[i] = w
		sum += w
	}
	for i := range row.val {
		row.val[i] /= sum
	}
	return row
}

// invertGallery returns, for every column t, the gallery rows (points from
// nq on, numbered from 0) with a non-zero entry in column t, in row order,
// and their values.
func invertGallery(v []sparseRow, nq int) []sparseRow {
	n := len(v)
	counts := make([]int, n)
	for _, r := range v[nq:] {
		for _, t := range r.idx {
			counts[t]++
		}
	}
	inv := make([]sparseRow, n)
	for t, c := range counts {
		inv[t] = sparseRow{idx: make([]int32, 0, c), val: make([]float64, 0, c)}
	}
	for g, r := range v[nq:] {
		for j, t := range r.idx {
			inv[t].idx = append(inv[t].idx, int32(g))
			inv[t].val = append(inv[t].val, r.val[j])
		}
	}
	return inv
}

// overlap accumulates into acc, for every gallery row sharing support with
// the query encoding q, the sum over shared columns of the smaller value
// (the numerator of the reference implementation's Jaccard distance).
func overlap(acc *accumulator, q sparseRow, inv []sparseRow) {
	for j, t := range q.idx {
		qv := q.val[j]
		col := inv[t]
		for i, g := range col.idx {
			acc.add(g, min(qv, col.val[i]))
		}
	}
}

// accumulator is a dense scratch vector that remembers which entries it
// touched, so clearing and reading it cost O(touched) rather than O(size).
type accumulator struct {
	sum     []float64
	mark    []bool
	touched []int32
}

func newAccumulator(n int) *accumulator {
	return &accumulator{sum: make([]float64, n), mark: make([]bool, n)}
}

func (a *accumulator) add(i int32, x float64) {
	if !a.mark[i] {
		a.mark[i] = true
		a.touched = append(a.touched, i)
	}
	a.sum[i] += x
}

func (a *accumulator) clear() {
	for _, i := range a.touched {
		a.sum[i] = 0
		a.mark[i] = false
	}
	a.touched = a.touched[:0]
}

// drain returns the touched entries divided by div as a sparse row and
// clears the accumulator.
func (a *accumulator) drain(div float64) sparseRow {
	slices.Sort(a.touched)
	row := sparseRow{idx: slices.Clone(a.touched), val: make([]float64, len(a.touched))}
	for i, t := range a.touched {
		row.val[i] = a.sum[t] / div
	}
	a.clear()
	return row
}

// parallelFor runs fn over [0, n) split into chunks on GOMAXPROCS
// goroutines, stopping at the first error or cancellation.
func parallelFor(ctx context.Context, n int, fn func(lo, hi int) error) error {
	workers := runtime.GOMAXPROCS(0)
	chunk := max(1, (n+4*workers-1)/(4*workers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			return fn(lo, hi)
		})
	}
	return g.Wait()
}
