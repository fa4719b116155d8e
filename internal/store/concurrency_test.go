package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"prodsearch/internal/index"
	"prodsearch/internal/store/storetest"
	"prodsearch/internal/testenv"
)

// The content of an item depends on its ID and generation (the number of
// times it was added or replaced), so a checker knows which vector and
// label any acknowledged write left behind.
func stressVec(id string, gen int) []float32 { return unitVec(fmt.Sprintf("%s#%d", id, gen), 16) }

func stressLabel(id string, gen int) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("label-%d", (int(h.Sum32()%4)+gen)%4)
}

func stressImage(id string, gen int) []byte {
	return fmt.Appendf(nil, "\xff\xd8\xff image of %s generation %d", id, gen)
}

func stressEntry(id string, gen int) Entry {
	return Entry{ID: id, Label: stressLabel(id, gen), FileName: id + ".jpg", Vector: stressVec(id, gen), Image: stressImage(id, gen)}
}

// stressCounts are what a run did and checked, logged at the end so that a
// -v run shows the test was not vacuous.
type stressCounts struct {
	added, removed, replaced, conflicts         atomic.Int64
	searches, results, rank1, selfFound, absent atomic.Int64
	gets, lenChecks, lists, quiescent           atomic.Int64
}

// TestConcurrentAddRemoveSearch runs writers that add, replace and remove
// beside readers that search, look up, count and list, for a fixed time
// ($PRODSEARCH_STRESS_DURATION, default 3s per vector index), and checks
// under -race, against a model of the acknowledged writes:
//   - no lost items: an item acknowledged and not being removed is found by
//     Get, List and Len, and its own vector finds it first;
//   - no ghosts: an item whose removal was acknowledged before a read began,
//     or that was never added, never appears in that read;
//   - labels are those of a generation the read may see, and filters hold;
//   - at quiescent points, and after reopening, the store equals the model.
func TestConcurrentAddRemoveSearch(t *testing.T) {
	d := testenv.Duration(t, testenv.EnvStressDuration, 3*time.Second)
	for _, v := range []string{index.KindFlat, index.KindHNSW} {
		t.Run(v, func(t *testing.T) { testConcurrentAddRemoveSearch(t, v, d) })
	}
}

