package imageio

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"math"
	"sync"
	"testing"

	xdraw "golang.org/x/image/draw"

	"prodsearch/internal/imageio/imagetest"
)

func TestResizeShortDims(t *testing.T) {
	cases := []struct {
		w, h, short, ww, wh int
	}{
		{640, 480, 224, 299, 224}, // landscape
		{480, 640, 224, 224, 299}, // portrait
		{300, 300, 224, 224, 224}, // square
		{100, 50, 224, 448, 224},  // upscale
		{348, 464, 224, 224, 299}, // benchmark shape
		{1, 10, 4, 4, 40},         // 1xN
		{10, 1, 4, 40, 4},         // Nx1
		{1, 1, 3, 3, 3},
		{1000, 1, 2, 2000, 2},
		{5000, 3, 1, 1667, 1}, // extreme downscale of the long side
		{224, 299, 224, 224, 299},
	}
	for _, c := range cases {
		r := image.Rect(0, 0, c.w, c.h)
		srcs := []image.Image{textured(c.w, c.h), image.NewGray(r), image.NewNRGBA(r)}
		for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio410} {
			y := image.NewYCbCr(r, ratio)
			for i := range y.Y {
				y.Y[i] = uint8(i)
			}
			srcs = append(srcs, y)
		}
		for _, src := range srcs {
			got := ResizeShort(src, c.short)
			if got.Rect != image.Rect(0, 0, c.ww, c.wh) {
				t.Errorf("%T %dx%d short %d: got %v, want %dx%d", src, c.w, c.h, c.short, got.Rect, c.ww, c.wh)
			}
			if got.Stride != 4*c.ww {
				t.Errorf("stride %d", got.Stride)
			}
		}
		if w, h := ShortSideSize(c.w, c.h, c.short); w != c.ww || h != c.wh {
			t.Errorf("ShortSideSize(%d,%d,%d) = %d,%d", c.w, c.h, c.short, w, h)
		}
	}
	if r := ResizeShort(textured(4, 4), 0); !r.Rect.Empty() {
		t.Errorf("short=0 gave %v", r.Rect)
	}
	if r := ResizeShort(image.NewRGBA(image.Rect(0, 0, 0, 5)), 10); !r.Rect.Empty() {
		t.Errorf("empty src gave %v", r.Rect)
	}
}

// sourceVariants returns the same picture as several concrete image types,
// including sub-images with odd offsets, converted exactly where possible.
func sourceVariants(t *testing.T, m *image.RGBA) map[string]image.Image {
	b := m.Rect
	out := map[string]image.Image{"rgba": m}
	nr := image.NewNRGBA(b)
	copy(nr.Pix, m.Pix) // opaque, so identical bytes
	out["nrgba"] = nr
	g := image.NewGray(b)
	for i := range g.Pix {
		g.Pix[i] = m.Pix[4*i+1]
	}
	out["gray"] = g
	for _, r := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410} {
		y := image.NewYCbCr(b, r)
		for py := b.Min.Y; py < b.Max.Y; py++ {
			for px := b.Min.X; px < b.Max.X; px++ {
				c := m.RGBAAt(px, py)
				yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
				y.Y[y.YOffset(px, py)] = yy
				ci := y.COffset(px, py)
				y.Cb[ci], y.Cr[ci] = cb, cr
			}
		}
		out["ycbcr"+r.String()] = y
		out["ycbcr"+r.String()+"-sub"] = y.SubImage(image.Rect(3, 1, b.Dx()-2, b.Dy()-3))
	}
	out["nrgba-sub"] = nr.SubImage(image.Rect(1, 3, b.Dx()-1, b.Dy()))
	out["rgba-sub"] = m.SubImage(image.Rect(5, 1, b.Dx()-3, b.Dy()-1))
	p := image.NewPaletted(b, color.Palette{color.RGBA{10, 20, 30, 255}, color.RGBA{200, 100, 50, 255}, color.RGBA{0, 255, 0, 255}})
	for py := b.Min.Y; py < b.Max.Y; py++ {
		for px := b.Min.X; px < b.Max.X; px++ {
			p.SetColorIndex(px, py, uint8((px/3+py/2)%3))
		}
	}
	out["paletted"] = p
	a := image.NewNYCbCrA(b, image.YCbCrSubsampleRatio420)
	copy(a.YCbCr.Y, out["ycbcrYCbCrSubsampleRatio420"].(*image.YCbCr).Y)
	copy(a.YCbCr.Cb, out["ycbcrYCbCrSubsampleRatio420"].(*image.YCbCr).Cb)
	copy(a.YCbCr.Cr, out["ycbcrYCbCrSubsampleRatio420"].(*image.YCbCr).Cr)
	for i := range a.A {
		a.A[i] = uint8(i * 7)
	}
	out["nycbcra"] = a
	tr := image.NewNRGBA(b)
	copy(tr.Pix, m.Pix)
	for i := 3; i < len(tr.Pix); i += 4 {
		tr.Pix[i] = uint8(i * 13)
	}
	out["nrgba-alpha"] = tr
	out["rgba64"] = image.NewRGBA64(b) // generic fallback path
	return out
}

