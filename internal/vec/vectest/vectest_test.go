package vectest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"prodsearch/internal/vec"
)

// norm is v's L2 length, as vec.Normalize measures it.
func norm(v []float32) float64 { return vec.Normalize(slices.Clone(v)) }

func TestUnitAndNear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	u := Unit(r, 64)
	if len(u) != 64 || math.Abs(norm(u)-1) > 1e-6 {
		t.Fatalf("Unit: len %d norm %v", len(u), norm(u))
	}
	cs := Centres(r, 2, 64)
	a, b := Near(r, cs[0], 0.1), Near(r, cs[0], 0.1)
	c := Near(r, cs[1], 0.1)
	dot := func(x, y []float32) (s float64) {
		for i := range x {
			s += float64(x[i]) * float64(y[i])
		}
		return s
	}
	if math.Abs(norm(a)-1) > 1e-6 || dot(a, b) <= dot(a, c) {
		t.Fatalf("same-centre similarity %v should beat other-centre %v", dot(a, b), dot(a, c))
	}
	r1, r2 := rand.New(rand.NewPCG(7, 7)), rand.New(rand.NewPCG(7, 7))
	if x, y := Unit(r1, 8), Unit(r2, 8); x[3] != y[3] {
		t.Fatal("same seed, different vectors")
	}
}
