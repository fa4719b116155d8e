// Package vectest makes random descriptors for tests and benchmarks: unit
// vectors, and clustered unit vectors that behave like descriptors of
// products (several views of one product lie near each other). Everything is
// drawn from the caller's *rand.Rand so that a seed reproduces a test.
package vectest

import (
	"math"
	"math/rand/v2"

	"prodsearch/internal/vec"
)

// Gaussian returns d independent standard normal components.
func Gaussian(r *rand.Rand, d int) []float32 {
	v := make([]float32, d)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// Unit returns a random unit vector of d components, uniform on the sphere
// (a normalised Gaussian draw).
func Unit(r *rand.Rand, d int) []float32 {
	v := Gaussian(r, d)
	vec.Normalize(v)
	return v
}

// Centres returns n Gaussian centres of d components (not normalised: their
// spread against the noise of Near sets how separable the clusters are).
func Centres(r *rand.Rand, n, d int) [][]float64 {
	cs := make([][]float64, n)
	for c := range cs {
		cs[c] = make([]float64, d)
		for j := range cs[c] {
			cs[c][j] = r.NormFloat64()
		}
	}
	return cs
}

// Near returns a unit vector in the direction of centre plus Gaussian noise
// of standard deviation noise per component.
func Near(r *rand.Rand, centre []float64, noise float64) []float32 {
	v := make([]float32, len(centre))
	for j, c := range centre {
		v[j] = float32(c + noise*r.NormFloat64())
	}
	vec.Normalize(v)
	return v
}

// Cosine is the cosine similarity of two equally long vectors, in float64:
// tests compare a network's output with a reference by it.
func Cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}