// TestResizeMatchesReference checks every fast path against resizing the
// same image after a plain image/draw conversion to RGBA. Non-YCbCr paths
// must convert colours exactly as the standard library does. *image.YCbCr is
// resampled per plane and converted afterwards, with chroma interpolated
// (like libjpeg's fancy upsampling) instead of image/draw's nearest
// neighbour, so it is compared on a picture with smooth chroma, where a
// misaligned chroma grid (e.g. an odd sub-image offset handled wrongly)
// would still show up as a large error.
func TestResizeMatchesReference(t *testing.T) {
	sizes := [][2]int{{13, 11}, {37, 29}, {80, 61}, {5, 40}}
	check := func(t *testing.T, m *image.RGBA, ycbcr bool, meanTol float64, maxTol int) {
		for name, src := range sourceVariants(t, m) {
			if _, isY := src.(*image.YCbCr); isY != ycbcr {
				continue
			}
			ref := image.NewRGBA(image.Rect(0, 0, src.Bounds().Dx(), src.Bounds().Dy()))
			xdraw.Draw(ref, ref.Rect, src, src.Bounds().Min, xdraw.Src)
			for _, sz := range sizes {
				got := resize(src, sz[0], sz[1], 1)
				want := resize(ref, sz[0], sz[1], 1)
				md, mx := meanAbsDiff(got, want)
				if name == "nycbcra" && mx <= 1 {
					// color.NYCbCrA premultiplies at 16-bit precision; we do
					// it after the exact 8-bit YCbCr conversion. Off by <= 1.
					continue
				}
				if md > meanTol || mx > maxTol {
					t.Errorf("%s -> %v: differs from reference (mean %.3f max %d)", name, sz, md, mx)
				}
			}
		}
	}
	t.Run("exact", func(t *testing.T) { check(t, textured(37, 29), false, 0, 0) })
	// Nearest-neighbour chroma in the reference costs up to half a chroma
	// sample of gradient (~2 levels/px * 4 px for 4:1:1); TestResizeChromaSiting
	// checks the alignment precisely.
	t.Run("ycbcr", func(t *testing.T) { check(t, gradient(37, 29), true, 3.0, 12) })
}

// TestResizeChromaSiting checks the chroma grid of the planar YCbCr path
// precisely: with Cb linear in the (absolute) chroma column and Cr linear in
// the chroma row, JFIF centred siting puts chroma sample J at luma coordinate
// (J+0.5)*f, so every interior output pixel has a predictable Cb/Cr, hence
// B and R. Sub-images with odd offsets and down/up-scaling are covered.
func TestResizeChromaSiting(t *testing.T) {
	const pw, ph = 48, 40
	ratios := []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410}
	for _, r := range ratios {
		fx, fy := subsampleFactors(r)
		parent := image.NewYCbCr(image.Rect(0, 0, pw, ph), r)
		for i := range parent.Y {
			parent.Y[i] = 128
		}
		cw := len(parent.Cb) / parent.CStride
		// 2 levels per luma pixel along each axis: no clamping anywhere.
		for row := range cw {
			for col := range parent.CStride {
				parent.Cb[row*parent.CStride+col] = uint8(60 + 2*fx*col)
				parent.Cr[row*parent.CStride+col] = uint8(60 + 2*fy*row)
			}
		}
		cbAt := func(e float64) float64 { return 60 + 2*float64(fx)*(e/float64(fx)-0.5) }
		crAt := func(e float64) float64 { return 60 + 2*float64(fy)*(e/float64(fy)-0.5) }
		for _, sub := range []image.Rectangle{parent.Rect, image.Rect(3, 1, 45, 37), image.Rect(5, 7, 30, 30)} {
			src := parent.SubImage(sub).(*image.YCbCr)
			sw, sh := sub.Dx(), sub.Dy()
			for _, sz := range [][2]int{{sw, sh}, {sw / 2, sh / 2}, {sw*3/2 + 1, sh * 2}, {sw / 3, sh/3 + 1}} {
				dw, dh := sz[0], sz[1]
				out := resize(src, dw, dh, 1)
				sx, sy := float64(sw)/float64(dw), float64(sh)/float64(dh)
				marginX := math.Max(sx, 1) + float64(fx)
				marginY := math.Max(sy, 1) + float64(fy)
				for i := range dh {
					ey := float64(sub.Min.Y) + (float64(i)+0.5)*sy
					if ey < float64(sub.Min.Y)+marginY || ey > float64(sub.Max.Y)-marginY {
						continue
					}
					for j := range dw {
						ex := float64(sub.Min.X) + (float64(j)+0.5)*sx
						if ex < float64(sub.Min.X)+marginX || ex > float64(sub.Max.X)-marginX {
							continue
						}
						c := out.RGBAAt(j, i)
						wantB := 128 + 1.772*(cbAt(ex)-128)
						wantR := 128 + 1.402*(crAt(ey)-128)
						if math.Abs(float64(c.B)-wantB) > 2.5 || math.Abs(float64(c.R)-wantR) > 2.5 {
							t.Fatalf("%v sub %v -> %dx%d at (%d,%d): R,B = %d,%d want %.1f,%.1f",
								r, sub, dw, dh, j, i, c.R, c.B, wantR, wantB)
						}
					}
				}
			}
		}
	}
}

