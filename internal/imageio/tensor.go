package imageio

import (
	"fmt"
	"image"
	"prodsearch/internal/vec"
)

// Tensor layouts accepted by PixelNorm.Layout.
const (
	LayoutNCHW = "NCHW" // planar: all R, then all G, then all B (PyTorch exports)
	LayoutNHWC = "NHWC" // interleaved RGBRGB... (TensorFlow/Keras exports)
)

// PixelNorm describes the input convention of a backbone, since every model
// family was trained with its own: value = (pixel*Scale - Mean[c]) / Std[c]
// with pixel in 0..255. Mean and Std are indexed by tensor channel, so for
// BGR models they are given in B, G, R order, as Caffe-style model cards list
// them.
type PixelNorm struct {
	Layout string // LayoutNCHW or LayoutNHWC
	BGR    bool   // tensor channel 0 is blue
	Scale  float32
	Mean   [3]float32
	Std    [3]float32
}

// ImageNetNorm is the torchvision convention most CNN backbones use.
func ImageNetNorm() PixelNorm {
	return PixelNorm{
		Layout: LayoutNCHW, Scale: 1.0 / 255,
		Mean: [3]float32{0.485, 0.456, 0.406},
		Std:  [3]float32{0.229, 0.224, 0.225},
	}
}

// CLIPNorm is the OpenAI CLIP / open_clip image convention.
func CLIPNorm() PixelNorm {
	return PixelNorm{
		Layout: LayoutNCHW, Scale: 1.0 / 255,
		Mean: [3]float32{0.48145466, 0.4578275, 0.40821073},
		Std:  [3]float32{0.26862954, 0.26130258, 0.27577711},
	}
}

// Validate catches configuration mistakes (typo in layout, zero std, NaN)
// at startup instead of producing silently garbage embeddings.
func (n PixelNorm) Validate() error {
	if n.Layout != LayoutNCHW && n.Layout != LayoutNHWC {
		return fmt.Errorf("imageio: pixel norm: layout %q, want %q or %q", n.Layout, LayoutNCHW, LayoutNHWC)
	}
	finite := func(v float32) bool { return vec.IsFinite(float64(v)) }
	if !finite(n.Scale) || n.Scale == 0 {
		return fmt.Errorf("imageio: pixel norm: scale %v must be finite and non-zero", n.Scale)
	}
	for c := range 3 {
		if !finite(n.Mean[c]) {
			return fmt.Errorf("imageio: pixel norm: mean[%d] = %v is not finite", c, n.Mean[c])
		}
		if !finite(n.Std[c]) || n.Std[c] == 0 {
			return fmt.Errorf("imageio: pixel norm: std[%d] = %v must be finite and non-zero", c, n.Std[c])
		}
	}
	return nil
}

// lut returns, per tensor channel, the normalised value of every byte value,
// and which RGBA byte (0..2) feeds that channel.
func (n PixelNorm) lut() (lut [3][256]float32, srcCh [3]int) {
	for c := range 3 {
		srcCh[c] = c
		if n.BGR {
			srcCh[c] = 2 - c
		}
		for v := range 256 {
			lut[c][v] = (float32(v)*n.Scale - n.Mean[c]) / n.Std[c]
		}
	}
	return lut, srcCh
}

// FillTensor writes img into dst (len 3*W*H, one batch item) normalised per
// n, so the caller can fill a batch buffer in place without intermediate
// allocations. flip mirrors horizontally (flip test-time augmentation)
// without materialising a flipped copy. Normalisation goes through a 256-entry
// table per channel, so it costs one load per value. The RGBA values are
// used as stored (premultiplied): transparent areas read as black.
func FillTensor(dst []float32, img *image.RGBA, n PixelNorm, flip bool) error {
	if err := n.Validate(); err != nil {
		return err
	}
	if img == nil {
		return fmt.Errorf("imageio: fill tensor: nil image")
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	if want := 3 * w * h; len(dst) != want {
		return fmt.Errorf("imageio: fill tensor: len(dst) = %d, want 3*%d*%d = %d", len(dst), w, h, want)
	}
	lut, sc := n.lut()
	l0, l1, l2 := &lut[0], &lut[1], &lut[2]
	c0, c1, c2 := sc[0], sc[1], sc[2]
	plane := w * h
	for y := range h {
		o := img.PixOffset(img.Rect.Min.X, img.Rect.Min.Y+y)
		row := img.Pix[o : o+4*w]
		switch n.Layout {
		case LayoutNCHW:
			p0 := dst[y*w : (y+1)*w]
			p1 := dst[plane+y*w : plane+(y+1)*w]
			p2 := dst[2*plane+y*w : 2*plane+(y+1)*w]
			if flip {
				for x := range w {
					px := row[4*(w-1-x) : 4*(w-1-x)+4 : 4*(w-1-x)+4]
					p0[x], p1[x], p2[x] = l0[px[c0]], l1[px[c1]], l2[px[c2]]
				}
			} else {
				for x := range w {
					px := row[4*x : 4*x+4 : 4*x+4]
					p0[x], p1[x], p2[x] = l0[px[c0]], l1[px[c1]], l2[px[c2]]
				}
			}
		case LayoutNHWC:
			d := dst[3*y*w : 3*(y+1)*w]
			for x := range w {
				sx := x
				if flip {
					sx = w - 1 - x
				}
				px := row[4*sx : 4*sx+4 : 4*sx+4]
				dd := d[3*x : 3*x+3 : 3*x+3]
				dd[0], dd[1], dd[2] = l0[px[c0]], l1[px[c1]], l2[px[c2]]
			}
		}
	}
	return nil
}
