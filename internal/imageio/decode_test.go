package imageio

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"prodsearch/internal/imageio/imagetest"
)

func TestDecodeFormats(t *testing.T) {
	src := textured(40, 30)
	pal := image.NewPaletted(src.Rect, color.Palette{
		color.RGBA{0, 0, 0, 255}, color.RGBA{255, 0, 0, 255}, color.RGBA{0, 128, 255, 255}, color.RGBA{255, 255, 255, 255},
	})
	for y := range 30 {
		for x := range 40 {
			pal.SetColorIndex(x, y, uint8((x/5+y/3)%4))
		}
	}
	cases := []struct {
		name string
		data []byte
		want image.Image
		tol  int
	}{
		{"jpeg", imagetest.JPEG(t, src, 95), src, -1}, // lossy: checked by mean below
		{"png", imagetest.PNG(t, src), src, 0},
		{"gif", encGIF(t, pal), pal, 0},
		{"webp", encWebPLossless(toNRGBA(src)), src, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := Decode(c.data, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if img.Bounds() != c.want.Bounds() {
				t.Fatalf("bounds %v, want %v", img.Bounds(), c.want.Bounds())
			}
			got, want := toRGBA(img), toRGBA(c.want)
			mean, maxd := meanAbsDiff(got, want)
			if c.tol < 0 {
				if mean > 8 { // 4:2:0 chroma on an 8px checker costs a few levels
					t.Fatalf("mean pixel diff %.2f > 8", mean)
				}
			} else if maxd > c.tol {
				t.Fatalf("max pixel diff %d > %d", maxd, c.tol)
			}
		})
	}
}

func TestDecodeWebPLosslessAlpha(t *testing.T) {
	// 2x2 with every channel distinct, including partial transparency.
	m := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	m.SetNRGBA(0, 0, color.NRGBA{255, 0, 0, 255})
	m.SetNRGBA(1, 0, color.NRGBA{0, 255, 0, 128})
	m.SetNRGBA(0, 1, color.NRGBA{0, 0, 255, 0})
	m.SetNRGBA(1, 1, color.NRGBA{17, 34, 51, 200})
	data := encWebPLossless(m)
	if len(data) > 400 {
		t.Errorf("tiny webp is %d bytes", len(data))
	}
	img, err := Decode(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := img.(*image.NRGBA)
	if !ok {
		t.Fatalf("type %T", img)
	}
	if !bytes.Equal(got.Pix, m.Pix) {
		t.Fatalf("pix %v, want %v", got.Pix, m.Pix)
	}
}

func TestDecodeErrors(t *testing.T) {
	jpg := imagetest.JPEG(t, textured(64, 48), 90)
	pngb := imagetest.PNG(t, textured(64, 48))
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	random[0] = 'x'
	cases := []struct {
		name    string
		data    []byte
		lim     Limits
		want    error
		msgPart string
	}{
		{"empty", nil, DefaultLimits(), ErrEmpty, "empty"},
		{"random", random, DefaultLimits(), ErrUnsupported, "unsupported"},
		{"bmp", []byte("BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00"), DefaultLimits(), ErrUnsupported, "bmp"},
		{"tiff-no-ifd", []byte("II*\x00\x08\x00\x00\x00\x00\x00"), DefaultLimits(), ErrCorrupt, "tiff"},
		{"heic-no-meta", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"), DefaultLimits(), heifOrUnsupported(ErrCorrupt), "heif"},
		{"bytes-limit", jpg, Limits{MaxBytes: int64(len(jpg) - 1)}, ErrTooLarge, "bytes"},
		{"pixel-limit", jpg, Limits{MaxPixels: 64*48 - 1}, ErrTooLarge, "64x48"},
		{"png-100000x100000", imagetest.PNGHeader(100000, 100000), DefaultLimits(), ErrTooLarge, "100000x100000"},
		{"jpeg-65000x65000", jpegWithSize(t, jpg, 65000, 65000), DefaultLimits(), ErrTooLarge, "65000x65000"},
		{"gif-65535x65535", append([]byte("GIF89a\xff\xff\xff\xff\x00\x00\x00"), 0x3b), DefaultLimits(), ErrTooLarge, "65535x65535"},
		{"png-zero-size", imagetest.PNGHeader(0, 10), DefaultLimits(), ErrCorrupt, ""},
		{"png-bad-crc", append(append([]byte{}, pngb[:20]...), append([]byte{0xde, 0xad}, pngb[22:]...)...), DefaultLimits(), ErrCorrupt, "png"},
		{"jpeg-garbage-after-soi", append([]byte("\xff\xd8\xff"), random[:100]...), DefaultLimits(), ErrCorrupt, "jpeg"},
		{"webp-bad-chunk", riffWebP("VP8L", []byte{0x00, 1, 2, 3, 4, 5}), DefaultLimits(), ErrCorrupt, "webp"},
	}
	sentinels := []error{ErrEmpty, ErrUnsupported, ErrTooLarge, ErrCorrupt}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := Decode(c.data, c.lim)
			if err == nil {
				t.Fatalf("no error, got %T %v", img, img.Bounds())
			}
			if img != nil {
				t.Errorf("non-nil image with error")
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err %q is not %v", err, c.want)
			}
			for _, s := range sentinels {
				if s != c.want && errors.Is(err, s) {
					t.Errorf("err %q also matches %v", err, s)
				}
			}
			if !strings.Contains(err.Error(), c.msgPart) {
				t.Errorf("err %q does not mention %q", err, c.msgPart)
			}
		})
	}
}

