package train

import (
	"context"
	"math/rand/v2"
	"testing"

	"prodsearch/internal/vec/vectest"
)

// memTrunk is a TrunkSource in memory: image i, view v is maps[i][v].
type memTrunk struct {
	c    int
	maps [][][]float32
	h, w [][]int
}

func (s *memTrunk) Views(i int) int { return len(s.maps[i]) }
func (s *memTrunk) Trunk(i, v int) ([]float32, int, int, error) {
	return s.maps[i][v], s.h[i][v], s.w[i][v], nil
}

// classTrunk makes classes x per images with two views each, of varying
// sizes; a class shifts two of the four input channels, weakly, so the
// untrained tail separates them badly.
func classTrunk(rng *rand.Rand, classes, per int, shift float32) (*memTrunk, []string) {
	s := &memTrunk{c: 4}
	var labels []string
	for c := 0; c < classes; c++ {
		for k := 0; k < per; k++ {
			var maps [][]float32
			var hs, ws []int
			for v := 0; v < 2; v++ {
				h, w := 3+rng.IntN(3), 3+rng.IntN(3)
				img := randImages(rng, 4, []int{h}, []int{w}, 1)[0]
				for j := 0; j < h*w; j++ {
					img[(c%4)*h*w+j] += shift
					img[((c/4+1+c)%4)*h*w+j] -= shift
				}
				maps, hs, ws = append(maps, img), append(hs, h), append(ws, w)
			}
			s.maps, s.h, s.w = append(s.maps, maps), append(s.h, hs), append(s.w, ws)
			labels = append(labels, string(rune('a'+c)))
		}
	}
	return s, labels
}

// TestFineTuneStepGradient checks dL/d(tail weights) and dL/dp of a whole
// step (tail, GeM, L2, whitening, L2, head, L2, ArcFace) by central
// differences.
func TestFineTuneStepGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	tail, err := NewTail(synthTail(t, rng), "x", "y")
	if err != nil {
		t.Fatal(err)
	}
	src, labels := classTrunk(rng, 4, 3, 0.3)
	cfg := DefaultConfig()
	cfg.Whiten, cfg.WhitenDim, cfg.Dim = WhitenPCA, 4, 3
	cfg.Scale = 5
	all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	p := 2.0
	base, err := DescribeTrunk(context.Background(), tail, src, all, 0, p)
	if err != nil {
		t.Fatal(err)
	}
	prefix, err := FitWhitening(cfg, base, labels)
	if err != nil {
		t.Fatal(err)
	}
	ids, _, _, _ := classIndex(labels, 12, 2)
	n := newNet(4, 0, 3, 4, 12, cfg.lossSpec())
	n.initWeights(rng, true)
	initProxies(n, prefix.ApplyBatch(base), all, ids)
	n.gx = make([]float32, 12*4)
	ws := newFTWork(prefix, 5, 4, 12)
	view := []int{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}
	x, pl, err := tailBatch(src, 4, all, view, nil)
	if err != nil {
		t.Fatal(err)
	}
	loss := func() float64 {
		l, _ := ws.step(tail, n, prefix, x, pl, p, ids)
		return l
	}
	_, gp := ws.step(tail, n, prefix, x, pl, p, ids)
	checkTailGrads(t, tail.Params(), loss, 1e-2)
	l0 := loss()
	checkScalarGrad(t, "dL/dp", &p, loss, gp, 0.05)
	t.Logf("loss %.4f, dL/dp %.4g", l0, gp)
}

// TestFineTuneLearns trains the synthetic tail on 6 classes and checks that
// retrieval among the training images improves and p moves.
func TestFineTuneLearns(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	tail, err := NewTail(synthTail(t, rng), "x", "y")
	if err != nil {
		t.Fatal(err)
	}
	// Biases that keep most ReLU6 units alive, as in a trained network.
	for _, prm := range tail.Params() {
		if prm.Name == "b1" || prm.Name == "b2" || prm.Name == "b5" {
			for j := range prm.W {
				prm.W[j] = 1.5
			}
		}
	}
	src, labels := classTrunk(rng, 6, 5, 1)
	all := make([]int, len(labels))
	for i := range all {
		all[i] = i
	}
	cfg := DefaultConfig()
	cfg.Whiten, cfg.WhitenDim, cfg.Dim, cfg.Epochs, cfg.BatchP, cfg.BatchK = WhitenNone, 0, 5, 200, 6, 5
	cfg.Scale, cfg.LR, cfg.TailLR, cfg.GeMLR, cfg.Warmup = 10, 3e-2, 3e-2, 3e-2, 0
	before, err := DescribeTrunk(context.Background(), tail, src, all, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	mapBefore, _, err := ValMAP(before, labels)
	if err != nil {
		t.Fatal(err)
	}
	w5 := append([]float32(nil), tail.Params()[8].W...)
	var losses []float64
	heads, p, err := FineTune(context.Background(), cfg, tail, 2, src, labels, func(e FineTuneEpoch) error {
		losses = append(losses, e.Loss)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	after, err := DescribeTrunk(context.Background(), tail, src, all, 0, p)
	if err != nil {
		t.Fatal(err)
	}
	mapAfter, _, err := ValMAP(heads.ApplyBatch(after), labels)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mAP %.3f -> %.3f, loss %.3f -> %.3f, p 2 -> %.3f", mapBefore, mapAfter, losses[0], losses[len(losses)-1], p)
	if tail.Params()[8].Name != "w5" || vectest.Cosine(w5, tail.Params()[8].W) > 0.999 {
		t.Errorf("the last conv's weights hardly moved")
	}
	if mapAfter < mapBefore+0.1 || losses[len(losses)-1] >= losses[0] || p == 2 {
		t.Errorf("fine-tuning did not learn: mAP %.3f -> %.3f, loss %.3f -> %.3f, p %v", mapBefore, mapAfter, losses[0], losses[len(losses)-1], p)
	}
}
