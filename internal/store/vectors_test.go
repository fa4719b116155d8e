package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"prodsearch/internal/index"
	"prodsearch/internal/vec"
)

// randomEntries makes n labelled entries with unit vectors drawn around a
// few dozen centres, clustered the way product descriptors are.
func randomEntries(n, dim int, seed uint64) []Entry {
	r := rand.New(rand.NewPCG(seed, 1))
	centres := make([][]float32, 40)
	for i := range centres {
		centres[i] = unitVec(fmt.Sprint("centre", seed, i), dim)
	}
	es := make([]Entry, n)
	for i := range es {
		c := r.IntN(len(centres))
		v := make([]float32, dim)
		for j := range v {
			v[j] = centres[c][j] + 0.6*float32(r.NormFloat64())/float32(dim)*8
		}
		vec.Normalize(v)
		es[i] = Entry{ID: fmt.Sprintf("r-%05d", i), Label: fmt.Sprintf("c%02d", c), Vector: v}
	}
	return es
}

func openWith(t *testing.T, dir, vectors string) *Store {
	t.Helper()
	s, err := OpenWith(context.Background(), dir, testBundle, 32, Options{Vectors: vectors, HNSW: index.HNSWConfig{Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// exactReference stores es in a flat store of its own (a bbolt file is
// opened by one Store at a time): the exact answers others are held to.
func exactReference(t *testing.T, es []Entry) *Store {
	t.Helper()
	flat := openDim(t, t.TempDir(), len(es[0].Vector))
	if err := flat.Add(context.Background(), es, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	return flat
}

// checkTop1 requires s to find exact search's best hit for at least 90% of
// qs: plain, with a label filter and with query expansion.
func checkTop1(t *testing.T, flat, s *Store, qs [][]float32) {
	t.Helper()
	for _, opt := range []SearchOptions{{K: 10}, {K: 10, Label: "c03"}, {K: 10, Rerank: RerankQE}} {
		if agree := top1Agreement(t, flat, s, qs, opt); agree < 0.9 {
			t.Errorf("%+v: top-1 agrees with exact on %.2f of queries", opt, agree)
		} else {
			t.Logf("%+v: top-1 agreement %.3f", opt, agree)
		}
	}
}

// top1Agreement searches both stores and returns the share of queries
// whose best hit is the same.
func top1Agreement(t *testing.T, want, got *Store, qs [][]float32, opt SearchOptions) float64 {
	t.Helper()
	same := 0
	for _, q := range qs {
		a, err := want.Search(context.Background(), q, opt)
		if err != nil {
			t.Fatal(err)
		}
		b, err := got.Search(context.Background(), q, opt)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) > 0 && len(b) > 0 && a[0].ID == b[0].ID {
			same++
		}
		for _, r := range b {
			if opt.Label != "" && r.Label != opt.Label {
				t.Fatalf("label %q search returned %+v", opt.Label, r)
			}
		}
	}
	return float64(same) / float64(len(qs))
}

func queries(n, dim int) [][]float32 {
	qs := make([][]float32, n)
	for i := range qs {
		qs[i] = randomEntries(1, dim, uint64(1000+i))[0].Vector
	}
	return qs
}

// auto searches a small catalogue exactly and a large one by HNSW, decided
// at each open by the number of items; the results stay the exact ones or
// close to them either way.
func TestAutoVectorsFollowCatalogueSize(t *testing.T) {
	ctx := context.Background()
	const dim = 32
	es := randomEntries(1200, dim, 11)
	flat := exactReference(t, es)
	dir := t.TempDir()
	// Each item counts as 20: 1,000 items stand for 20,000.
	opt := Options{Vectors: index.KindAuto, HNSW: index.HNSWConfig{Seed: 1}, autoScale: index.AutoHNSWMin / 1000}
	s, err := OpenWith(ctx, dir, testBundle, dim, opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Info().Vectors; got != index.KindFlat {
		t.Fatalf("empty store opened as %q, want flat", got)
	}
	if err := s.Add(ctx, es[:999], AddOptions{}); err != nil {
		t.Fatal(err)
	}
	qs := queries(100, dim)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// 999 items (19,980 counted): still exact; the 1,000th tips it.
	s, err = OpenWith(ctx, dir, testBundle, dim, opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Info().Vectors; got != index.KindFlat {
		t.Errorf("%d items opened as %q, want flat", s.Len(), got)
	}
	if err := s.Add(ctx, es[999:], AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenWith(ctx, dir, testBundle, dim, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Info().Vectors; got != index.KindHNSW {
		t.Fatalf("%d items reopened as %q, want hnsw", s.Len(), got)
	}
	checkTop1(t, flat, s, qs)
}

func TestHNSWVectors(t *testing.T) {
	ctx := context.Background()
	const n, dim = 3000, 32
	es := randomEntries(n, dim, 7)

	flat := exactReference(t, es)

	dir := t.TempDir()
	s := openWith(t, dir, index.KindHNSW)
	if info := s.Info(); info.Vectors != index.KindHNSW || info.Reindexed != 0 {
		t.Fatalf("new store: %+v", info)
	}
	for lo := 0; lo < n; lo += 500 {
		if err := s.Add(ctx, es[lo:lo+500], AddOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	qs := queries(200, dim)
	checkTop1(t, flat, s, qs)
	// Replace and remove go through the graph too.
	moved := es[5]
	moved.Label, moved.Vector = "moved", unitVec("moved", dim)
	if err := s.Add(ctx, []Entry{moved}, AddOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, es[6].ID); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store, items int) {
		t.Helper()
		res, err := s.Search(ctx, unitVec("moved", dim), SearchOptions{K: 1})
		if err != nil || len(res) != 1 || res[0].ID != moved.ID || res[0].Label != "moved" {
			t.Errorf("replaced item: %+v, %v", res, err)
		}
		res, err = s.Search(ctx, es[6].Vector, SearchOptions{K: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.ID == es[6].ID {
				t.Errorf("removed item returned: %+v", res)
			}
		}
		if s.Len() != items {
			t.Errorf("Len = %d", s.Len())
		}
	}
	check(s, n-1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	graph := filepath.Join(dir, GraphFile)
	if _, err := os.Stat(graph); err != nil {
		t.Fatalf("graph not saved: %v", err)
	}

	// Current graph: loaded, nothing re-indexed.
	s = openWith(t, dir, index.KindHNSW)
	if got := s.Info().Reindexed; got != 0 {
		t.Errorf("reopen with a current graph re-indexed %d", got)
	}
	check(s, n-1)
	s.Close()

	// Written without the graph (flat): the graph is stale and rebuilt.
	s = openWith(t, dir, index.KindFlat)
	if err := s.Add(ctx, []Entry{{ID: "late", Label: "x", Vector: unitVec("late", dim)}}, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openWith(t, dir, index.KindHNSW)
	if got := s.Info().Reindexed; got != n {
		t.Errorf("stale graph: re-indexed %d, want %d", got, n)
	}
	if res, _ := s.Search(ctx, unitVec("late", dim), SearchOptions{K: 1}); len(res) != 1 || res[0].ID != "late" {
		t.Errorf("item added while the graph was detached: %+v", res)
	}
	// A crash (no Close, so no save) leaves the graph behind the file.
	if err := s.Add(ctx, []Entry{{ID: "crash", Label: "x", Vector: unitVec("crash", dim)}}, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	s.db.Close()
	s = openWith(t, dir, index.KindHNSW)
	if got := s.Info().Reindexed; got != n+1 {
		t.Errorf("after a crash: re-indexed %d, want %d", got, n+1)
	}
	if res, _ := s.Search(ctx, unitVec("crash", dim), SearchOptions{K: 1}); len(res) != 1 || res[0].ID != "crash" {
		t.Errorf("item acknowledged before the crash: %+v", res)
	}
	s.Close()

	// Missing and damaged graphs are rebuilt, not errors.
	if err := os.Remove(graph); err != nil {
		t.Fatal(err)
	}
	s = openWith(t, dir, index.KindHNSW)
	if got := s.Info().Reindexed; got != n+1 {
		t.Errorf("missing graph: re-indexed %d", got)
	}
	s.Close()
	b, err := os.ReadFile(graph)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(graph, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openWith(t, dir, index.KindHNSW)
	if got := s.Info().Reindexed; got != n+1 {
		t.Errorf("damaged graph: re-indexed %d", got)
	}
	check(s, n+1)
	s.Close()
}

func TestVectorsOption(t *testing.T) {
	_, err := OpenWith(context.Background(), t.TempDir(), testBundle, 32, Options{Vectors: "annoy"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown --vectors: %v", err)
	}
}

// TestWeaviateVectors needs a running Weaviate, e.g.
//
//	scripts/weaviate-cluster.sh start 1
//	PRODSEARCH_WEAVIATE_URL=weaviate://127.0.0.1:18000 go test ./internal/store -run Weaviate
func TestWeaviateVectors(t *testing.T) {
	raw := os.Getenv("PRODSEARCH_WEAVIATE_URL")
	if raw == "" {
		t.Skip("PRODSEARCH_WEAVIATE_URL not set; start one with scripts/weaviate-cluster.sh start 1")
	}
	ctx := context.Background()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("class", fmt.Sprintf("StoreTest%d", rand.Uint32()))
	u.RawQuery = q.Encode()
	wurl := u.String()
	cfg, err := index.ParseWeaviateURL(wurl)
	if err != nil {
		t.Fatal(err)
	}
	w, err := index.OpenWeaviate(ctx, cfg, 32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Drop(context.Background()) })

	const n, dim = 1000, 32
	es := randomEntries(n, dim, 11)
	flat := exactReference(t, es)
	dir := t.TempDir()
	s := openWith(t, dir, wurl)
	if err := s.Add(ctx, es, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	qs := queries(100, dim)
	checkTop1(t, flat, s, qs)
	if _, err := s.Remove(ctx, es[0].ID); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openWith(t, dir, wurl)
	if got := s.Info().Reindexed; got != 0 {
		t.Errorf("reopen in step: re-indexed %d", got)
	}
	s.Close()

	// The collection lost an object behind the store's back: counts differ.
	if _, err := w.Delete(ctx, es[1].ID); err != nil {
		t.Fatal(err)
	}
	s = openWith(t, dir, wurl)
	if got := s.Info().Reindexed; got != n-1 {
		t.Errorf("after drift: re-indexed %d, want %d", got, n-1)
	}
	if res, _ := s.Search(ctx, es[1].Vector, SearchOptions{K: 1}); len(res) != 1 || res[0].ID != es[1].ID {
		t.Errorf("resynced item: %+v", res)
	}
	s.Close()

	// Written while detached (flat): re-imported at the next open.
	s = openWith(t, dir, index.KindFlat)
	late := Entry{ID: "late", Label: "x", Vector: unitVec("late", dim)}
	if err := s.Add(ctx, []Entry{late}, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openWith(t, dir, wurl)
	defer s.Close()
	if res, _ := s.Search(ctx, late.Vector, SearchOptions{K: 1}); len(res) != 1 || res[0].ID != "late" {
		t.Errorf("item added while detached: %+v", res)
	}
	if res, _ := s.Search(ctx, late.Vector, SearchOptions{K: 1, Label: "x"}); len(res) != 1 || res[0].ID != "late" {
		t.Errorf("label search: %+v", res)
	}
}

// fakeRemote is an exact in-memory stand-in for Weaviate that can be told
// to fail.
type fakeRemote struct {
	labels map[string]string
	vecs   map[string][]float32
	fail   bool
	puts   int
}

var errDown = errors.New("remote down")

func (f *fakeRemote) Add(id string, vec []float32) error {
	return f.Put(context.Background(), []index.WeaviateObject{{ID: id, Vector: vec}})
}
func (f *fakeRemote) Remove(id string) bool { ok, _ := f.Delete(context.Background(), id); return ok }
func (f *fakeRemote) Len() int              { return len(f.vecs) }
func (f *fakeRemote) Dim() int              { return 32 }
func (f *fakeRemote) Close() error          { return nil }
func (f *fakeRemote) Search(ctx context.Context, q []float32, k int, filter func(int) bool) ([]index.Hit, error) {
	return nil, index.ErrFilterUnsupported
}

func (f *fakeRemote) Put(_ context.Context, objs []index.WeaviateObject) error {
	if f.fail {
		return errDown
	}
	for _, o := range objs {
		f.labels[o.ID], f.vecs[o.ID] = o.Label, append([]float32(nil), o.Vector...)
		f.puts++
	}
	return nil
}

func (f *fakeRemote) Delete(_ context.Context, id string) (bool, error) {
	if f.fail {
		return false, errDown
	}
	_, ok := f.vecs[id]
	delete(f.vecs, id)
	delete(f.labels, id)
	return ok, nil
}

func (f *fakeRemote) Count(context.Context) (int, error) {
	if f.fail {
		return 0, errDown
	}
	return len(f.vecs), nil
}

func (f *fakeRemote) SearchLabel(_ context.Context, q []float32, k int, label string) ([]index.LabeledHit, error) {
	if f.fail {
		return nil, errDown
	}
	var hits []index.Hit
	for id, v := range f.vecs {
		if label != "" && f.labels[id] != label {
			continue
		}
		var d float32
		for i := range q {
			d += q[i] * v[i]
		}
		hits = append(hits, index.Hit{ID: id, Index: -1, Score: d})
	}
	index.SortHits(hits)
	out := make([]index.LabeledHit, min(k, len(hits)))
	for i := range out {
		out[i] = index.LabeledHit{Hit: hits[i], Label: f.labels[hits[i].ID]}
	}
	return out, nil
}

// TestRemoteJournal covers what the Weaviate path does when the remote
// index fails after a commit: the write is durable, the error says so, and
// the next Open repairs the remote from the journal.
func TestRemoteJournal(t *testing.T) {
	ctx := context.Background()
	f := &fakeRemote{labels: map[string]string{}, vecs: map[string][]float32{}}
	opt := Options{Vectors: "weaviate://fake", openRemote: func(context.Context, string, int) (index.Index, error) { return f, nil }}
	dir := t.TempDir()
	open := func() *Store {
		t.Helper()
		s, err := OpenWith(ctx, dir, testBundle, 32, opt)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	es := randomEntries(50, 32, 3)
	s := open()
	if err := s.Add(ctx, es, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Search(ctx, es[4].Vector, SearchOptions{K: 3, Label: es[4].Label, Rerank: RerankQE})
	if err != nil || len(res) == 0 || res[0].ID != es[4].ID {
		t.Fatalf("search: %+v, %v", res, err)
	}
	f.fail = true
	if err := s.Add(ctx, []Entry{{ID: "lost", Label: "x", Vector: unitVec("lost", 32)}}, AddOptions{}); !errors.Is(err, ErrVectorIndex) {
		t.Fatalf("add with the remote down: %v", err)
	}
	if _, err := s.Remove(ctx, es[0].ID); !errors.Is(err, ErrVectorIndex) {
		t.Fatalf("remove with the remote down: %v", err)
	}
	f.fail = false
	// The removed item is hidden at once, though the remote still has it.
	if res, _ := s.Search(ctx, es[0].Vector, SearchOptions{K: 1}); len(res) > 0 && res[0].ID == es[0].ID {
		t.Errorf("removed item returned: %+v", res)
	}
	if err := s.Add(ctx, []Entry{{ID: "ok", Label: "x", Vector: unitVec("ok", 32)}}, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	s.db.Close() // a crash: the journal of "ok" is not cleared

	f.puts = 0
	s = open()
	defer s.Close()
	if _, ok := f.vecs["lost"]; !ok {
		t.Error("journaled add not replayed")
	}
	if _, ok := f.vecs[es[0].ID]; ok {
		t.Error("journaled remove not replayed")
	}
	if got := s.Info().Reindexed; got != 2 || f.puts != 2 {
		t.Errorf("replay re-indexed %d (%d puts), want just the 2 journaled adds", got, f.puts)
	}
	if len(f.vecs) != s.Len() {
		t.Errorf("remote holds %d, store %d", len(f.vecs), s.Len())
	}
}