func TestDecodeTruncated(t *testing.T) {
	m := textured(96, 64)
	inputs := map[string][]byte{
		"jpeg": imagetest.JPEG(t, m, 80),
		"png":  imagetest.PNG(t, m),
		"gif":  encGIF(t, image.NewPaletted(m.Rect, color.Palette{color.Black, color.White})),
		"webp": encWebPLossless(toNRGBA(m)),
	}
	for name, data := range inputs {
		n := len(data)
		// Cut in the header, in the middle of the entropy-coded data, and
		// just before the end marker.
		for _, cut := range []int{1, 2, 5, 11, 20, n / 3, n / 2, n - 10, n - 2, n - 1} {
			if cut >= n || (name == "gif" && cut == n-1) {
				continue // a GIF missing only its trailer still holds the whole first frame
			}
			img, err := Decode(data[:cut], DefaultLimits())
			if err == nil {
				t.Errorf("%s cut at %d/%d: decoded %v without error", name, cut, n, img.Bounds())
				continue
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s cut at %d/%d: %v is not ErrCorrupt", name, cut, n, err)
			}
			if name != "webp" && (cut < 12 || cut > n/4) && !errors.Is(err, ErrTruncated) {
				t.Errorf("%s cut at %d/%d: %v is not ErrTruncated", name, cut, n, err)
			}
		}
	}
}

// TestPixelLimitBeforeAllocation checks the bomb is refused from the header:
// decoding 100000x100000 RGB would allocate 30 GB.
func TestPixelLimitBeforeAllocation(t *testing.T) {
	data := imagetest.PNGHeader(100000, 100000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Decode(data, DefaultLimits())
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("allocated %d bytes before refusing", d)
	}
}

func TestDecodeNoLimits(t *testing.T) {
	jpg := imagetest.JPEG(t, textured(20, 10), 90)
	if _, err := Decode(jpg, Limits{}); err != nil {
		t.Fatal(err)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.png")
	bad := filepath.Join(dir, "bad.jpg")
	if err := os.WriteFile(good, imagetest.PNG(t, textured(30, 20)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, imagetest.JPEG(t, textured(30, 20), 90)[:200], 0o600); err != nil {
		t.Fatal(err)
	}
	img, err := ReadFile(good, DefaultLimits())
	if err != nil || img.Bounds().Dx() != 30 {
		t.Fatalf("good: %v", err)
	}
	_, err = ReadFile(good, Limits{MaxBytes: 10})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), good) {
		t.Errorf("size limit: %v", err)
	}
	_, err = ReadFile(bad, DefaultLimits())
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), bad) {
		t.Errorf("truncated: %v", err)
	}
	missing := filepath.Join(dir, "missing.webp")
	_, err = ReadFile(missing, DefaultLimits())
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing: %v", err)
	}
	_, err = ReadFile(dir, DefaultLimits())
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("directory: %v", err)
	}
}

