package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"prodsearch/internal/vec/vectest"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// synthClusters returns n unit vectors in clusters of about perCluster
// members: the shape of product photos (several views per product), which
// unlike uniform noise has the neighbourhood structure ANN relies on.
func synthClusters(seed uint64, n, dim, perCluster int, spread float64) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	nc := max(1, n/perCluster)
	centers := vectest.Centres(r, nc, dim)
	out := make([][]float32, n)
	for i := range out {
		out[i] = vectest.Near(r, centers[r.IntN(nc)], spread)
	}
	return out
}

// bruteTopK is the exact reference: indices of the k largest inner products.
func bruteTopK(refs [][]float32, q []float32, k int, keep func(int) bool) []int {
	type sc struct {
		i int
		s float32
	}
	all := make([]sc, 0, len(refs))
	for i, r := range refs {
		if keep != nil && !keep(i) {
			continue
		}
		var s float32
		for j := range r {
			s += r[j] * q[j]
		}
		all = append(all, sc{i, s})
	}
	slices.SortFunc(all, func(a, b sc) int {
		if a.s > b.s {
			return -1
		}
		if a.s < b.s {
			return 1
		}
		return a.i - b.i
	})
	out := make([]int, 0, k)
	for _, a := range all[:min(k, len(all))] {
		out = append(out, a.i)
	}
	return out
}

func recallAt(got []Hit, want []int) float64 {
	if len(want) == 0 {
		return 1
	}
	set := make(map[int]bool, len(want))
	for _, w := range want {
		set[w] = true
	}
	n := 0
	for _, h := range got {
		if set[h.Index] {
			n++
		}
	}
	return float64(n) / float64(len(want))
}

func buildHNSW(t testing.TB, vecs [][]float32, cfg HNSWConfig) *HNSW {
	t.Helper()
	h, err := NewHNSW(len(vecs[0]), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(vecs))
	for i := range ids {
		ids[i] = fmt.Sprintf("r%06d", i)
	}
	if err := h.AddBatch(context.Background(), ids, vecs); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHNSWRecall(t *testing.T) {
	n, nq := 6000, 100
	if testing.Short() {
		n, nq = 2000, 50
	}
	all := synthClusters(7, n+nq, 64, 8, 0.6)
	refs, qs := all[:n], all[n:]
	h := buildHNSW(t, refs, HNSWConfig{M: 12, EfConstruction: 100, Seed: 1})
	if h.Len() != n || h.Dim() != 64 {
		t.Fatalf("Len %d Dim %d", h.Len(), h.Dim())
	}
	for _, ef := range []int{16, 64, 200} {
		var sum float64
		for _, q := range qs {
			got, err := h.SearchEf(context.Background(), q, 10, ef, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.IsSortedFunc(got, func(a, b Hit) int {
				if a.Score > b.Score {
					return -1
				}
				if a.Score < b.Score {
					return 1
				}
				return 0
			}) {
				t.Fatal("hits not best first")
			}
			sum += recallAt(got, bruteTopK(refs, q, 10, nil))
		}
		r := sum / float64(nq)
		t.Logf("ef=%d recall@10=%.3f", ef, r)
		if ef >= 64 && r < 0.95 {
			t.Errorf("ef=%d recall@10 %.3f < 0.95", ef, r)
		}
	}
}

func TestHNSWFilterAndRemove(t *testing.T) {
	refs := synthClusters(3, 3000, 32, 6, 0.5)
	h := buildHNSW(t, refs, HNSWConfig{Seed: 2})
	ctx := context.Background()
	q := refs[17]

	even := func(i int) bool { return i%2 == 0 }
	got, err := h.Search(ctx, q, 10, even)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range got {
		if !even(g.Index) {
			t.Fatalf("filtered hit %d", g.Index)
		}
	}
	if r := recallAt(got, bruteTopK(refs, q, 10, even)); r < 0.9 {
		t.Errorf("even filter recall %.2f", r)
	}

	// 5 accepted nodes out of 3000: the walk gives up and the scan is exact.
	rare := func(i int) bool { return i%600 == 5 }
	got, err = h.Search(ctx, q, 10, rare)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || recallAt(got, bruteTopK(refs, q, 10, rare)) != 1 {
		t.Fatalf("rare filter: %v", got)
	}

	if !h.Remove("r000017") || h.Remove("r000017") || h.Remove("nope") {
		t.Fatal("Remove results wrong")
	}
	if h.Len() != 2999 {
		t.Fatalf("Len %d after remove", h.Len())
	}
	got, _ = h.Search(ctx, q, 10, nil)
	for _, g := range got {
		if g.ID == "r000017" {
			t.Fatal("removed id returned")
		}
	}
	// Re-adding makes a new node that is found again.
	if err := h.Add("r000017", q); err != nil {
		t.Fatal(err)
	}
	got, _ = h.Search(ctx, q, 1, nil)
	if len(got) != 1 || got[0].ID != "r000017" || got[0].Index != 3000 {
		t.Fatalf("re-added: %v", got)
	}
	// Like Flat, an existing id is refused, alone or in a batch.
	if err := h.Add("r000018", refs[500]); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("duplicate Add: %v", err)
	}
	if err := h.AddBatch(ctx, []string{"x", "x"}, refs[:2]); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("duplicate in batch: %v", err)
	}
	if h.Len() != 3000 || h.Nodes() != 3001 {
		t.Fatalf("Len %d Nodes %d after refused adds", h.Len(), h.Nodes())
	}
}

