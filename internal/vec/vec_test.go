package vec

import (
	"math"
	"testing"
)

func TestNormalize(t *testing.T) {
	v := []float32{3, 4}
	if n := Normalize(v); n != 5 {
		t.Fatalf("norm %v, want 5", n)
	}
	if v[0] != 0.6 || v[1] != 0.8 {
		t.Fatalf("got %v, want [0.6 0.8]", v)
	}
	z := []float32{0, 0, 0}
	if n := Normalize(z); n != 0 || z[0] != 0 || z[1] != 0 || z[2] != 0 {
		t.Fatalf("zero vector became %v (norm %v)", z, n)
	}
	if n := Normalize(nil); n != 0 {
		t.Fatalf("nil: norm %v", n)
	}
}

func TestNormalized(t *testing.T) {
	v := []float32{0, 2}
	c := Normalized(v)
	if v[1] != 2 || c[1] != 1 {
		t.Fatalf("source %v copy %v", v, c)
	}
	if c := Normalized(nil); c == nil || len(c) != 0 {
		t.Fatalf("nil: got %#v, want empty non-nil", c)
	}
}

func TestFirstNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(-1))
	for _, c := range []struct {
		v    []float32
		want int
	}{
		{nil, -1},
		{[]float32{1, 2, math.MaxFloat32}, -1},
		{[]float32{1, nan}, 1},
		{[]float32{inf, nan}, 0},
	} {
		if got := FirstNonFinite(c.v); got != c.want {
			t.Errorf("FirstNonFinite(%v) = %d, want %d", c.v, got, c.want)
		}
	}
	if IsFinite(math.NaN()) || IsFinite(math.Inf(1)) || !IsFinite(-1e308) {
		t.Error("IsFinite misclassifies")
	}
}

// TestF32LittleEndian pins the byte layout (files written on one machine are
// read on another) and checks that every bit pattern survives, NaN
// payloads and negative zero included.
func TestF32LittleEndian(t *testing.T) {
	v := []float32{1, 0, float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), 1e-40}
	v[1] = float32(math.Copysign(0, -1)) // the constant -0.0 is +0 in Go
	b := AppendF32([]byte{0xaa}, v)
	if len(b) != 1+4*len(v) || b[0] != 0xaa || b[1] != 0x00 || b[4] != 0x3f || b[3] != 0x80 {
		t.Fatalf("layout: % x", b[:5])
	}
	got := make([]float32, len(v))
	DecodeF32(got, b[1:])
	for i := range v {
		if math.Float32bits(got[i]) != math.Float32bits(v[i]) {
			t.Errorf("value %d: %08x, want %08x", i, math.Float32bits(got[i]), math.Float32bits(v[i]))
		}
	}
}