func TestExifOrientation(t *testing.T) {
	const w, h = 64, 48
	upright := imagetest.Quadrants(w, h)
	corners := [4]image.Point{{3, 3}, {w - 4, 3}, {3, h - 4}, {w - 4, h - 4}}
	for _, gray := range []bool{false, true} {
		for _, be := range []bool{false, true} {
			for o := 1; o <= 8; o++ {
				stored := image.Image(imagetest.StoredFor(upright, o))
				if gray {
					g := image.NewGray(stored.Bounds())
					draw.Draw(g, g.Rect, stored, image.Point{}, draw.Src)
					stored = g
				}
				data := imagetest.InsertSegment(imagetest.JPEG(t, stored, 95), imagetest.EXIFSegment(o, be))
				img, err := Decode(data, DefaultLimits())
				if err != nil {
					t.Fatalf("o=%d: %v", o, err)
				}
				if img.Bounds().Dx() != w || img.Bounds().Dy() != h {
					t.Fatalf("o=%d gray=%v: bounds %v, want %dx%d", o, gray, img.Bounds(), w, h)
				}
				if _, isGray := img.(*image.Gray); gray && o > 1 && !isGray {
					t.Errorf("o=%d: gray JPEG became %T", o, img)
				}
				for q, p := range corners {
					want := color.Color(imagetest.QuadColors[q])
					if gray {
						want = color.GrayModel.Convert(want)
					}
					wr, wg, wb, _ := want.RGBA()
					gr, gg, gb, _ := img.At(p.X, p.Y).RGBA()
					if absDiff(wr, gr) > 20<<8 || absDiff(wg, gg) > 20<<8 || absDiff(wb, gb) > 20<<8 {
						t.Errorf("o=%d gray=%v be=%v corner %d: got %v want %v", o, gray, be, q, img.At(p.X, p.Y), want)
					}
				}
			}
		}
	}
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

func TestJPEGOrientationParsing(t *testing.T) {
	jpg := imagetest.JPEG(t, textured(8, 8), 90)
	xmpPayload := []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>")
	xmp := append([]byte{0xff, 0xe1, 0x00, byte(2 + len(xmpPayload))}, xmpPayload...)
	cases := []struct {
		name string
		data []byte
		want int
	}{
		{"none", jpg, 1},
		{"le-6", imagetest.InsertSegment(jpg, imagetest.EXIFSegment(6, false)), 6},
		{"be-8", imagetest.InsertSegment(jpg, imagetest.EXIFSegment(8, true)), 8},
		{"after-xmp", imagetest.InsertSegment(imagetest.InsertSegment(jpg, imagetest.EXIFSegment(3, false)), xmp), 3},
		{"out-of-range", imagetest.InsertSegment(jpg, imagetest.EXIFSegment(9, false)), 1},
		{"zero", imagetest.InsertSegment(jpg, imagetest.EXIFSegment(0, false)), 1},
	}
	// Corrupt the IFD offset and the segment length: must not panic, must
	// fall back to 1.
	badOff := imagetest.EXIFSegment(6, false)
	badOff[4+6+4] = 0xff
	cases = append(cases, struct {
		name string
		data []byte
		want int
	}{"bad-ifd-offset", imagetest.InsertSegment(jpg, badOff), 1})
	badLen := imagetest.EXIFSegment(6, false)
	badLen[2], badLen[3] = 0xff, 0xff
	cases = append(cases, struct {
		name string
		data []byte
		want int
	}{"bad-seg-len", imagetest.InsertSegment(jpg, badLen), 1})
	for _, c := range cases {
		if got := jpegOrientation(c.data); got != c.want {
			t.Errorf("%s: orientation %d, want %d", c.name, got, c.want)
		}
	}
	// Every prefix of an EXIF blob must be handled without panicking.
	full := imagetest.InsertSegment(jpg, imagetest.EXIFSegment(6, false))
	for i := range 80 {
		_ = jpegOrientation(full[:i])
	}
}

func TestApplyOrientationOnePixelWide(t *testing.T) {
	m := image.NewRGBA(image.Rect(0, 0, 1, 3))
	for y := range 3 {
		m.SetRGBA(0, y, color.RGBA{uint8(y + 1), 0, 0, 255})
	}
	for o := 1; o <= 8; o++ {
		got := applyOrientation(m, o).(*image.RGBA)
		want := imagetest.Displayed(m, o)
		if !bytes.Equal(got.Pix, want.Pix) || got.Rect != want.Rect {
			t.Errorf("o=%d: %v %v, want %v %v", o, got.Rect, got.Pix, want.Rect, want.Pix)
		}
	}
}

func FuzzDecode(f *testing.F) {
	m := textured(24, 16)
	jpg := imagetest.JPEG(f, m, 80)
	f.Add(jpg)
	f.Add(imagetest.InsertSegment(jpg, imagetest.EXIFSegment(6, false)))
	f.Add(jpg[:len(jpg)/2])
	f.Add(imagetest.PNG(f, m))
	f.Add(encGIF(f, image.NewPaletted(m.Rect, color.Palette{color.Black, color.White})))
	f.Add(encWebPLossless(toNRGBA(textured(3, 2))))
	f.Add(imagetest.PNGHeader(100000, 100000))
	f.Add([]byte("BM"))
	f.Add([]byte{})
	// More seeds (near-valid headers, EXIF variants, other codecs' magic)
	// are in testdata/fuzz/FuzzDecode.
	lim := Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20}
	kinds := []error{ErrEmpty, ErrUnsupported, ErrTooLarge, ErrCorrupt}
	// Both paths: Decode (the pure-Go decoders) and DecodeAtLeast, which in
	// cgo builds hands JPEG, WebP, HEIF and AVIF to libjpeg-turbo, libwebp
	// and libheif.
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecoded(t, data, lim, kinds, 0)
		checkDecoded(t, data, lim, kinds, 16)
	})
}

