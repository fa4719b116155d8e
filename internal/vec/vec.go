// Package vec holds the small numeric helpers that every stage applies to
// descriptors: L2 normalisation and finite-value checks. It is a leaf: it
// imports only the standard library, so any package may use it, and a change
// here changes every caller the same way.
package vec

import "math"

// Normalize scales v to unit L2 length in place and returns its former
// length. The sum of squares is accumulated in float64 so that long
// descriptors do not lose precision; a zero vector stays zero (it has no
// direction, and a zero scores 0 against everything instead of NaN).
func Normalize(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return 0
	}
	r := math.Sqrt(s)
	inv := float32(1 / r)
	for i := range v {
		v[i] *= inv
	}
	return r
}

// Normalized returns a unit-length copy of v (never nil), leaving v as is.
func Normalized(v []float32) []float32 {
	c := make([]float32, len(v))
	copy(c, v)
	Normalize(c)
	return c
}

// IsFinite reports whether x is neither NaN nor infinite.
func IsFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// FirstNonFinite returns the index of the first NaN or infinite value in v,
// or -1 when all are finite. Such values make scores unordered and rankings
// meaningless, so every entry point that accepts vectors rejects them.
func FirstNonFinite(v []float32) int {
	for i, x := range v {
		if !IsFinite(float64(x)) {
			return i
		}
	}
	return -1
}
