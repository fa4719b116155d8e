package describe

import (
	"fmt"
	"math"
)

// Pooling methods over a C×H×W feature map.
const (
	PoolGeM = "gem" // generalised mean, Radenovic et al.; p=1 is GAP, p→∞ is max
	PoolGAP = "gap" // global average
	PoolMax = "max" // global max (MAC)
)

// gemEps keeps x^p defined for the tiny negatives a quantised model can emit.
const gemEps = 1e-6

// Pool reduces a C×H×W block (channel-major, as ONNX Runtime returns NCHW) to
// a C-vector written into dst.
func Pool(dst, fmap []float32, c, hw int, method string, p float64) error {
	if len(dst) != c || len(fmap) != c*hw || hw <= 0 {
		return fmt.Errorf("pool: dst %d, map %d do not fit C=%d, HW=%d", len(dst), len(fmap), c, hw)
	}
	inv := 1 / float64(hw)
	switch method {
	case PoolGAP:
		for ch := 0; ch < c; ch++ {
			var s float64
			for _, v := range fmap[ch*hw : (ch+1)*hw] {
				s += float64(v)
			}
			dst[ch] = float32(s * inv)
		}
	case PoolMax:
		for ch := 0; ch < c; ch++ {
			m := fmap[ch*hw]
			for _, v := range fmap[ch*hw : (ch+1)*hw] {
				if v > m {
					m = v
				}
			}
			dst[ch] = m
		}
	case PoolGeM:
		if p <= 0 || math.IsNaN(p) || math.IsInf(p, 0) {
			return fmt.Errorf("pool: GeM p must be positive and finite, got %v", p)
		}
		cube := p == 3
		for ch := 0; ch < c; ch++ {
			var s float64
			for _, v := range fmap[ch*hw : (ch+1)*hw] {
				x := float64(v)
				if x < gemEps {
					x = gemEps
				}
				if cube {
					s += x * x * x
				} else {
					s += math.Pow(x, p)
				}
			}
			dst[ch] = float32(math.Pow(s*inv, 1/p))
		}
	default:
		return fmt.Errorf("pool: unknown method %q (want gem, gap or max)", method)
	}
	return nil
}
