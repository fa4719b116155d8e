package index

import (
	"context"
	"fmt"
	"math/rand/v2"
	"prodsearch/internal/vec/vectest"
	"slices"
	"testing"

	"gonum.org/v1/gonum/blas"
	gonumblas "gonum.org/v1/gonum/blas/gonum"
)

// benchFlat builds n random (not normalised; irrelevant to speed) vectors.
func benchFlat(b *testing.B, n, d int) *Flat {
	b.Helper()
	r := rand.New(rand.NewPCG(uint64(n), uint64(d)))
	vecs := make([]float32, n*d)
	for i := range vecs {
		vecs[i] = r.Float32() - 0.5
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%07d", i)
	}
	f, err := NewFlatFrom(d, ids, vecs)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func benchQueries(n, d int) [][]float32 {
	r := rand.New(rand.NewPCG(42, uint64(n)))
	qs := make([][]float32, n)
	for i := range qs {
		qs[i] = make([]float32, d)
		for j := range qs[i] {
			qs[i][j] = r.Float32() - 0.5
		}
	}
	return qs
}

// BenchmarkSearch: one query against 100k x 1280 (memory-bandwidth bound).
func BenchmarkSearch(b *testing.B) {
	f := benchFlat(b, 100_000, 1280)
	q := benchQueries(1, 1280)[0]
	for b.Loop() {
		if _, err := f.Search(context.Background(), q, 100, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func reportGFLOPs(b *testing.B, q, r, d int) {
	b.ReportMetric(2*float64(q)*float64(r)*float64(d)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkSearchBatch: the production path (tiled vek32.Dot), 1000 queries
// against the hackathon's 36,748 references, top 1000.
func BenchmarkSearchBatch(b *testing.B) {
	const nq, nr, d = 1000, 36_748, 1280
	f := benchFlat(b, nr, d)
	qs := benchQueries(nq, d)
	for b.Loop() {
		if err := f.SearchBatchFunc(context.Background(), qs, 1000, func(int, []Hit) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	reportGFLOPs(b, nq, nr, d)
}

// BenchmarkSearchBatchGemm is the same search with the scores of each block
// of queries against chunks of references computed by gonum's Sgemm, kept to
// justify the choice of kernel.
func BenchmarkSearchBatchGemm(b *testing.B) {
	const nq, nr, d = 1000, 36_748, 1280
	f := benchFlat(b, nr, d)
	qs := benchQueries(nq, d)
	for b.Loop() {
		if err := searchBatchGemm(f, qs, 1000, func(int, []Hit) {}); err != nil {
			b.Fatal(err)
		}
	}
	reportGFLOPs(b, nq, nr, d)
}

// searchBatchGemm mirrors SearchBatchFunc with a blocked Sgemm kernel:
// blocks of 256 queries x chunks of 1024 references, one block per worker.
func searchBatchGemm(f *Flat, qs [][]float32, k int, fn func(qi int, hits []Hit)) error {
	const qb, rb = 256, 1024
	d, n := f.dim, f.Len()
	type work struct {
		qbuf, scores []float32
		sels         []*topK
	}
	newWork := func() work {
		return work{make([]float32, qb*d), make([]float32, qb*rb), newTopKs(qb, k, f.ids)}
	}
	return forEachBlock(context.Background(), f.threads(), len(qs), qb, newWork, func(_ context.Context, w work, lo, hi int) error {
		var impl gonumblas.Implementation
		m := hi - lo
		for i := lo; i < hi; i++ {
			copy(w.qbuf[(i-lo)*d:], qs[i])
		}
		for r0 := 0; r0 < n; r0 += rb {
			r1 := min(r0+rb, n)
			impl.Sgemm(blas.NoTrans, blas.Trans, m, r1-r0, d, 1, w.qbuf, d, f.vecs[r0*d:r1*d], d, 0, w.scores, rb)
			for i := range m {
				for j := r0; j < r1; j++ {
					w.sels[i].push(w.scores[i*rb+j-r0], j)
				}
			}
		}
		for i := range m {
			fn(lo+i, w.sels[i].hits())
			w.sels[i].reset()
		}
		return nil
	})
}

func TestGemmVariantAgrees(t *testing.T) {
	// The benchmark variant must compute the same ranking (up to float
	// rounding, so compare on well-separated random data by ID sets).
	r := rand.New(rand.NewPCG(9, 9))
	f := randomFlat(t, r, 300, 32, WithThreads(2))
	qs := [][]float32{vectest.Unit(r, 32), vectest.Unit(r, 32)}
	want, err := f.SearchBatch(context.Background(), qs, 5)
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]Hit, len(qs))
	if err := searchBatchGemm(f, qs, 5, func(qi int, h []Hit) { got[qi] = h }); err != nil {
		t.Fatal(err)
	}
	for i := range qs {
		if !slices.Equal(ids(got[i]), ids(want[i])) {
			t.Fatalf("query %d: %v vs %v", i, got[i], want[i])
		}
	}
}
