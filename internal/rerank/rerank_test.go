package rerank

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/viterin/vek/vek32"

	"prodsearch/internal/eval"
	"prodsearch/internal/index"
	"prodsearch/internal/vec/vectest"
)

func approxEqual(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-6 {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
}

func unit(v ...float64) []float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x / math.Sqrt(s)
	}
	return out
}

func TestAlphaQE(t *testing.T) {
	q := []float32{1, 0, 0}
	nbs := [][]float32{{0, 1, 0}, {0, 0, 1}}
	sims := []float32{0.5, -0.2}

	got, err := AlphaQE(q, nbs, sims, 1)
	if err != nil {
		t.Fatal(err)
	}
	approxEqual(t, "alpha=1", got, unit(1, 0.5, 0)) // negative similarity weighs 0

	got, _ = AlphaQE(q, nbs, sims, 2)
	approxEqual(t, "alpha=2", got, unit(1, 0.25, 0))

	got, _ = AlphaQE(q, nbs, sims, 0)
	approxEqual(t, "alpha=0 (average QE)", got, unit(1, 1, 1))

	got, _ = AlphaQE(q, nil, nil, 3)
	approxEqual(t, "no neighbours", got, unit(1, 0, 0))

	if _, err := AlphaQE(q, nbs, sims[:1], 1); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, err := AlphaQE(q, [][]float32{{1, 2}}, []float32{1}, 1); err == nil {
		t.Error("dimension mismatch accepted")
	}
	if _, err := AlphaQE(q, nbs, sims, -1); err == nil {
		t.Error("negative alpha accepted")
	}
}