// TestResizeYCbCr444Texture: without subsampling the planar path differs from
// convert-then-resize only by rounding order.
func TestResizeYCbCr444Texture(t *testing.T) {
	m := textured(61, 47)
	src := sourceVariants(t, m)["ycbcrYCbCrSubsampleRatio444"]
	ref := toRGBA(src) // exact per-pixel conversion
	for _, sz := range [][2]int{{20, 15}, {61, 47}, {150, 116}} {
		got := resize(src, sz[0], sz[1], 1)
		want := resize(ref, sz[0], sz[1], 1)
		if md, mx := meanAbsDiff(got, want); md > 0.8 || mx > 3 {
			t.Errorf("%v: mean %.3f max %d", sz, md, mx)
		}
	}
}

func TestResizeSolidColour(t *testing.T) {
	for _, c := range []color.RGBA{{0, 0, 0, 255}, {255, 255, 255, 255}, {12, 200, 77, 255}, {1, 2, 254, 255}} {
		m := imagetest.Solid(53, 71, c)
		for name, src := range map[string]image.Image{"rgba": m, "nrgba": func() image.Image {
			n := image.NewNRGBA(m.Rect)
			copy(n.Pix, m.Pix)
			return n
		}()} {
			for _, short := range []int{1, 7, 24, 53, 100, 301} {
				r := ResizeShort(src, short)
				for i := 0; i < len(r.Pix); i += 4 {
					if got := (color.RGBA{r.Pix[i], r.Pix[i+1], r.Pix[i+2], r.Pix[i+3]}); got != c {
						t.Fatalf("%s %v short %d: pixel %d = %v", name, c, short, i/4, got)
					}
				}
			}
		}
	}
	// A solid YCbCr must come out as exactly its RGB conversion.
	y := image.NewYCbCr(image.Rect(0, 0, 40, 30), image.YCbCrSubsampleRatio420)
	for i := range y.Y {
		y.Y[i] = 140
	}
	for i := range y.Cb {
		y.Cb[i], y.Cr[i] = 90, 170
	}
	rr, gg, bb := color.YCbCrToRGB(140, 90, 170)
	r := ResizeShort(y, 17)
	for i := 0; i < len(r.Pix); i += 4 {
		if r.Pix[i] != rr || r.Pix[i+1] != gg || r.Pix[i+2] != bb || r.Pix[i+3] != 255 {
			t.Fatalf("ycbcr pixel %d = %v, want %d %d %d", i/4, r.Pix[i:i+4], rr, gg, bb)
		}
	}
}

// TestResizeCloseToXDraw compares with x/image/draw on a smooth gradient:
// all reasonable filters agree there, so a large difference means a geometry
// bug (offset, flipped axis, wrong centre convention).
func TestResizeCloseToXDraw(t *testing.T) {
	for _, sz := range [][2]int{{348, 464}, {640, 480}, {100, 60}} {
		src := gradient(sz[0], sz[1])
		for _, short := range []int{224, 97, 300} {
			got := ResizeShort(src, short)
			for name, k := range map[string]xdraw.Interpolator{
				"ApproxBiLinear": xdraw.ApproxBiLinear, "CatmullRom": xdraw.CatmullRom, "BiLinear": xdraw.BiLinear,
			} {
				want := image.NewRGBA(got.Rect)
				k.Scale(want, want.Rect, src, src.Rect, xdraw.Src, nil)
				md, mx := meanAbsDiff(got, want)
				if md > 1.0 || mx > 8 {
					t.Errorf("%v short %d vs %s: mean abs diff %.3f, max %d", sz, short, name, md, mx)
				}
			}
		}
	}
	// On texture, our antialiased triangle filter should track x/image's
	// antialiased BiLinear (same kernel, scaled support) closely.
	src := textured(348, 464)
	got := ResizeShort(src, 150)
	want := image.NewRGBA(got.Rect)
	xdraw.BiLinear.Scale(want, want.Rect, src, src.Rect, xdraw.Src, nil)
	if md, mx := meanAbsDiff(got, want); md > 1.5 || mx > 40 {
		t.Errorf("textured vs BiLinear: mean abs diff %.3f, max %d", md, mx)
	}
}

