// Package vec holds the small numeric helpers that every stage applies to
// descriptors: L2 normalisation, finite-value checks, and their float16 and
// little-endian float32 storage.
// It is a leaf: it imports only the standard library, so any package may use
// it, and a change here changes every caller the same way.
package vec

import (
	"encoding/binary"
	"math"
)

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

// AppendF32 appends v as little-endian IEEE 754 float32, the layout of every
// stored or exchanged float32 vector: caches, stores, graph files, ONNX raw
// tensors, safetensors and the benchmark peers' "<f4" files.
func AppendF32(dst []byte, v []float32) []byte {
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	return dst
}

// DecodeF32 fills dst from b, little-endian float32 as AppendF32 writes
// them; b must hold at least 4*len(dst) bytes.
func DecodeF32(dst []float32, b []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// Half rounds f to the nearest IEEE half (ties to even), saturating to
// infinity past its range and flushing tiny values through subnormals.
func Half(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b>>23)&0xff) - 127 + 15
	man := b & 0x7fffff
	switch {
	case (b>>23)&0xff == 0xff: // Inf or NaN
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		man |= 0x800000
		shift := uint32(14 - exp)
		h := man >> shift
		rem := man & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, which is still correct
	}
	return sign | uint16(h)
}

// FromHalf widens an IEEE half (as Half stores it) to float32.
func FromHalf(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		if man == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal half: value = man * 2^-24.
		f := float32(man) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}