func testConcurrentAddRemoveSearch(t *testing.T, vectors string, d time.Duration) {
	const (
		writers  = 4
		searcher = 3
		perOwner = 40
	)
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenWith(ctx, dir, testBundle, 16, Options{Vectors: vectors})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()

	var universe []string
	owned := make([][]string, writers)
	for w := range writers {
		for i := range perOwner {
			id := fmt.Sprintf("w%d/item-%02d", w, i)
			owned[w] = append(owned[w], id)
			universe = append(universe, id)
		}
	}
	never := make([]string, 16)
	for i := range never {
		never[i] = fmt.Sprintf("never-%02d", i)
		universe = append(universe, never[i])
	}
	m := storetest.NewModel(universe)
	var c stressCounts
	// Half the items exist from the start, so removals and replacements
	// begin at once rather than after a run of adds.
	var seed []Entry
	for _, own := range owned {
		for _, id := range own[:len(own)/2] {
			seed = append(seed, stressEntry(id, m.BeginAdd(id)))
		}
	}
	if err := s.Add(ctx, seed, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range seed {
		m.EndAdd(e.ID)
	}
	q, err := storetest.Stress(storetest.StressConfig{
		Duration: d, Writers: writers, Readers: searcher, Seed: 1,
		Write:  func(w int, r *rand.Rand) error { return stressWrite(ctx, s, m, owned[w], never, r, &c) },
		Read:   func(r *rand.Rand) error { return stressRead(ctx, s, m, r, &c) },
		Verify: func() error { return verifyModel(ctx, s, m) },
	})
	c.quiescent.Add(int64(q))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen with the same index (a saved HNSW graph must be reused, not
	// rebuilt), then with the exact one.
	reopen := []string{vectors}
	if vectors != index.KindFlat {
		reopen = append(reopen, index.KindFlat)
	}
	for _, v := range reopen {
		s, err = OpenWith(ctx, dir, "", 0, Options{Vectors: v})
		if err != nil {
			t.Fatal(err)
		}
		if v == index.KindHNSW && s.Info().Reindexed != 0 {
			t.Errorf("reopened hnsw rebuilt %d references instead of loading the saved graph", s.Info().Reindexed)
		}
		if err := verifyModel(ctx, s, m); err != nil {
			t.Fatalf("after reopening with %s: %v", v, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	present, _ := m.Present()
	t.Logf("%s for %v: %d added, %d replaced, %d removed, %d refused duplicates; %d searches checking %d results "+
		"(%d own-vector rank-1 checks, %d found in top 5 after QE, %d queries for absent items), %d lookups, %d count and %d list bound checks, "+
		"%d quiescent checks; %d items at the end equal the model after reopening",
		vectors, d, c.added.Load(), c.replaced.Load(), c.removed.Load(), c.conflicts.Load(),
		c.searches.Load(), c.results.Load(), c.rank1.Load(), c.selfFound.Load(), c.absent.Load(),
		c.gets.Load(), c.lenChecks.Load(), c.lists.Load(), c.quiescent.Load(), len(present))
	if c.rank1.Load() == 0 || c.absent.Load() == 0 || c.removed.Load() == 0 || c.replaced.Load() == 0 || c.quiescent.Load() == 0 {
		t.Error("the run checked too little to mean anything")
	}
}

// stressWrite performs one write on IDs the caller owns and checks what the
// store reports against the model.
func stressWrite(ctx context.Context, s *Store, m *storetest.Model, own, never []string, r *rand.Rand, c *stressCounts) error {
	id := own[r.IntN(len(own))]
	st := m.State(id)
	switch {
	case st.Phase() == storetest.Absent:
		ids := m.Pick(own, id, storetest.Absent, 1+r.IntN(3))
		entries := make([]Entry, len(ids))
		for i, x := range ids {
			entries[i] = stressEntry(x, m.BeginAdd(x))
		}
		if err := s.Add(ctx, entries, AddOptions{}); err != nil {
			return fmt.Errorf("add %v: %w", ids, err)
		}
		for _, x := range ids {
			m.EndAdd(x)
		}
		c.added.Add(int64(len(ids)))
	case r.IntN(2) == 0:
		ids := m.Pick(own, id, storetest.Present, 1+r.IntN(3))
		for _, x := range ids {
			m.BeginRemove(x)
		}
		ask := append(slices.Clone(ids), never[r.IntN(len(never))])
		r.Shuffle(len(ask), func(i, j int) { ask[i], ask[j] = ask[j], ask[i] })
		gone, err := s.Remove(ctx, ask...)
		if err != nil {
			return fmt.Errorf("remove %v: %w", ask, err)
		}
		slices.Sort(gone)
		slices.Sort(ids)
		if !slices.Equal(gone, ids) {
			return fmt.Errorf("remove %v reported %v gone, want the present ones %v", ask, gone, ids)
		}
		for _, x := range ids {
			m.EndRemove(x)
		}
		c.removed.Add(int64(len(ids)))
	case r.IntN(3) > 0:
		g := m.BeginAdd(id)
		if err := s.Add(ctx, []Entry{stressEntry(id, g)}, AddOptions{Replace: true}); err != nil {
			return fmt.Errorf("replace %s: %w", id, err)
		}
		m.EndAdd(id)
		c.replaced.Add(1)
	default:
		// The write must be refused whole: the other, absent entry of the
		// batch must not be stored either.
		batch := []Entry{stressEntry(id, st.Gen()+1)}
		if a := m.Pick(own, id, storetest.Absent, 1); len(a) > 0 {
			batch = append(batch, stressEntry(a[0], m.State(a[0]).Gen()+1))
		}
		if err := s.Add(ctx, batch, AddOptions{}); !errors.Is(err, ErrExists) {
			return fmt.Errorf("adding existing %s without replace: %v, want ErrExists", id, err)
		}
		c.conflicts.Add(1)
	}
	return nil
}

// stressRead performs one read and checks it against what the model held
// for its whole duration.
func stressRead(ctx context.Context, s *Store, m *storetest.Model, r *rand.Rand, c *stressCounts) error {
	id := m.Any(r)
	w := m.Watch()
	gen := max(w.Before(id).Gen(), 1)
	switch op := r.IntN(10); {
	case op < 6:
		opt := SearchOptions{K: 5}
		if r.IntN(3) == 0 {
			opt.Label = stressLabel(id, gen)
		}
		if r.IntN(5) == 0 {
			opt.Rerank = RerankQE
		}
		res, err := s.Search(ctx, stressVec(id, gen), opt)
		w.End()
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		c.searches.Add(1)
		if err := checkResults(w, res, opt.Label); err != nil {
			return fmt.Errorf("search for %s (%+v): %w", id, opt, err)
		}
		c.results.Add(int64(len(res)))
		switch {
		case w.MustHave(id) && opt.Rerank == RerankQE:
			if !slices.ContainsFunc(res, func(x Result) bool { return x.ID == id }) {
				return fmt.Errorf("lost: %s, present throughout, not in the top %d of its own vector after QE: %+v", id, opt.K, res)
			}
			c.selfFound.Add(1)
		case w.MustHave(id):
			if len(res) == 0 || res[0].ID != id {
				return fmt.Errorf("lost: %s, present throughout, is not first for its own vector: %+v", id, res)
			}
			c.rank1.Add(1)
		case w.MustLack(id):
			c.absent.Add(1)
		}
	case op < 8:
		it, err := s.Get(id)
		w.End()
		switch {
		case w.MustHave(id):
			if err != nil || it.Label != stressLabel(id, w.Before(id).Gen()) {
				return fmt.Errorf("lost: Get(%s) = %+v, %v while present in generation %d", id, it, err, w.Before(id).Gen())
			}
			img, _, err := s.Image(id)
			if err != nil || string(img) != string(stressImage(id, w.Before(id).Gen())) {
				// A later write may have replaced it since Get.
				if m.State(id) == w.Before(id) {
					return fmt.Errorf("Image(%s) = %q, %v", id, img, err)
				}
			}
		case w.MustLack(id):
			if !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("ghost: Get(%s) = %+v, %v while absent", id, it, err)
			}
		}
		c.gets.Add(1)
	case op < 9:
		n := s.Len()
		w.End()
		if lo, hi := w.Bounds(); n < lo || n > hi {
			return fmt.Errorf("Len = %d, the model allows %d..%d", n, lo, hi)
		}
		c.lenChecks.Add(1)
	default:
		items, total, err := s.List(ctx, ListOptions{Limit: 1 << 20})
		w.End()
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		listed := make([]string, len(items))
		for i, it := range items {
			listed[i] = it.ID
		}
		if err := w.CheckListing(listed, total); err != nil {
			return err
		}
		c.lists.Add(1)
	}
	return nil
}

// checkResults finds ghosts, duplicated IDs, labels no generation had,
// and results outside a label filter.
func checkResults(w *storetest.Window, res []Result, label string) error {
	seen := make(map[string]bool, len(res))
	for _, x := range res {
		if err := w.CheckHit(x.ID, x.Label, seen, func(g int) string { return stressLabel(x.ID, g) }); err != nil {
			return err
		}
		if label != "" && x.Label != label {
			return fmt.Errorf("%s has label %q outside the filter %q", x.ID, x.Label, label)
		}
	}
	return nil
}

// verifyModel checks, with no write in flight, that the store holds
// exactly what the model says: counts, labels, listing, records, images,
// the file's integrity, and that each item's own vector finds it first
// while no absent item is found at all.
func verifyModel(ctx context.Context, s *Store, m *storetest.Model) error {
	present, err := m.Present()
	if err != nil {
		return err
	}
	if s.Len() != len(present) {
		return fmt.Errorf("Len = %d, the model holds %d", s.Len(), len(present))
	}
	want := map[string]int{}
	for id, g := range present {
		want[stressLabel(id, g)]++
	}
	if got := s.Labels(); !maps.Equal(got, want) {
		return fmt.Errorf("Labels = %v, the model has %v", got, want)
	}
	items, total, err := s.List(ctx, ListOptions{Limit: 1 << 20})
	if err != nil || total != len(present) || len(items) != total {
		return fmt.Errorf("List = %d items of %d, %v; the model holds %d", len(items), total, err, len(present))
	}
	for _, it := range items {
		g, ok := present[it.ID]
		if !ok || it.Label != stressLabel(it.ID, g) || it.ImageSize != len(stressImage(it.ID, g)) {
			return fmt.Errorf("List shows %+v; the model has generation %d (present %v)", it, g, ok)
		}
	}
	if err := s.Check(ctx); err != nil {
		return err
	}
	for _, id := range m.IDs() {
		st := m.State(id)
		res, err := s.Search(ctx, stressVec(id, max(st.Gen(), 1)), SearchOptions{K: 3})
		if err != nil {
			return err
		}
		if _, ok := present[id]; ok {
			if len(res) == 0 || res[0].ID != id || res[0].Label != stressLabel(id, st.Gen()) {
				return fmt.Errorf("lost: %s (generation %d) is not first for its own vector: %+v", id, st.Gen(), res)
			}
			img, _, err := s.Image(id)
			if err != nil || string(img) != string(stressImage(id, st.Gen())) {
				return fmt.Errorf("Image(%s) = %q, %v", id, img, err)
			}
			continue
		}
		if slices.ContainsFunc(res, func(x Result) bool { return x.ID == id }) {
			return fmt.Errorf("ghost: absent %s found: %+v", id, res)
		}
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("ghost: Get(%s) of an absent item: %v", id, err)
		}
	}
	return nil
}
