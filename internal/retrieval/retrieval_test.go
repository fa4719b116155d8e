package retrieval

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/rerank"
)

func set(ids ...string) *dataset.Set {
	s := &dataset.Set{}
	for _, id := range ids {
		s.Items = append(s.Items, dataset.Item{ID: id, Path: id + ".jpg"})
	}
	return s
}

func TestRankSkipsFailedItemsAndTiesByID(t *testing.T) {
	qs, rs := set("q1", "q2", "q3"), set("b", "a", "c", "broken")
	qv := [][]float32{{1, 0}, nil, {0, 1}}
	rv := [][]float32{{1, 0}, {1, 0}, {0, 1}, nil}
	got, err := Rank(context.Background(), qs, rs, qv, rv, 2, RankOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Query != "q1" || got[1].Query != "q3" {
		t.Fatalf("failed query must have no ranking: %+v", got)
	}
	// a and b tie: the ID breaks the tie, so rankings are reproducible.
	if !reflect.DeepEqual(got[0].Refs, []string{"a", "b", "c"}) || got[1].Refs[0] != "c" {
		t.Fatalf("rankings %+v", got)
	}
	top1, err := Rank(context.Background(), qs, rs, qv, rv, 2, RankOptions{Top: 1, Rerank: &rerank.Params{QE: 1}})
	if err != nil || len(top1[0].Refs) != 1 {
		t.Fatalf("top 1 with QE: %+v %v", top1, err)
	}
	hn, err := Rank(context.Background(), qs, rs, qv, rv, 2, RankOptions{Index: "hnsw"})
	if err != nil || len(hn) != 2 || hn[1].Refs[0] != "c" || len(hn[0].Refs) != 3 {
		t.Fatalf("hnsw ranking %+v %v", hn, err)
	}
	if _, err := Rank(context.Background(), qs, rs, qv, rv, 2, RankOptions{Index: "hnsw", Rerank: &rerank.Params{QE: 1}}); err == nil {
		t.Fatal("re-ranking on an approximate index accepted")
	}
	if _, err := Rank(context.Background(), qs, rs, [][]float32{nil, nil, nil}, rv, 2, RankOptions{}); err == nil {
		t.Fatal("no describable query accepted")
	}
}

// mapDescriber describes a path by a table.
type mapDescriber struct {
	dim  int
	vecs map[string][]float32
}

func (m mapDescriber) Dim() int { return m.dim }

func (m mapDescriber) DescribeFiles(_ context.Context, paths []string, _ describe.FileOptions) ([][]float32, []describe.Failure, describe.Stats, error) {
	out := make([][]float32, len(paths))
	for i, p := range paths {
		out[i] = m.vecs[p]
	}
	return out, nil, describe.Stats{}, nil
}

func TestRunRefDescriber(t *testing.T) {
	qs, rs := set("q"), set("a", "b")
	// The query's describer sees a and b swapped: only the reference
	// describer's view puts b first.
	queries := mapDescriber{2, map[string][]float32{"q.jpg": {1, 0}, "a.jpg": {1, 0}, "b.jpg": {0, 1}}}
	refs := mapDescriber{2, map[string][]float32{"a.jpg": {0, 1}, "b.jpg": {1, 0}}}
	res, err := Run(context.Background(), queries, Job{Queries: qs, References: rs})
	if err != nil || res.Rankings[0].Refs[0] != "a" {
		t.Fatalf("without a reference describer: %+v %v", res, err)
	}
	res, err = Run(context.Background(), queries, Job{Queries: qs, References: rs, RefDescriber: refs})
	if err != nil || res.Rankings[0].Refs[0] != "b" {
		t.Fatalf("references not described by RefDescriber: %+v %v", res, err)
	}
	_, err = Run(context.Background(), queries, Job{Queries: qs, References: rs, RefDescriber: mapDescriber{3, nil}})
	if err == nil || !strings.Contains(err.Error(), "3 dimensions") {
		t.Fatalf("a reference describer of another length: %v", err)
	}
}
