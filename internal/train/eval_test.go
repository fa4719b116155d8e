package train

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func unit(deg float64) []float32 {
	r := deg * math.Pi / 180
	return []float32{float32(math.Cos(r)), float32(math.Sin(r))}
}

func TestValMAPHandComputed(t *testing.T) {
	// a0 0°, a1 10°, b0 4°, b1 90°, plus a singleton class s at 45° that
	// is a distractor but not a query. Rankings (most similar first):
	//   a0: b0 a1 s b1   -> relevant at 2        AP 1/2
	//   a1: b0 a0 s b1   -> relevant at 2        AP 1/2
	//   b0: a0 a1 s b1   -> relevant at 4        AP 1/4
	//   b1: s a1 b0 a0   -> relevant at 3        AP 1/3
	x := [][]float32{unit(0), unit(10), unit(4), unit(90), unit(45)}
	l := []string{"a", "a", "b", "b", "s"}
	m, r1, err := ValMAP(x, l)
	if err != nil {
		t.Fatal(err)
	}
	want := (0.5 + 0.5 + 0.25 + 1.0/3) / 4
	if math.Abs(m-want) > 1e-9 || r1 != 0 {
		t.Fatalf("mAP %v r1 %v, want %v 0", m, r1, want)
	}
	// Perfectly separated classes; scale must not matter.
	x = [][]float32{unit(0), {0, 0.1}, {5, 0.1}, {0, 3}}
	l = []string{"a", "b", "a", "b"}
	m, r1, err = ValMAP(x, l)
	if err != nil || m != 1 || r1 != 1 {
		t.Fatalf("separated: %v %v %v", m, r1, err)
	}
}

func TestValMAPErrors(t *testing.T) {
	if _, _, err := ValMAP(nil, nil); !errors.Is(err, ErrNoData) {
		t.Errorf("empty: %v", err)
	}
	x := [][]float32{{1, 0}, {0, 1}}
	if _, _, err := ValMAP(x, []string{"a", "b"}); !errors.Is(err, ErrSmallClass) {
		t.Errorf("all singletons: %v", err)
	}
	if _, _, err := ValMAP(x, []string{"a"}); !errors.Is(err, ErrBadLabels) {
		t.Errorf("label count: %v", err)
	}
	if _, _, err := ValMAP([][]float32{{1, 0}, {float32(math.NaN()), 1}}, []string{"a", "a"}); !errors.Is(err, ErrNotFinite) {
		t.Errorf("NaN: %v", err)
	}
}

func TestHoldOutClasses(t *testing.T) {
	var labels []string
	for c := 0; c < 41; c++ {
		for i := 0; i <= c%5; i++ {
			labels = append(labels, string(rune('A'+c%26))+string(rune('a'+c/26)))
		}
	}
	tr, va := HoldOutClasses(labels, 0.2, 3)
	tr2, va2 := HoldOutClasses(labels, 0.2, 3)
	if !slices.Equal(tr, tr2) || !slices.Equal(va, va2) {
		t.Fatal("not deterministic")
	}
	if len(tr)+len(va) != len(labels) || !slices.IsSorted(tr) || !slices.IsSorted(va) {
		t.Fatal("not a sorted partition")
	}
	trainClasses, valClasses := map[string]bool{}, map[string]bool{}
	for _, i := range tr {
		trainClasses[labels[i]] = true
	}
	for _, i := range va {
		valClasses[labels[i]] = true
	}
	for c := range valClasses {
		if trainClasses[c] {
			t.Fatalf("class %s on both sides", c)
		}
	}
	if len(valClasses) != 8 { // round(0.2 * 41)
		t.Fatalf("%d validation classes, want 8", len(valClasses))
	}
	// Input order does not change which classes are held out.
	rev := slices.Clone(labels)
	slices.Reverse(rev)
	_, vr := HoldOutClasses(rev, 0.2, 3)
	revClasses := map[string]bool{}
	for _, i := range vr {
		revClasses[rev[i]] = true
	}
	for c := range valClasses {
		if !revClasses[c] {
			t.Fatal("held-out classes depend on label order")
		}
	}
	if _, va := HoldOutClasses(labels, 0, 3); len(va) != 0 {
		t.Fatal("frac 0 held out images")
	}
	if _, va := HoldOutClasses(labels, 0.001, 3); len(va) == 0 {
		t.Fatal("tiny frac held out nothing")
	}
	if tr, _ := HoldOutClasses(labels, 0.999, 3); len(tr) == 0 {
		t.Fatal("frac < 1 left no training class")
	}
	if tr, va := HoldOutClasses(nil, 0.5, 1); len(tr)+len(va) != 0 {
		t.Fatal("empty labels")
	}
}

func TestPlotCurves(t *testing.T) {
	dir := t.TempDir()
	stats := []EpochStats{
		{Epoch: 1, Loss: 2.1, ValMAP: 0.55, ValR1: 0.7},
		{Epoch: 2, Loss: 1.5, ValMAP: math.NaN(), ValR1: math.NaN()},
		{Epoch: 3, Loss: 1.1, ValMAP: 0.62, ValR1: 0.78},
	}
	for _, name := range []string{"curves.png", "curves.svg"} {
		p := filepath.Join(dir, name)
		if err := PlotCurves(p, stats); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Size() < 1000 {
			t.Fatalf("%s: %v size %d", name, err, fi.Size())
		}
	}
	if err := PlotCurves(filepath.Join(dir, "x.gif"), stats); err == nil {
		t.Error("gif accepted")
	}
	if err := PlotCurves(filepath.Join(dir, "x.png"), nil); err == nil {
		t.Error("no epochs accepted")
	}
}
