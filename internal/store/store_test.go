package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"prodsearch/internal/vec/vectest"
	"slices"
	"strings"
	"testing"
)

const testBundle = "test-bundle"

// unitVec is a deterministic pseudo-random unit vector for id.
func unitVec(id string, dim int) []float32 {
	var seed uint64
	for _, c := range id {
		seed = seed*31 + uint64(c)
	}
	return vectest.Unit(rand.New(rand.NewPCG(seed, 7)), dim)
}

func entry(id, label string, dim int) Entry {
	return Entry{ID: id, Label: label, FileName: id + ".jpg", Vector: unitVec(id, dim), Image: []byte("\xff\xd8\xff fake jpeg " + id)}
}

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	return openDim(t, dir, 16)
}

// openDim opens a test store of dim-long descriptors, closed when the test
// ends.
func openDim(t testing.TB, dir string, dim int) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, testBundle, dim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestAddGetSearchReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	var batch []Entry
	for i := range 20 {
		batch = append(batch, entry(fmt.Sprintf("item-%02d", i), fmt.Sprintf("label-%d", i%4), 16))
	}
	batch[3].Metadata = []byte(`{"sku":"A-3","price":2.5}`)
	if err := s.Add(ctx, batch, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 20 {
		t.Fatalf("Len = %d", s.Len())
	}
	it, err := s.Get("item-03")
	if err != nil {
		t.Fatal(err)
	}
	if it.Label != "label-3" || it.FileName != "item-03.jpg" || string(it.Metadata) != `{"sku":"A-3","price":2.5}` || it.Added.IsZero() {
		t.Errorf("Get = %+v", it)
	}
	img, ct, err := s.Image("item-03")
	if err != nil || string(img) != string(batch[3].Image) || ct != "image/jpeg" {
		t.Errorf("Image = %q, %q, %v", img, ct, err)
	}

	res, err := s.Search(ctx, unitVec("item-07", 16), SearchOptions{K: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].ID != "item-07" || res[0].Label != "label-3" || res[0].Score < 0.999 {
		t.Errorf("Search = %+v", res)
	}
	res, err = s.Search(ctx, unitVec("item-07", 16), SearchOptions{K: 10, Label: "label-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 5 {
		t.Errorf("label filter: %d results, want 5", len(res))
	}
	for _, r := range res {
		if r.Label != "label-1" {
			t.Errorf("label filter returned %+v", r)
		}
	}
	res, err = s.Search(ctx, unitVec("item-07", 16), SearchOptions{K: 3, Rerank: RerankQE})
	if err != nil || len(res) != 3 || res[0].ID != "item-07" {
		t.Errorf("QE search = %+v, %v", res, err)
	}
	if _, err := s.Search(ctx, unitVec("x", 16), SearchOptions{K: 3, Rerank: "magic"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown rerank: %v", err)
	}
	if _, err := s.Search(ctx, unitVec("x", 8), SearchOptions{K: 3}); !errors.Is(err, ErrInvalid) {
		t.Errorf("wrong dim query: %v", err)
	}

	page, total, err := s.List(ctx, ListOptions{Offset: 5, Limit: 4})
	if err != nil || total != 20 || len(page) != 4 || page[0].ID != "item-05" {
		t.Errorf("List = %v items, total %d, %v", len(page), total, err)
	}
	page, total, _ = s.List(ctx, ListOptions{Limit: 100, Label: "label-2"})
	if total != 5 || len(page) != 5 {
		t.Errorf("List by label: %d/%d", len(page), total)
	}

	gone, err := s.Remove(ctx, "item-00", "nope", "item-01")
	if err != nil || !slices.Equal(gone, []string{"item-00", "item-01"}) {
		t.Fatalf("Remove = %v, %v", gone, err)
	}
	if _, err := s.Get("item-00"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get removed: %v", err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(ctx, dir, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	info := s2.Info()
	if info.Items != 18 || info.BundleID != testBundle || info.Dim != 16 || info.Labels != 4 {
		t.Errorf("reopened Info = %+v", info)
	}
	res, err = s2.Search(ctx, unitVec("item-07", 16), SearchOptions{K: 1})
	if err != nil || res[0].ID != "item-07" || res[0].Label != "label-3" {
		t.Errorf("Search after reopen = %+v, %v", res, err)
	}
}

func TestOpenRefusesOtherBundle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	s.Close()
	_, err := Open(ctx, dir, "other-bundle", 16)
	if !errors.Is(err, ErrBundleMismatch) {
		t.Fatalf("other bundle: %v", err)
	}
	for _, want := range []string{testBundle, "other-bundle", "--bundle"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if _, err := Open(ctx, dir, testBundle, 32); !errors.Is(err, ErrBundleMismatch) {
		t.Errorf("other dim: %v", err)
	}
	if _, err := Open(ctx, t.TempDir(), "", 0); !errors.Is(err, ErrNoStore) {
		t.Errorf("missing store without bundle: %v", err)
	}
}

func TestOpenTwiceSaysInUse(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir)
	if _, err := Open(context.Background(), dir, "", 0); !errors.Is(err, ErrInUse) {
		t.Fatalf("second open: %v", err)
	}
}

func TestAddRejectsBadInputAtomically(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if err := s.Add(ctx, []Entry{entry("a", "x", 16)}, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	nan := entry("n", "x", 16)
	nan.Vector[2] = float32(math.NaN())
	badMeta := entry("m", "x", 16)
	badMeta.Metadata = []byte(`{"unterminated`)
	cases := map[string]struct {
		batch []Entry
		want  error
	}{
		"existing":    {[]Entry{entry("b", "x", 16), entry("a", "y", 16)}, ErrExists},
		"twice":       {[]Entry{entry("c", "x", 16), entry("c", "x", 16)}, ErrInvalid},
		"short":       {[]Entry{entry("d", "x", 16), {ID: "e", Vector: make([]float32, 3)}}, ErrInvalid},
		"nan":         {[]Entry{nan}, ErrInvalid},
		"backslash":   {[]Entry{entry("..\\etc", "x", 16)}, ErrInvalid},
		"empty id":    {[]Entry{entry("", "x", 16)}, ErrInvalid},
		"control":     {[]Entry{entry("a\nb", "x", 16)}, ErrInvalid},
		"bad meta":    {[]Entry{badMeta}, ErrInvalid},
		"long id":     {[]Entry{entry(strings.Repeat("i", MaxIDLen+1), "x", 16)}, ErrInvalid},
		"label ctrl":  {[]Entry{entry("f", "x\x00", 16)}, ErrInvalid},
		"dotdot":      {[]Entry{entry("..", "x", 16)}, ErrInvalid},
		"space edges": {[]Entry{entry(" g", "x", 16)}, ErrInvalid},
	}
	for name, c := range cases {
		if err := s.Add(ctx, c.batch, AddOptions{}); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
	if s.Len() != 1 {
		t.Errorf("failed batches left %d items", s.Len())
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	// Replace keeps one entry and moves the label.
	if err := s.Add(ctx, []Entry{entry("a", "y", 16)}, AddOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	if it, _ := s.Get("a"); it.Label != "y" || s.Len() != 1 || s.Labels()["x"] != 0 || s.Labels()["y"] != 1 {
		t.Errorf("after replace: %+v, labels %v", it, s.Labels())
	}
}

// TestRemoveAbsentCommitsNothing: removing IDs none of which is stored
// commits no transaction, so it neither syncs the disk nor moves the write
// sequence; a closed store still says so.
func TestRemoveAbsentCommitsNothing(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if err := s.Add(ctx, []Entry{entry("a", "x", 16)}, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	seq := s.seq
	if gone, err := s.Remove(ctx, "nope", "b"); err != nil || len(gone) != 0 || s.seq != seq {
		t.Errorf("removing absent IDs: %v, %v; sequence %d -> %d", gone, err, seq, s.seq)
	}
	if gone, err := s.Remove(ctx, "nope", "a"); err != nil || !slices.Equal(gone, []string{"a"}) || s.seq != seq+1 {
		t.Errorf("removing a stored ID: %v, %v; sequence %d -> %d", gone, err, seq, s.seq)
	}
	s.Close()
	if _, err := s.Remove(ctx, "nope"); err == nil {
		t.Error("Remove on a closed store succeeded")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	in := Item{ID: "x", Label: "Granny-Smith", FileName: "a/b.jpg", ContentType: "image/jpeg", Metadata: []byte(`{"a":1}`), ImageSize: 12345}
	b := encodeItem(&in)
	out, err := decodeItem("x", b)
	if err != nil || out.Label != in.Label || out.FileName != in.FileName || out.ContentType != in.ContentType || string(out.Metadata) != string(in.Metadata) || out.ImageSize != in.ImageSize {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	if l, err := decodeLabel(b); err != nil || l != in.Label {
		t.Errorf("decodeLabel = %q, %v", l, err)
	}
	for i := range b {
		if _, err := decodeItem("x", b[:i]); err == nil {
			t.Errorf("truncated record of %d bytes decoded", i)
		}
	}
}