func TestHNSWInputErrors(t *testing.T) {
	if _, err := NewHNSW(0, HNSWConfig{}); err == nil {
		t.Fatal("dim 0 accepted")
	}
	h, _ := NewHNSW(4, HNSWConfig{})
	ctx := context.Background()
	if got, err := h.Search(ctx, []float32{1, 0, 0, 0}, 5, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty search: %v %v", got, err)
	}
	if err := h.Add("a", []float32{1, 2}); !errors.Is(err, ErrDim) {
		t.Fatalf("short vector: %v", err)
	}
	if _, err := h.Search(ctx, []float32{1}, 5, nil); !errors.Is(err, ErrDim) {
		t.Fatalf("short query: %v", err)
	}
	if err := h.AddBatch(ctx, []string{"a"}, nil); err == nil {
		t.Fatal("ids/vectors mismatch accepted")
	}
	_ = h.Add("a", []float32{1, 0, 0, 0})
	if err := h.Add("nan", []float32{float32(math.NaN()), 0, 0, 0}); err == nil {
		t.Fatal("NaN accepted")
	}
	if err := h.Add("", []float32{1, 0, 0, 0}); err == nil {
		t.Fatal("empty id accepted")
	}
	_ = h.Add("b", []float32{0, 1, 0, 0})
	if got, _ := h.Search(ctx, []float32{1, 0, 0, 0}, 0, nil); len(got) != 2 || got[0].ID != "a" {
		t.Fatalf("k=0 should return all, like Flat: %v", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Search(cctx, []float32{1, 0, 0, 0}, 1, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled search: %v", err)
	}
	refs := synthClusters(1, 500, 4, 5, 0.5)
	ids := make([]string, len(refs))
	for i := range ids {
		ids[i] = fmt.Sprint("b", i)
	}
	if err := h.AddBatch(cctx, ids, refs); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled batch: %v", err)
	}
	if h.Len() != 2 {
		t.Fatalf("cancelled batch left %d live", h.Len())
	}
}

func TestHNSWSaveLoad(t *testing.T) {
	refs := synthClusters(5, 2500, 48, 5, 0.5)
	h := buildHNSW(t, refs, HNSWConfig{M: 8, Seed: 3})
	h.Remove("r000003")
	h.SetEfSearch(40)
	path := filepath.Join(t.TempDir(), "refs.hnsw")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	g, err := LoadHNSW(path, HNSWConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Len() != h.Len() || g.Nodes() != h.Nodes() || g.EfSearch() != 40 || g.m != 8 {
		t.Fatalf("loaded Len %d Nodes %d ef %d m %d", g.Len(), g.Nodes(), g.EfSearch(), g.m)
	}
	ctx := context.Background()
	for _, q := range refs[:50] {
		a, _ := h.Search(ctx, q, 10, nil)
		b, _ := g.Search(ctx, q, 10, nil)
		if !slices.Equal(a, b) {
			t.Fatalf("results differ after load:\n%v\n%v", a, b)
		}
	}
	// The loaded graph keeps accepting inserts.
	if err := g.Add("new", refs[3]); err != nil {
		t.Fatal(err)
	}
	if got, _ := g.Search(ctx, refs[3], 1, nil); got[0].ID != "new" {
		t.Fatalf("insert after load: %v", got)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	for trial := range 200 {
		bad := slices.Clone(raw)
		switch trial % 3 {
		case 0:
			bad = bad[:r.IntN(len(bad))]
		default:
			p := r.IntN(len(bad))
			bad[p] ^= byte(1 + r.IntN(255))
		}
		if _, err := ReadHNSW(bytes.NewReader(bad), HNSWConfig{}); err == nil {
			t.Fatalf("trial %d: corrupt file accepted", trial)
		}
	}
	if _, err := ReadHNSW(bytes.NewReader(raw), HNSWConfig{}); err != nil {
		t.Fatal(err)
	}
	empty, _ := NewHNSW(3, HNSWConfig{})
	var buf bytes.Buffer
	if _, err := empty.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if e, err := ReadHNSW(&buf, HNSWConfig{}); err != nil || e.Len() != 0 {
		t.Fatalf("empty round trip: %v", err)
	}
}

// TestHNSWConcurrent mixes inserts, removals and searches; run with -race.
func TestHNSWConcurrent(t *testing.T) {
	refs := synthClusters(11, 2000, 16, 4, 0.5)
	h, _ := NewHNSW(16, HNSWConfig{M: 8, EfConstruction: 40, Workers: 4})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := w * 500; b < (w+1)*500; b += 50 {
				ids := make([]string, 50)
				for i := range ids {
					ids[i] = fmt.Sprint(b + i)
				}
				if err := h.AddBatch(ctx, ids, refs[b:b+50]); err != nil {
					t.Error(err)
					return
				}
				h.Remove(fmt.Sprint(b))
				if _, err := h.Search(ctx, refs[b], 5, nil); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if h.Len() != 2000-40 {
		t.Fatalf("Len %d", h.Len())
	}
	res, err := h.SearchBatch(ctx, refs[:100], 10)
	if err != nil {
		t.Fatal(err)
	}
	// Node indices follow insertion order, not refs order: compare by ID.
	var sum float64
	for i, q := range refs[:100] {
		want := bruteTopK(refs, q, 10, func(j int) bool { return j%50 != 0 })
		got := make([]Hit, len(res[i]))
		for j, hit := range res[i] {
			fmt.Sscan(hit.ID, &got[j].Index)
		}
		sum += recallAt(got, want)
	}
	if r := sum / 100; r < 0.9 {
		t.Errorf("recall@10 after concurrent build %.3f", r)
	}
	for _, hits := range res {
		if len(hits) != 10 {
			t.Fatalf("got %d hits", len(hits))
		}
	}
}

// A few bytes claiming a huge graph must be refused without allocating for
// the claim: memory follows the bytes read, not the header.
func TestReadHNSWAllocatesForBytesNotClaims(t *testing.T) {
	var b []byte
	b = append(b, hnswMagic...)
	for _, v := range []uint32{1 << 16, 16, 64, 32, hnswSlabNodes, 0, 0} { // dim, m, efC, efS, nodes, entry, max level
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = binary.LittleEndian.AppendUint64(b, 1)
	b = append(b, make([]byte, hnswSlabNodes)...)   // levels, all 0
	b = append(b, make([]byte, 4*hnswSlabNodes)...) // empty IDs
	b = append(b, make([]byte, 8*hnswSlabNodes/64)...)
	b = append(b, make([]byte, 4*(1<<16)+100)...) // one vector and a little more
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadHNSW(bytes.NewReader(b), HNSWConfig{})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated graph: %v", err)
	}
	// A whole slab would be 4096 x 65536 floats, 1 GiB.
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("reading a %d-byte file allocated %d MiB", len(b), got>>20)
	}
	t.Logf("%d-byte file claiming %d x %d: %v", len(b), hnswSlabNodes, 1<<16, err)
}

// A loaded graph whose last slab is partly filled keeps growing across slab
// boundaries, and every node stays findable.
func TestHNSWGrowAfterLoad(t *testing.T) {
	refs := synthClusters(4, 300, 16, 11, 0.3)
	h := buildHNSW(t, refs, HNSWConfig{M: 8, Seed: 5})
	var buf bytes.Buffer
	if _, err := h.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	g, err := ReadHNSW(&buf, HNSWConfig{})
	if err != nil {
		t.Fatal(err)
	}
	more := synthClusters(6, hnswSlabNodes, 16, 12, 0.3) // fills the short slab, then a second
	ids := make([]string, len(more))
	for i := range ids {
		ids[i] = fmt.Sprintf("m%06d", i)
	}
	ctx := context.Background()
	if err := g.AddBatch(ctx, ids, more); err != nil {
		t.Fatal(err)
	}
	if g.Len() != len(refs)+len(more) {
		t.Fatalf("Len %d", g.Len())
	}
	// Every vector, loaded or added, is stored intact across the short
	// slab's completion and the new slab.
	for i, v := range append(slices.Clone(refs), more...) {
		if !slices.Equal(g.vec(uint32(i)), v) {
			t.Fatalf("node %d: vector damaged after growing a loaded graph", i)
		}
	}
	// And the graph still finds them: a broken slab would miss most.
	g.SetEfSearch(64)
	miss, tried := 0, 0
	for i := 0; i < len(more); i += 7 {
		got, err := g.Search(ctx, more[i], 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		tried++
		if got[0].ID != ids[i] {
			miss++
		}
	}
	for i, q := range refs[:100] {
		got, _ := g.Search(ctx, q, 1, nil)
		tried++
		if got[0].ID != fmt.Sprintf("r%06d", i) {
			miss++
		}
	}
	if miss > tried/20 {
		t.Fatalf("%d of %d nodes not found first by their own vector after growing a loaded graph", miss, tried)
	}
}

// Nodes of one batch link in parallel, and one may find another before
// that one has linked itself; every node must stay reachable all the same
// (a full-width search finds each by its own vector).
func TestHNSWParallelBatchKeepsNodesReachable(t *testing.T) {
	ctx := context.Background()
	h, err := NewHNSW(16, HNSWConfig{Workers: 4, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	vec := func() []float32 { return vectest.Unit(r, 16) }
	live := map[string][]float32{}
	next := 0
	for batch := range 500 {
		var ids []string
		var vecs [][]float32
		for range 2 + r.IntN(3) {
			ids = append(ids, fmt.Sprintf("n%05d", next))
			vecs = append(vecs, vec())
			next++
		}
		if err := h.AddBatch(ctx, ids, vecs); err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			live[id] = vecs[i]
		}
		// Churn as a catalogue does, so that most nodes are tombstones.
		for id := range live {
			if len(live) > 60 {
				h.Remove(id)
				delete(live, id)
			}
			break
		}
		for _, id := range ids {
			if _, ok := live[id]; !ok {
				continue
			}
			got, err := h.SearchEf(ctx, live[id], 1, 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got[0].ID != id {
				t.Fatalf("batch %d: %s unreachable (%d live of %d nodes): found %v", batch, id, h.Len(), h.Nodes(), got)
			}
		}
	}
}
