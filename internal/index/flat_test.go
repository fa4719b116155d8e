package index

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"prodsearch/internal/vec/vectest"
	"slices"
	"testing"

	"github.com/viterin/vek/vek32"
)

func mustAdd(t testing.TB, f *Flat, id string, v ...float32) {
	t.Helper()
	if err := f.Add(id, v); err != nil {
		t.Fatalf("Add(%q): %v", id, err)
	}
}

func ids(hits []Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.ID
	}
	return out
}

func TestSearchHandMade(t *testing.T) {
	f := NewFlat(2)
	mustAdd(t, f, "east", 1, 0)
	mustAdd(t, f, "north", 0, 1)
	mustAdd(t, f, "west", -1, 0)
	mustAdd(t, f, "ne", 0.6, 0.8)
	mustAdd(t, f, "ne2", 0.6, 0.8) // exact tie with "ne": ID decides

	hits, err := f.Search(context.Background(), []float32{0.8, 0.6}, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Hit{{"ne", 3, 0.96}, {"ne2", 4, 0.96}, {"east", 0, 0.8}}
	if len(hits) != len(want) {
		t.Fatalf("got %v, want %v", hits, want)
	}
	for i := range want {
		if hits[i].ID != want[i].ID || hits[i].Index != want[i].Index || math.Abs(float64(hits[i].Score-want[i].Score)) > 1e-6 {
			t.Fatalf("hit %d: got %+v, want %+v", i, hits[i], want[i])
		}
	}

	all, err := f.Search(context.Background(), []float32{0.8, 0.6}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(all), []string{"ne", "ne2", "east", "north", "west"}; !slices.Equal(got, want) {
		t.Fatalf("k=0: got %v, want %v", got, want)
	}

	onlyAxes := func(i int) bool { return f.ID(i) != "ne" && f.ID(i) != "ne2" }
	filtered, err := f.Search(context.Background(), []float32{0.8, 0.6}, 10, onlyAxes)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(filtered), []string{"east", "north", "west"}; !slices.Equal(got, want) {
		t.Fatalf("filtered: got %v, want %v", got, want)
	}
}

func TestAddValidation(t *testing.T) {
	f := NewFlat(3)
	mustAdd(t, f, "a", 1, 2, 3)
	if err := f.Add("a", []float32{4, 5, 6}); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("duplicate: got %v, want ErrDuplicateID", err)
	}
	if got := f.Vector(0); !slices.Equal(got, []float32{1, 2, 3}) {
		t.Fatalf("duplicate add modified the stored vector: %v", got)
	}
	if err := f.Add("b", []float32{1, 2}); !errors.Is(err, ErrDim) {
		t.Fatalf("short vector: got %v, want ErrDim", err)
	}
	if err := f.Add("c", []float32{1, float32(math.NaN()), 3}); err == nil {
		t.Fatal("NaN accepted")
	}
	if err := f.Add("", []float32{1, 2, 3}); err == nil {
		t.Fatal("empty id accepted")
	}
	if f.Len() != 1 {
		t.Fatalf("Len = %d after rejected adds, want 1", f.Len())
	}
	if _, err := f.Search(context.Background(), []float32{1, 2}, 1, nil); !errors.Is(err, ErrDim) {
		t.Fatalf("short query: got %v, want ErrDim", err)
	}
	if _, err := f.SearchBatch(context.Background(), [][]float32{{1, 2, 3}, {1}}, 1); !errors.Is(err, ErrDim) {
		t.Fatalf("short batch query: got %v, want ErrDim", err)
	}
	if err := NewFlat(0).Add("x", nil); !errors.Is(err, ErrDim) {
		t.Fatalf("dim 0: got %v, want ErrDim", err)
	}
	if _, err := NewFlat(-1).Search(context.Background(), nil, 1, nil); !errors.Is(err, ErrDim) {
		t.Fatalf("dim -1 search: got %v, want ErrDim", err)
	}
}

func TestAddCopies(t *testing.T) {
	f := NewFlat(2)
	v := []float32{1, 2}
	mustAdd(t, f, "a", v...)
	v[0] = 99
	if f.Vector(0)[0] != 1 {
		t.Fatal("Add kept a reference to the caller's slice")
	}
	if f.Vector(1) != nil || f.ID(-1) != "" {
		t.Fatal("out-of-range accessors should return zero values")
	}
}

func TestRemove(t *testing.T) {
	f := NewFlat(1)
	for i, id := range []string{"a", "b", "c", "d"} {
		mustAdd(t, f, id, float32(i+1))
	}
	if !f.Remove("b") || f.Remove("b") || f.Remove("zz") {
		t.Fatal("Remove reported wrong presence")
	}
	if f.Len() != 3 || f.ID(1) != "d" || f.Vector(1)[0] != 4 {
		t.Fatalf("swap-delete: got ids %v", f.ids)
	}
	if p, ok := f.Position("d"); !ok || p != 1 {
		t.Fatalf("Position(d) = %d, %v", p, ok)
	}
	if !f.Remove("d") || !f.Remove("c") || !f.Remove("a") || f.Len() != 0 {
		t.Fatal("removing everything failed")
	}
	mustAdd(t, f, "b", 7) // a removed ID can be added again
	hits, err := f.Search(context.Background(), []float32{1}, 5, nil)
	if err != nil || len(hits) != 1 || hits[0].ID != "b" || hits[0].Index != 0 {
		t.Fatalf("after re-add: %v, %v", hits, err)
	}
}

func TestNewFlatFrom(t *testing.T) {
	f, err := NewFlatFrom(2, []string{"a", "b"}, []float32{1, 0, 0, 1}, WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	if f.Len() != 2 || f.Vector(1)[1] != 1 {
		t.Fatal("bad contents")
	}
	if _, err := NewFlatFrom(2, []string{"a", "a"}, []float32{1, 0, 0, 1}); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := NewFlatFrom(2, []string{"a"}, []float32{1, 0, 0}); !errors.Is(err, ErrDim) {
		t.Fatalf("length: %v", err)
	}
}

func TestEmptyIndex(t *testing.T) {
	f := NewFlat(4)
	hits, err := f.Search(context.Background(), []float32{1, 0, 0, 0}, 3, nil)
	if err != nil || len(hits) != 0 {
		t.Fatalf("empty Search: %v, %v", hits, err)
	}
	res, err := f.SearchBatch(context.Background(), [][]float32{{1, 0, 0, 0}}, 3)
	if err != nil || len(res) != 1 || len(res[0]) != 0 {
		t.Fatalf("empty SearchBatch: %v, %v", res, err)
	}
}

// naiveSearch is the reference: score everything, sort everything.
func naiveSearch(f *Flat, q []float32, k int, filter func(int) bool) []Hit {
	var all []Hit
	for i := range f.Len() {
		if filter != nil && !filter(i) {
			continue
		}
		all = append(all, Hit{ID: f.ID(i), Index: i, Score: vek32.Dot(q, f.Vector(i))})
	}
	slices.SortFunc(all, func(a, b Hit) int {
		if Better(a, b) {
			return -1
		}
		if Better(b, a) {
			return 1
		}
		return 0
	})
	if k > 0 && k < len(all) {
		all = all[:k]
	}
	return all
}

// randomFlat builds an index with n vectors, about a fifth of them exact
// copies of earlier ones (ties), under shuffled IDs so that ID order differs
// from position order.
func randomFlat(t testing.TB, r *rand.Rand, n, d int, opts ...Option) *Flat {
	f := NewFlat(d, opts...)
	perm := r.Perm(n)
	for i := range n {
		v := vectest.Unit(r, d)
		if i > 0 && r.IntN(5) == 0 {
			v = slices.Clone(f.Vector(r.IntN(i)))
		}
		if err := f.Add(fmt.Sprintf("id%05d", perm[i]), v); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestSearchMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 40 {
		n, d := 1+r.IntN(300), 1+r.IntN(40)
		f := randomFlat(t, r, n, d, WithThreads(1+r.IntN(4)))
		k := r.IntN(n+5) - 2 // includes k <= 0 and k > n
		var filter func(int) bool
		if r.IntN(2) == 0 {
			keep := make([]bool, n)
			for i := range keep {
				keep[i] = r.IntN(3) > 0
			}
			filter = func(i int) bool { return keep[i] }
		}
		// Half the queries are stored vectors, so their duplicates tie.
		q := vectest.Unit(r, d)
		if r.IntN(2) == 0 {
			q = slices.Clone(f.Vector(r.IntN(n)))
		}
		got, err := f.Search(context.Background(), q, k, filter)
		if err != nil {
			t.Fatal(err)
		}
		want := naiveSearch(f, q, k, filter)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (n=%d d=%d k=%d): got %v, want %v", trial, n, d, k, got, want)
		}
		for _, h := range got {
			var s float64
			for i, x := range q {
				s += float64(x) * float64(f.Vector(h.Index)[i])
			}
			if math.Abs(s-float64(h.Score)) > 1e-5 {
				t.Fatalf("score %v, float64 dot %v", h.Score, s)
			}
		}
	}
}

// TestSearchParallel covers the multi-goroutine single-query path, which
// only kicks in for indexes with at least parallelMinWork values.
func TestSearchParallel(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const d = 64
	n := parallelMinWork/d + 1000
	f := randomFlat(t, r, n, d, WithThreads(3))
	keep := func(i int) bool { return i%7 != 3 }
	for _, k := range []int{1, 10, 500} {
		q := slices.Clone(f.Vector(r.IntN(n))) // ties with its duplicates
		for _, filter := range []func(int) bool{nil, keep} {
			got, err := f.Search(context.Background(), q, k, filter)
			if err != nil {
				t.Fatal(err)
			}
			if want := naiveSearch(f, q, k, filter); !slices.Equal(got, want) {
				t.Fatalf("k=%d: got %v, want %v", k, got, want)
			}
		}
	}
}

func TestSearchBatchMatchesSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 20 {
		n, d := 1+r.IntN(500), 1+r.IntN(70)
		opts := []Option{WithThreads(1 + r.IntN(4))}
		if r.IntN(2) == 0 {
			opts = append(opts, WithMemoryBudget(int64(1+r.IntN(20000)))) // tiny blocks
		}
		f := randomFlat(t, r, n, d, opts...)
		qs := make([][]float32, r.IntN(40))
		for i := range qs {
			qs[i] = vectest.Unit(r, d)
			if r.IntN(3) == 0 {
				qs[i] = slices.Clone(f.Vector(r.IntN(n)))
			}
		}
		k := r.IntN(n+5) - 2
		got, err := f.SearchBatch(context.Background(), qs, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(qs) {
			t.Fatalf("got %d results for %d queries", len(got), len(qs))
		}
		for i, q := range qs {
			if want := naiveSearch(f, q, k, nil); !slices.Equal(got[i], want) {
				t.Fatalf("trial %d query %d: got %v, want %v", trial, i, got[i], want)
			}
		}
	}
}

func TestCancellation(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	f := randomFlat(t, r, 200, 8)
	qs := [][]float32{vectest.Unit(r, 8), vectest.Unit(r, 8)}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Search(ctx, qs[0], 5, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Search: got %v, want context.Canceled", err)
	}
	if _, err := f.SearchBatch(ctx, qs, 5); !errors.Is(err, context.Canceled) {
		t.Fatalf("SearchBatch: got %v, want context.Canceled", err)
	}

	// Cancelling mid-batch stops the remaining work.
	many := make([][]float32, 2000)
	for i := range many {
		many[i] = qs[i%2]
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	g := NewFlat(8, WithThreads(2), WithMemoryBudget(1))
	for i := range 200 {
		mustAdd(t, g, fmt.Sprint(i), f.Vector(i)...)
	}
	err := g.SearchBatchFunc(ctx, many, 5, func(int, []Hit) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("mid-batch: got %v, want context.Canceled", err)
	}

	stop := errors.New("stop")
	if err := f.SearchBatchFunc(context.Background(), many, 5, func(int, []Hit) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error: got %v, want %v", err, stop)
	}
}

func TestConcurrentReaders(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	f := randomFlat(t, r, 300, 16, WithThreads(2))
	q := vectest.Unit(r, 16)
	want := naiveSearch(f, q, 10, nil)
	done := make(chan error)
	for range 4 {
		go func() {
			got, err := f.Search(context.Background(), q, 10, nil)
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("got %v, want %v", got, want)
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecall(t *testing.T) {
	h := func(ids ...string) []Hit {
		var out []Hit
		for _, id := range ids {
			out = append(out, Hit{ID: id})
		}
		return out
	}
	got := [][]Hit{h("a", "b"), h("x"), h()}
	want := [][]Hit{h("b", "c"), h("x"), h()}
	if r := Recall(got, want); r != (0.5+1+1)/3 {
		t.Fatalf("Recall = %v, want %v", r, (0.5+1+1)/3)
	}
}