func TestResizeParallelIdentical(t *testing.T) {
	src := textured(700, 500)
	y := image.NewYCbCr(src.Rect, image.YCbCrSubsampleRatio420)
	for i := range y.Y {
		y.Y[i] = uint8(i * 31)
	}
	for _, s := range []image.Image{src, y} {
		for _, sz := range [][2]int{{224, 160}, {1400, 1000}, {701, 37}} {
			a := resize(s, sz[0], sz[1], 1)
			b := resize(s, sz[0], sz[1], 4)
			if !bytes.Equal(a.Pix, b.Pix) {
				t.Errorf("%T %v: parallel result differs", s, sz)
			}
		}
	}
}

func TestResizeConcurrentUse(t *testing.T) {
	src := textured(300, 200)
	want := ResizeShort(src, 64)
	big := textured(1100, 1000) // above parallelThreshold
	wantBig := ResizeShort(big, 100)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s, w := src, want
			short := 64
			if i%2 == 1 {
				s, w, short = big, wantBig, 100
			}
			if got := ResizeShort(s, short); !bytes.Equal(got.Pix, w.Pix) {
				t.Errorf("goroutine %d: result differs", i)
			}
		})
	}
	wg.Wait()
}

func TestResizeTransparentPremultiplied(t *testing.T) {
	m := image.NewNRGBA(image.Rect(0, 0, 4, 4))
	for i := 0; i < len(m.Pix); i += 4 {
		m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = 255, 255, 255, 0 // invisible white
	}
	r := ResizeShort(m, 2)
	for _, v := range r.Pix {
		if v != 0 {
			t.Fatalf("fully transparent input gave %v", r.Pix)
		}
	}
}

func TestKernelUnityGain(t *testing.T) {
	for _, io := range [][2]int{{464, 299}, {348, 224}, {100, 448}, {1, 5}, {5, 1}, {7, 7}, {4000, 224}} {
		k := makeKernel(io[0], io[1])
		for i := range io[1] {
			sum := int32(0)
			for j := range k.taps {
				w := k.w[i*k.taps+j]
				if w < 0 {
					t.Fatalf("%v: negative weight", io)
				}
				sum += w
			}
			if sum != 1<<wBits {
				t.Fatalf("%v out %d: weights sum to %d", io, i, sum)
			}
			if k.start[i] < 0 || int(k.start[i])+k.taps > io[0] {
				t.Fatalf("%v out %d: taps [%d,%d) out of range", io, i, k.start[i], int(k.start[i])+k.taps)
			}
		}
	}
	// Identity must be a pure copy.
	k := makeKernel(10, 10)
	for i := range 10 {
		if k.taps != 1 || k.start[i] != int32(i) {
			t.Fatalf("identity kernel out %d: start %d taps %d", i, k.start[i], k.taps)
		}
	}
}

// benchJPEG is a 348x464 photo-like image decoded from JPEG, i.e. the
// *image.YCbCr 4:2:0 the hot path actually sees.
func benchJPEG(b *testing.B, w, h int) ([]byte, image.Image) {
	data := imagetest.JPEG(b, textured(w, h), 90)
	img, err := Decode(data, DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	return data, img
}

func BenchmarkResizeShort(b *testing.B) {
	_, src := benchJPEG(b, 348, 464)
	dw, dh := ShortSideSize(348, 464, 224)
	b.Run("imageio", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ResizeShort(src, 224)
		}
	})
	for _, k := range []struct {
		name string
		k    xdraw.Interpolator
	}{{"xdraw.ApproxBiLinear", xdraw.ApproxBiLinear}, {"xdraw.CatmullRom", xdraw.CatmullRom}} {
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
				k.k.Scale(dst, dst.Rect, src, src.Bounds(), xdraw.Src, nil)
			}
		})
	}
}

func BenchmarkResizeShortLarge(b *testing.B) {
	_, src := benchJPEG(b, 3000, 2000)
	for _, workers := range []int{1, 0} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				if workers == 0 {
					ResizeShort(src, 224)
				} else {
					dw, dh := ShortSideSize(3000, 2000, 224)
					resize(src, dw, dh, workers)
				}
			}
		})
	}
}

func BenchmarkDecodeJPEG348(b *testing.B) {
	data, _ := benchJPEG(b, 348, 348)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}
