package tune

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"prodsearch/internal/dataset"
	"prodsearch/internal/vec/vectest"
)

// planted makes classes of noisy copies of random centres; noise controls
// how hard the problem is.
func planted(rng *rand.Rand, classes, per, dim int, noise float64) ([]dataset.Item, [][]float32) {
	var items []dataset.Item
	var vecs [][]float32
	for c := 0; c < classes; c++ {
		centre := vectest.Centres(rng, 1, dim)[0]
		for i := 0; i < per; i++ {
			v := vectest.Near(rng, centre, noise)
			items = append(items, dataset.Item{ID: fmt.Sprintf("c%d/%d", c, i), Label: fmt.Sprint(c)})
			vecs = append(vecs, v)
		}
	}
	return items, vecs
}

func problem(t *testing.T, items []dataset.Item, vecs [][]float32) *Problem {
	t.Helper()
	qs, rs := Split(items, 2)
	index := map[string][]float32{}
	for i, it := range items {
		index[it.ID] = vecs[i]
	}
	var qv, rv [][]float32
	for _, it := range qs {
		qv = append(qv, index[it.ID])
	}
	for _, it := range rs {
		rv = append(rv, index[it.ID])
	}
	p, err := NewProblem(qs, rs, qv, rv)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSplitMirrorsTestProtocol(t *testing.T) {
	items := []dataset.Item{{ID: "a", Label: "x"}, {ID: "b", Label: "x"}, {ID: "c", Label: "x"}, {ID: "d", Label: "y"}, {ID: "e", Label: "y"}}
	qs, rs := Split(items, 2)
	if len(qs) != 4 || len(rs) != 1 || rs[0].ID != "c" {
		t.Fatalf("queries %v refs %v", qs, rs)
	}
}

func TestRerankFindsQEOnPlantedClusters(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	items, vecs := planted(rng, 12, 12, 32, 1.6)
	p := problem(t, items, vecs)
	trials, err := p.Rerank(context.Background(), RerankGrid())
	if err != nil {
		t.Fatal(err)
	}
	var plain float64
	for i, tr := range trials {
		if i > 0 && tr.Scores.MAP > trials[i-1].Scores.MAP {
			t.Fatal("trials not sorted best first")
		}
		if tr.Params == nil {
			plain = tr.Scores.MAP
		}
	}
	if trials[0].Params == nil || trials[0].Scores.MAP <= plain {
		t.Fatalf("best %s (%.3f) should beat plain search (%.3f) on clustered data", trials[0].Name, trials[0].Scores.MAP, plain)
	}
}

func TestWeightsDownweightNoise(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	items, good := planted(rng, 10, 10, 16, 1.2)
	_, noise := planted(rng, 100, 1, 16, 0) // unrelated directions per image
	a, b := problem(t, items, good), problem(t, items, noise)
	w, trials, err := Weights(context.Background(), []*Problem{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if w[0] != 1 || w[1] >= 1 || len(trials) < 2 {
		t.Fatalf("weights %v: the noise member should be weighted down", w)
	}
	if _, _, err := Weights(context.Background(), []*Problem{a}); err == nil {
		t.Fatal("a one-member ensemble accepted")
	}
}

func TestConcatWeightsAreSimilarityWeights(t *testing.T) {
	// Two unit members: concat with weights w gives cos = (w1² c1 + w2² c2)/(w1²+w2²).
	x := [][]float32{{1, 0}, {0, 1}}
	y := [][]float32{{0.6, 0.8}, {1, 0}}
	w := []float64{1, 2}
	cx, cy := Concat(x, w), Concat(y, w)
	var dot float64
	for i := range cx {
		dot += float64(cx[i] * cy[i])
	}
	want := (1*0.6 + 4*0) / 5.0
	if math.Abs(dot-want) > 1e-6 {
		t.Fatalf("cos %v, want %v", dot, want)
	}
}

// TestRerankTasksIsTheMeanOfEachTask: one member per task, two tasks; the
// result is Mean of the tasks' own Rerank trials.
func TestRerankTasksIsTheMeanOfEachTask(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	items, vecs := planted(rng, 8, 10, 16, 1.4)
	a := problem(t, items, vecs)
	items, vecs = planted(rng, 8, 10, 16, 1.0)
	b := problem(t, items, vecs)
	got, err := RerankTasks(ctx, [][]*Problem{{a}, {b}}, []float64{1})
	if err != nil {
		t.Fatal(err)
	}
	ta, _ := a.Rerank(ctx, RerankGrid())
	tb, _ := b.Rerank(ctx, RerankGrid())
	want := Mean(ta, tb)
	if len(got) != len(want) || got[0].Name != want[0].Name || got[0].Scores.MAP != want[0].Scores.MAP {
		t.Fatalf("RerankTasks best %s %.4f, Mean of the tasks %s %.4f", got[0].Name, got[0].Scores.MAP, want[0].Name, want[0].Scores.MAP)
	}
}
