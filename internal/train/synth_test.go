package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"prodsearch/internal/vec"
)

// world generates synthetic "descriptors" with the structure that makes
// learned heads useful: class identity lives in a low-variance subspace A,
// while a high-variance nuisance subspace B (pose, lighting, background)
// varies freely inside each class, plus isotropic noise and a large common
// offset (backbone descriptors are non-negative and share a big mean).
// Classes drawn later from the same world are new classes with the same
// structure, which is what open-set generalisation means here.
type world struct {
	dim             int
	a, b            [][]float64 // dim x classDim, dim x nuisDim
	base            []float64
	classSD, nuisSD float64
	noiseSD, viewSD float64
}

func newWorld(seed uint64, dim, classDim, nuisDim int) *world {
	r := rand.New(rand.NewPCG(seed, 99))
	w := &world{dim: dim, classSD: 0.5, nuisSD: 1.5, noiseSD: 0.1, viewSD: 0.1}
	mk := func(k int) [][]float64 {
		m := make([][]float64, dim)
		for i := range m {
			m[i] = make([]float64, k)
			for j := range m[i] {
				m[i][j] = r.NormFloat64() / math.Sqrt(float64(dim)) // unit-norm columns on average
			}
		}
		return m
	}
	w.a, w.b = mk(classDim), mk(nuisDim)
	w.base = make([]float64, dim)
	for i := range w.base {
		w.base[i] = 3 * math.Abs(r.NormFloat64()) / math.Sqrt(float64(dim))
	}
	return w
}

// sample draws classes x perClass images with views views each (view 0 has
// no view noise). Labels are prefix+index so different draws are disjoint.
func (w *world) sample(seed uint64, classes, perClass, views int, prefix string) ([][][]float32, []string) {
	r := rand.New(rand.NewPCG(seed, 7))
	var x [][][]float32
	var labels []string
	kc, kn := len(w.a[0]), len(w.b[0])
	for c := 0; c < classes; c++ {
		code := make([]float64, kc)
		for i := range code {
			code[i] = r.NormFloat64() * w.classSD
		}
		for i := 0; i < perClass; i++ {
			nu := make([]float64, kn)
			for j := range nu {
				nu[j] = r.NormFloat64() * w.nuisSD
			}
			clean := make([]float64, w.dim)
			for d := range clean {
				v := w.base[d] + r.NormFloat64()*w.noiseSD
				for j, cj := range code {
					v += w.a[d][j] * cj
				}
				for j, nj := range nu {
					v += w.b[d][j] * nj
				}
				clean[d] = v
			}
			vs := make([][]float32, views)
			for v := range vs {
				row := make([]float32, w.dim)
				for d := range row {
					val := clean[d]
					if v > 0 {
						val += r.NormFloat64() * w.viewSD
					}
					row[d] = float32(val)
				}
				vec.Normalize(row)
				vs[v] = row
			}
			x = append(x, vs)
			labels = append(labels, fmt.Sprintf("%s%03d", prefix, c))
		}
	}
	return x, labels
}

func view0(x [][][]float32) [][]float32 {
	out := make([][]float32, len(x))
	for i := range x {
		out[i] = x[i][0]
	}
	return out
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }
