package train

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// A batch of feature maps of different sizes is stored channel-major: row c
// holds channel c of every image, image after image (planes). With this
// layout a 1×1 convolution of the whole batch is one Sgemm of
// (Cout×Cin)·(Cin×P), P = total pixels, instead of one small product per
// image.
type planes struct {
	h, w []int // per image
	off  []int // per image: first pixel in a row
	p    int   // pixels per channel row, all images
}

func newPlanes(h, w []int) planes {
	pl := planes{h: h, w: w, off: make([]int, len(h))}
	for i := range h {
		pl.off[i] = pl.p
		pl.p += h[i] * w[i]
	}
	return pl
}

// conv1x1 computes y = W·x + b over every pixel: W is cout×cin, x is cin×p,
// y is cout×p.
func conv1x1(y, w, b, x []float32, cout, cin, p int) {
	blas32.Implementation().Sgemm(blas.NoTrans, blas.NoTrans, cout, p, cin, 1, w, cin, x, p, 0, y, p)
	for c := 0; c < cout; c++ {
		row := y[c*p : (c+1)*p]
		for j := range row {
			row[j] += b[c]
		}
	}
}

// conv1x1Backward adds dL/dW, dL/db and dL/dx (gx may be nil when the input
// needs no gradient) for the convolution above.
func conv1x1Backward(gw, gb, gx, w, x, gy []float32, cout, cin, p int) {
	impl := blas32.Implementation()
	impl.Sgemm(blas.NoTrans, blas.Trans, cout, cin, p, 1, gy, p, x, p, 1, gw, cin)
	for c := 0; c < cout; c++ {
		var s float32
		for _, v := range gy[c*p : (c+1)*p] {
			s += v
		}
		gb[c] += s
	}
	if gx != nil {
		impl.Sgemm(blas.Trans, blas.NoTrans, cin, p, cout, 1, w, cin, gy, p, 1, gx, p)
	}
}

// dwGeom is a depthwise k×k convolution's stride and the padding before
// each spatial axis; the padding after follows from the output size.
type dwGeom struct {
	k, stride  int
	sameUpper  bool
	padT, padL int // explicit pads (ignored when sameUpper)
	padB, padR int
}

// out returns the output size and the leading padding for an input size,
// following ONNX: SAME_UPPER pads so that out = ceil(in/stride), with the odd
// pixel of padding at the end.
func (g dwGeom) out(in int, lead, trail int) (int, int) {
	if g.sameUpper {
		o := (in + g.stride - 1) / g.stride
		total := max((o-1)*g.stride+g.k-in, 0)
		return o, total / 2
	}
	return (in+lead+trail-g.k)/g.stride + 1, lead
}

// outPlanes is the output geometry of the convolution for an input batch,
// with each image's leading pads.
func (g dwGeom) outPlanes(in planes) (planes, []int, []int) {
	n := len(in.h)
	oh, ow := make([]int, n), make([]int, n)
	pt, pl := make([]int, n), make([]int, n)
	for i := range in.h {
		oh[i], pt[i] = g.out(in.h[i], g.padT, g.padB)
		ow[i], pl[i] = g.out(in.w[i], g.padL, g.padR)
	}
	return newPlanes(oh, ow), pt, pl
}

// dwConv computes, for every channel c and image, y = b[c] + the k×k kernel
// w[c] correlated with x at the given stride, zero outside the image.
func dwConv(y, w, b, x []float32, c int, g dwGeom, in, out planes, pt, pl []int) {
	k := g.k
	for ch := 0; ch < c; ch++ {
		kern := w[ch*k*k : (ch+1)*k*k]
		xr := x[ch*in.p : (ch+1)*in.p]
		yr := y[ch*out.p : (ch+1)*out.p]
		for i := range in.h {
			xi := xr[in.off[i]:]
			yi := yr[out.off[i]:]
			ih, iw, oh, ow := in.h[i], in.w[i], out.h[i], out.w[i]
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					s := b[ch]
					y0, x0 := oy*g.stride-pt[i], ox*g.stride-pl[i]
					for ky := 0; ky < k; ky++ {
						iy := y0 + ky
						if iy < 0 || iy >= ih {
							continue
						}
						row := xi[iy*iw:]
						for kx := 0; kx < k; kx++ {
							ix := x0 + kx
							if ix >= 0 && ix < iw {
								s += kern[ky*k+kx] * row[ix]
							}
						}
					}
					yi[oy*ow+ox] = s
				}
			}
		}
	}
}

// dwConvBackward adds dL/dw, dL/db and dL/dx (gx may be nil).
func dwConvBackward(gw, gb, gx, w, x, gy []float32, c int, g dwGeom, in, out planes, pt, pl []int) {
	k := g.k
	for ch := 0; ch < c; ch++ {
		kern := w[ch*k*k : (ch+1)*k*k]
		gk := gw[ch*k*k : (ch+1)*k*k]
		xr := x[ch*in.p : (ch+1)*in.p]
		gyr := gy[ch*out.p : (ch+1)*out.p]
		var gxr []float32
		if gx != nil {
			gxr = gx[ch*in.p : (ch+1)*in.p]
		}
		var sb float32
		for i := range in.h {
			xi := xr[in.off[i]:]
			gyi := gyr[out.off[i]:]
			ih, iw, oh, ow := in.h[i], in.w[i], out.h[i], out.w[i]
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					d := gyi[oy*ow+ox]
					sb += d
					y0, x0 := oy*g.stride-pt[i], ox*g.stride-pl[i]
					for ky := 0; ky < k; ky++ {
						iy := y0 + ky
						if iy < 0 || iy >= ih {
							continue
						}
						base := in.off[i] + iy*iw
						for kx := 0; kx < k; kx++ {
							ix := x0 + kx
							if ix < 0 || ix >= iw {
								continue
							}
							gk[ky*k+kx] += d * xi[iy*iw+ix]
							if gxr != nil {
								gxr[base+ix] += d * kern[ky*k+kx]
							}
						}
					}
				}
			}
		}
		gb[ch] += sb
	}
}

// clip is ReLU6 and its kin: y = min(max(x, lo), hi).
func clip(y, x []float32, lo, hi float32) {
	for i, v := range x {
		y[i] = min(max(v, lo), hi)
	}
}

// clipBackward adds the gradient where the clip was not saturated.
func clipBackward(gx, x, gy []float32, lo, hi float32) {
	for i, v := range x {
		if v > lo && v < hi {
			gx[i] += gy[i]
		}
	}
}

// gemPool computes, per image i and channel c, the generalised mean
// f = (mean over pixels of max(x, eps)^p)^(1/p) into f[i*c+ch], keeping
// mean x^p in m for the backward pass.
func gemPool(f, m, x []float32, c int, pl planes, p float64) {
	n := len(pl.h)
	for ch := 0; ch < c; ch++ {
		row := x[ch*pl.p : (ch+1)*pl.p]
		for i := 0; i < n; i++ {
			px := row[pl.off[i] : pl.off[i]+pl.h[i]*pl.w[i]]
			var s float64
			for _, v := range px {
				s += math.Pow(max(float64(v), gemEps), p)
			}
			mean := s / float64(len(px))
			m[i*c+ch] = float32(mean)
			f[i*c+ch] = float32(math.Pow(mean, 1/p))
		}
	}
}

// gemEps keeps x^p and log x defined where a feature is zero (after ReLU6
// most are); it matches describe's GeM.
const gemEps = 1e-6

// gemBackward adds dL/dx to gx and returns dL/dp, given dL/df in gf. With
// M = mean x^p and f = M^(1/p):
//
//	df/dx = f^(1-p) x^(p-1) / HW
//	df/dp = f (mean(x^p log x)/(p M) - log M / p²)
func gemBackward(gx, x, f, m, gf []float32, c int, pl planes, p float64) float64 {
	n := len(pl.h)
	var gp float64
	for ch := 0; ch < c; ch++ {
		row := x[ch*pl.p : (ch+1)*pl.p]
		var grow []float32
		if gx != nil {
			grow = gx[ch*pl.p : (ch+1)*pl.p]
		}
		for i := 0; i < n; i++ {
			k := i*c + ch
			d := float64(gf[k])
			if d == 0 {
				continue
			}
			lo, hw := pl.off[i], pl.h[i]*pl.w[i]
			fv, mv := float64(f[k]), float64(m[k])
			scale := math.Pow(fv, 1-p) / float64(hw)
			var sxl float64
			for j := lo; j < lo+hw; j++ {
				v := float64(row[j])
				xc := max(v, gemEps)
				xp1 := math.Pow(xc, p-1)
				sxl += xp1 * xc * math.Log(xc)
				if grow != nil && v > gemEps {
					grow[j] += float32(d * scale * xp1)
				}
			}
			gp += d * fv * (sxl/float64(hw)/(p*mv) - math.Log(mv)/(p*p))
		}
	}
	return gp
}