func flatOf(t testing.TB, vecs [][]float32, opts ...index.Option) *index.Flat {
	t.Helper()
	f := index.NewFlat(len(vecs[0]), opts...)
	for i, v := range vecs {
		if err := f.Add(fmt.Sprintf("r%04d", i), v); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestDBAHand(t *testing.T) {
	// a·b = 0.8, a·c = 0, b·c = 0.6.
	refs := flatOf(t, [][]float32{{1, 0}, {0.8, 0.6}, {0, 1}})
	ctx := context.Background()

	aug, err := DBA(ctx, refs, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	approxEqual(t, "a", aug.Vector(0), unit(1+0.8*0.8, 0.8*0.6))
	approxEqual(t, "b", aug.Vector(1), unit(0.8+0.8, 0.6))
	approxEqual(t, "c", aug.Vector(2), unit(0.6*0.8, 1+0.6*0.6))
	for i := range 3 {
		if aug.ID(i) != refs.ID(i) {
			t.Fatalf("position %d: ID %q, want %q", i, aug.ID(i), refs.ID(i))
		}
	}

	aug, _ = DBA(ctx, refs, 2, 0) // everything averaged
	for i := range 3 {
		approxEqual(t, "average", aug.Vector(i), unit(1.8, 1.6))
	}

	aug, _ = DBA(ctx, refs, 0, 1) // identity
	approxEqual(t, "k=0", aug.Vector(1), unit(0.8, 0.6))

	// The query (0,1) retrieves c first (similarity 1): c gains it.
	aug, err = DBAWithQueries(ctx, refs, [][]float32{{0, 1}}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	approxEqual(t, "a with queries", aug.Vector(0), unit(1+0.8*0.8, 0.8*0.6))
	approxEqual(t, "c with queries", aug.Vector(2), unit(0.6*0.8, 2+0.6*0.6))

	if _, err := DBA(ctx, refs, -1, 1); err == nil {
		t.Error("negative k accepted")
	}
}

// clusters returns unit vectors in nc planted classes: refsPer references and
// queriesPer queries per class, with labels.
func clusters(seed uint64, nc, refsPer, queriesPer, d int, noise float64) (refs, queries [][]float32, refLabel, queryLabel []int) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	centres := vectest.Centres(r, nc, d)
	sample := func(c int) []float32 { return vectest.Near(r, centres[c], noise) }
	for c := range nc {
		for range refsPer {
			refs = append(refs, sample(c))
			refLabel = append(refLabel, c)
		}
		for range queriesPer {
			queries = append(queries, sample(c))
			queryLabel = append(queryLabel, c)
		}
	}
	return refs, queries, refLabel, queryLabel
}

// meanAP is mAP@k with AP normalised by min(#relevant, k).
func meanAP(res [][]index.Hit, refLabel, queryLabel []int, k int) float64 {
	nRel := make(map[int]int)
	for _, l := range refLabel {
		nRel[l]++
	}
	var total float64
	for qi, hits := range res {
		var ranks []int
		for i, h := range hits[:min(k, len(hits))] {
			if refLabel[h.Index] == queryLabel[qi] {
				ranks = append(ranks, i)
			}
		}
		total += eval.APRanks(ranks, min(nRel[queryLabel[qi]], k))
	}
	return total / float64(len(res))
}

func TestApplyImprovesMAP(t *testing.T) {
	refVecs, queries, refLabel, queryLabel := clusters(1, 30, 12, 3, 32, 1.6)
	refs := flatOf(t, refVecs)
	ctx := context.Background()
	const k = 100
	score := func(p Params) float64 {
		t.Helper()
		res, err := Apply(ctx, queries, refs, k, p)
		if err != nil {
			t.Fatal(err)
		}
		return meanAP(res, refLabel, queryLabel, k)
	}
	base := score(Params{})
	qe := score(Params{QE: 3, QEAlpha: 3})
	dba := score(Params{DBA: 3, DBAAlpha: 3})
	both := score(Params{QE: 3, QEAlpha: 3, DBA: 3, DBAAlpha: 3})
	dbaq := score(Params{QE: 3, QEAlpha: 3, DBA: 3, DBAAlpha: 3, DBAQueries: true})
	kr := score(Params{KRecip: true, K1: 12, K2: 4, Lambda: 0.3})
	t.Logf("mAP@%d base %.4f  QE %.4f  DBA %.4f  DBA+QE %.4f  DBA(q)+QE %.4f  k-recip %.4f", k, base, qe, dba, both, dbaq, kr)
	if base > 0.9 || base < 0.2 {
		t.Fatalf("baseline mAP %.3f: the planted problem is too easy or too hard to show anything", base)
	}
	for name, m := range map[string]float64{"QE": qe, "DBA": dba, "DBA+QE": both, "DBA(q)+QE": dbaq, "k-reciprocal": kr} {
		if m <= base {
			t.Errorf("%s mAP %.4f does not improve on baseline %.4f", name, m, base)
		}
	}
}

func TestApplyDeterministic(t *testing.T) {
	refVecs, queries, _, _ := clusters(2, 10, 15, 4, 24, 1.2)
	p := Params{QE: 4, QEAlpha: 3, DBA: 5, DBAAlpha: 3, DBAQueries: true, KRecip: true, K1: 8, K2: 3, Lambda: 0.3}
	var first [][]index.Hit
	for run, opts := range [][]index.Option{
		{index.WithThreads(1)},
		{index.WithThreads(3), index.WithMemoryBudget(1)},
		{index.WithThreads(2)},
	} {
		res, err := Apply(context.Background(), queries, flatOf(t, refVecs, opts...), 20, p)
		if err != nil {
			t.Fatal(err)
		}
		if run == 0 {
			first = res
			continue
		}
		for qi := range res {
			if !slices.Equal(res[qi], first[qi]) {
				t.Fatalf("run %d query %d differs:\n%v\n%v", run, qi, res[qi], first[qi])
			}
		}
	}
}

func TestApplyValidation(t *testing.T) {
	refs := flatOf(t, [][]float32{{1, 0}, {0, 1}})
	ctx := context.Background()
	for _, p := range []Params{
		{QE: -1}, {DBA: -1}, {QEAlpha: -1, QE: 1}, {DBAAlpha: math.NaN()}, {DBAQueries: true},
		{KRecip: true}, {KRecip: true, K1: 3, K2: 1, Lambda: 2},
	} {
		if _, err := Apply(ctx, [][]float32{{1, 0}}, refs, 1, p); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if _, err := Apply(ctx, [][]float32{{1, 0, 0}}, refs, 1, Params{QE: 1}); !errors.Is(err, index.ErrDim) {
		t.Errorf("bad query dimension: got %v, want index.ErrDim", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Apply(cctx, [][]float32{{1, 0}}, refs, 1, Params{QE: 1, DBA: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
}

// refKReciprocal is a direct transcription of the authors' dense
// implementation (re_ranking in layumi/Person_reID_baseline_pytorch and
// zhunzhong07/person-re-ranking), with N×N matrices throughout.
func refKReciprocal(qs, gs [][]float32, gIDs []string, k, k1, k2 int, lambda float64) [][]index.Hit {
	all := append(slices.Clone(qs), gs...)
	n, nq := len(all), len(qs)
	sim := make([][]float32, n)
	dist := make([][]float64, n)
	for i := range n {
		sim[i] = make([]float32, n)
		dist[i] = make([]float64, n)
		for j := range n {
			sim[i][j] = vek32.Dot(all[i], all[j])
			dist[i][j] = 2 - 2*float64(sim[i][j])
		}
	}
	// original_dist = transpose(dist / max(dist, axis=0))
	colMax := make([]float64, n)
	for j := range n {
		for i := range n {
			colMax[j] = max(colMax[j], dist[i][j])
		}
	}
	orig := make([][]float64, n)
	for i := range n {
		orig[i] = make([]float64, n)
		for j := range n {
			orig[i][j] = dist[j][i] / colMax[i]
		}
	}
	// initial_rank = argsort(original_dist), self first.
	rank := make([][]int, n)
	for i := range n {
		r := make([]int, 0, n)
		for j := range n {
			if j != i {
				r = append(r, j)
			}
		}
		slices.SortStableFunc(r, func(a, b int) int { return cmp.Compare(dist[i][a], dist[i][b]) })
		rank[i] = append([]int{i}, r...)
	}
	recip := func(i, m int) []int {
		var out []int
		for _, f := range rank[i][:m] {
			if slices.Contains(rank[f][:m], i) {
				out = append(out, f)
			}
		}
		return out
	}
	half := int(math.RoundToEven(float64(k1) / 2))
	v := make([][]float64, n)
	for i := range n {
		kr := recip(i, k1+1)
		exp := slices.Clone(kr)
		for _, c := range kr {
			ck := recip(c, half+1)
			inter := 0
			for _, x := range ck {
				if slices.Contains(kr, x) {
					inter++
				}
			}
			if float64(inter) > 2.0/3.0*float64(len(ck)) {
				exp = append(exp, ck...)
			}
		}
		slices.Sort(exp)
		exp = slices.Compact(exp)
		v[i] = make([]float64, n)
		var sum float64
		for _, j := range exp {
			sum += math.Exp(-orig[i][j])
		}
		for _, j := range exp {
			v[i][j] = math.Exp(-orig[i][j]) / sum
		}
	}
	if k2 != 1 {
		vqe := make([][]float64, n)
		for i := range n {
			vqe[i] = make([]float64, n)
			for _, r := range rank[i][:k2] {
				for j := range n {
					vqe[i][j] += v[r][j]
				}
			}
			for j := range n {
				vqe[i][j] /= float64(k2)
			}
		}
		v = vqe
	}
	out := make([][]index.Hit, nq)
	for i := range nq {
		tempMin := make([]float64, n)
		for j := range n {
			if v[i][j] == 0 {
				continue
			}
			for r := range n {
				if v[r][j] != 0 {
					tempMin[r] += min(v[i][j], v[r][j])
				}
			}
		}
		type c struct {
			g     int
			final float64
		}
		var cs []c
		for g := range gs {
			jd := 1 - tempMin[nq+g]/(2-tempMin[nq+g])
			cs = append(cs, c{g, (1-lambda)*jd + lambda*orig[i][nq+g]})
		}
		slices.SortFunc(cs, func(a, b c) int {
			if x := cmp.Compare(a.final, b.final); x != 0 {
				return x
			}
			if x := cmp.Compare(sim[i][nq+b.g], sim[i][nq+a.g]); x != 0 {
				return x
			}
			return cmp.Compare(gIDs[a.g], gIDs[b.g])
		})
		if k > 0 && k < len(cs) {
			cs = cs[:k]
		}
		for _, x := range cs {
			out[i] = append(out[i], index.Hit{ID: gIDs[x.g], Index: x.g, Score: float32(1 - x.final)})
		}
	}
	return out
}

func TestKReciprocalMatchesReference(t *testing.T) {
	cases := []struct {
		seed        uint64
		k, k1, k2   int
		lambda      float64
		threads     int
		nc, rp, qp  int
		noise       float64
		budgetBytes int64
	}{
		{1, 10, 20, 6, 0.3, 2, 8, 15, 5, 1.0, 0},
		{2, 0, 5, 1, 0, 1, 6, 10, 4, 1.5, 0},
		{3, 7, 7, 3, 1, 3, 5, 12, 3, 0.8, 1},
		{4, 25, 11, 2, 0.5, 2, 10, 6, 2, 2.0, 1},
	}
	for _, tc := range cases {
		refVecs, queries, _, _ := clusters(tc.seed, tc.nc, tc.rp, tc.qp, 16, tc.noise)
		refs := flatOf(t, refVecs, index.WithThreads(tc.threads), index.WithMemoryBudget(tc.budgetBytes))
		ids := make([]string, refs.Len())
		for i := range ids {
			ids[i] = refs.ID(i)
		}
		got, err := KReciprocal(context.Background(), queries, refs, tc.k, tc.k1, tc.k2, tc.lambda)
		if err != nil {
			t.Fatal(err)
		}
		want := refKReciprocal(queries, refVecs, ids, tc.k, tc.k1, tc.k2, tc.lambda)
		for qi := range want {
			if !slices.Equal(got[qi], want[qi]) {
				t.Fatalf("case %+v query %d:\ngot  %v\nwant %v", tc, qi, got[qi], want[qi])
			}
		}
	}
}

func TestKReciprocalEdgeCases(t *testing.T) {
	ctx := context.Background()
	refs := flatOf(t, [][]float32{{1, 0}, {0, 1}})
	if res, err := KReciprocal(ctx, nil, refs, 5, 20, 6, 0.3); err != nil || len(res) != 0 {
		t.Fatalf("no queries: %v %v", res, err)
	}
	res, err := KReciprocal(ctx, [][]float32{{1, 0}}, refs, 5, 20, 6, 0.3)
	if err != nil || len(res[0]) != 2 || res[0][0].ID != "r0000" {
		t.Fatalf("tiny set: %v %v", res, err)
	}
	if _, err := KReciprocal(ctx, [][]float32{{1, 0}}, refs, 5, 0, 6, 0.3); err == nil {
		t.Fatal("k1 = 0 accepted")
	}
	if _, err := KReciprocal(ctx, [][]float32{{1}}, refs, 5, 2, 1, 0.3); err == nil {
		t.Fatal("bad query dimension accepted")
	}
}