// checkDecoded is FuzzDecode's check of one decode path.
func checkDecoded(t *testing.T, data []byte, lim Limits, kinds []error, minShort int) {
	{
		img, err := DecodeAtLeast(data, lim, minShort)
		if err != nil {
			if img != nil {
				t.Fatal("image with error")
			}
			if !strings.HasPrefix(err.Error(), "imageio: ") {
				t.Fatalf("error %q does not say where it comes from", err)
			}
			// Exactly one kind, so a handler's status code is well defined
			// (ErrTruncated is a kind of ErrCorrupt).
			var got []error
			for _, k := range kinds {
				if errors.Is(err, k) {
					got = append(got, k)
				}
			}
			if len(got) != 1 {
				t.Fatalf("error %q matches %d kinds %v", err, len(got), got)
			}
			if int64(len(data)) > lim.MaxBytes && got[0] != ErrTooLarge {
				t.Fatalf("%d bytes over the limit gave %q", len(data), err)
			}
			return
		}
		if len(data) == 0 || int64(len(data)) > lim.MaxBytes {
			t.Fatalf("%d bytes accepted", len(data))
		}
		b := img.Bounds()
		if b.Empty() || int64(b.Dx())*int64(b.Dy()) > lim.MaxPixels {
			t.Fatalf("bad bounds %v", b)
		}
		_ = img.At(b.Min.X, b.Min.Y)
		_ = img.At(b.Max.X-1, b.Max.Y-1)
		// Resize as describe does (its long side is capped; here skip
		// panoramas whose 8-pixel short side would make a huge output).
		w, h := ShortSideSize(b.Dx(), b.Dy(), 8)
		if w*h > 1<<16 {
			return
		}
		r := ResizeShort(img, 8)
		if r.Rect.Dx() != w || r.Rect.Dy() != h || min(w, h) != 8 {
			t.Fatalf("resize of %v gave %v, want %dx%d", b, r.Rect, w, h)
		}
	}
}

// TestOrientYCbCrPlanes checks the plane-wise YCbCr transform against
// converting to RGBA first and remapping pixels with the spec mapping, for
// every ratio, even and odd sizes (odd ones fall back to RGBA) and sub-images.
func TestOrientYCbCrPlanes(t *testing.T) {
	ratios := []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410}
	for _, r := range ratios {
		for _, sz := range [][2]int{{16, 8}, {8, 16}, {15, 9}, {1, 5}, {4, 2}} {
			m := image.NewYCbCr(image.Rect(0, 0, sz[0], sz[1]), r)
			for i := range m.Y {
				m.Y[i] = uint8(i*37 + 11)
			}
			for i := range m.Cb {
				m.Cb[i], m.Cr[i] = uint8(i*53+7), uint8(255-i*29)
			}
			srcs := []image.Image{m}
			if sz[0] > 3 && sz[1] > 3 {
				srcs = append(srcs, m.SubImage(image.Rect(1, 1, sz[0]-1, sz[1]-1)))
			}
			for _, src := range srcs {
				for o := 1; o <= 8; o++ {
					got := toRGBA(applyOrientation(src, o))
					want := imagetest.Displayed(toRGBA(src), o)
					if got.Rect != want.Rect || !bytes.Equal(got.Pix, want.Pix) {
						t.Fatalf("%v %v o=%d: planar transform differs", r, src.Bounds(), o)
					}
				}
			}
			if out, ok := applyOrientation(m, 6).(*image.YCbCr); ok {
				wantRatio := r
				switch r {
				case image.YCbCrSubsampleRatio422:
					wantRatio = image.YCbCrSubsampleRatio440
				case image.YCbCrSubsampleRatio440:
					wantRatio = image.YCbCrSubsampleRatio422
				}
				if out.SubsampleRatio != wantRatio {
					t.Errorf("%v rotated to %v", r, out.SubsampleRatio)
				}
			} else if r != image.YCbCrSubsampleRatio411 && r != image.YCbCrSubsampleRatio410 && sz[0]%2 == 0 && sz[1]%2 == 0 {
				t.Errorf("%v %v: even-sized image left the YCbCr fast path", r, sz)
			}
		}
	}
}
