package imageio

import (
	"errors"
	"image"
	"testing"

	"prodsearch/internal/imageio/imagetest"
)

func TestJPEGScale(t *testing.T) {
	if !nativeJPEG {
		t.Skip("pure-Go build: JPEGs decode at full size")
	}
	for _, c := range []struct{ w, h, min, want int }{
		{4032, 3024, 374, 1}, // 378 >= 374
		{4032, 3024, 379, 2}, // 1/8 gives 378
		{3024, 4032, 374, 1}, // portrait: the short side is the width
		{800, 600, 600, 8},   // no reduction possible
		{800, 600, 2000, 8},  // smaller than asked: full size
		{801, 601, 76, 1},    // ceil(601/8) = 76
		{801, 601, 77, 2},
		{100, 100, 1, 1},
		{4032, 3024, 1125, 4}, // 3/8 would do, but only powers of two are used
		{4032, 3024, 1513, 8},
	} {
		got := jpegScale(c.w, c.h, c.min)
		if got != c.want {
			t.Errorf("jpegScale(%d, %d, %d) = %d, want %d", c.w, c.h, c.min, got, c.want)
		}
		if w, h := scaledSize(c.w, c.h, got); min(w, h) < min(c.min, min(c.w, c.h)) {
			t.Errorf("jpegScale(%d, %d, %d) = %d/8 gives %dx%d, below the asked short side", c.w, c.h, c.min, got, w, h)
		}
	}
}

// TestDecodeAtLeastMatchesFullDecode checks the scaled decode against the
// full decode resized to the same size: same orientation, same colours.
func TestDecodeAtLeastMatchesFullDecode(t *testing.T) {
	src := textured(1600, 1200)
	jpg := imagetest.JPEG(t, src, 90)
	for _, o := range []int{1, 3, 6, 8} {
		data := jpg
		if o > 1 {
			data = imagetest.EXIF(jpg, o)
		}
		full, err := Decode(data, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		for _, minShort := range []int{150, 300, 2000} {
			img, err := DecodeAtLeast(data, DefaultLimits(), minShort)
			if err != nil {
				t.Fatalf("orientation %d, min %d: %v", o, minShort, err)
			}
			b, fb := img.Bounds(), full.Bounds()
			if (b.Dx() > b.Dy()) != (fb.Dx() > fb.Dy()) {
				t.Fatalf("orientation %d: scaled %v, full %v: not the same way up", o, b, fb)
			}
			if s := min(b.Dx(), b.Dy()); s < min(minShort, 1200) {
				t.Fatalf("orientation %d, min %d: short side %d", o, minShort, s)
			}
			if nativeJPEG && minShort <= 300 && min(b.Dx(), b.Dy()) > 2*minShort {
				t.Errorf("orientation %d, min %d: decoded %v, more than the scale needs", o, minShort, b)
			}
			short := min(minShort, 1200) / 2
			a, f := ResizeShort(img, short), ResizeShort(full, short)
			// The checkerboard puts strong edges in the chroma planes, which
			// ResizeShort filters at chroma resolution and libjpeg upsamples
			// first: up to 5/255 apart on this image, 0.2/255 on a gradient.
			mean, _ := meanAbsDiff(a, f)
			if mean > 6 {
				t.Errorf("orientation %d, min %d: mean difference %.2f/255 from the full decode", o, minShort, mean)
			}
		}
	}
}

func TestDecodeAtLeastGrayAndCMYK(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 640, 480))
	for i := range g.Pix {
		g.Pix[i] = uint8(i % 251)
	}
	img, err := DecodeAtLeast(imagetest.JPEG(t, g, 90), DefaultLimits(), 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := img.(*image.Gray); !ok {
		t.Errorf("greyscale JPEG decoded to %T, want *image.Gray", img)
	}
	// CMYK is left to the pure-Go decoder, which knows Adobe's inversion.
	cmyk := imagetest.CMYKJPEG(64, 64, imagetest.QuadrantInk(64, 64), true)
	want, got := decodeBoth(t, cmyk, 8)
	if mean, _ := meanAbsDiff(toRGBA(got), toRGBA(want)); mean != 0 || got.Bounds() != want.Bounds() {
		t.Errorf("CMYK: scaled path differs from Decode (mean %.2f, %v vs %v)", mean, got.Bounds(), want.Bounds())
	}
}

// decodeBoth decodes data in full and with DecodeAtLeast(minShort).
func decodeBoth(t *testing.T, data []byte, minShort int) (full, scaled image.Image) {
	t.Helper()
	full, err := Decode(data, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if scaled, err = DecodeAtLeast(data, DefaultLimits(), minShort); err != nil {
		t.Fatal(err)
	}
	return full, scaled
}

func TestDecodeAtLeastErrors(t *testing.T) {
	jpg := imagetest.JPEG(t, textured(320, 240), 85)
	n := len(jpg)
	for _, cut := range []int{n / 3, n / 2, n - 10, n - 2} {
		_, err := DecodeAtLeast(jpg[:cut], DefaultLimits(), 40)
		if !errors.Is(err, ErrTruncated) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut at %d/%d: %v, want ErrTruncated", cut, n, err)
		}
	}
	bad := append([]byte(nil), jpg...)
	for i := n / 2; i < n/2+64; i++ {
		bad[i] = 0xff
	}
	if _, err := DecodeAtLeast(bad, DefaultLimits(), 40); err != nil && !errors.Is(err, ErrCorrupt) {
		t.Errorf("scribbled data: %v, want nil or ErrCorrupt", err)
	}
	if _, err := DecodeAtLeast(jpegWithSize(t, jpg, 20000, 20000), DefaultLimits(), 40); !errors.Is(err, ErrTooLarge) {
		t.Errorf("20000x20000 header: %v, want ErrTooLarge", err)
	}
}

// TestDecodeAtLeastWebP checks libwebp's scaled decode against
// x/image/webp's full decode resized to the same size.
func TestDecodeAtLeastWebP(t *testing.T) {
	src := textured(640, 480)
	data := encWebPLossless(toNRGBA(src))
	full, img := decodeBoth(t, data, 120)
	b := img.Bounds()
	if min(b.Dx(), b.Dy()) < 120 || (nativeWebP && b.Dy() != 120) {
		t.Fatalf("decoded %v for a 120-pixel short side", b)
	}
	a, f := ResizeShort(img, 100), ResizeShort(full, 100)
	if mean, _ := meanAbsDiff(a, f); mean > 4 {
		t.Errorf("mean difference %.2f/255 from the full decode resized", mean)
	}
	if _, err := DecodeAtLeast(data[:len(data)/2], DefaultLimits(), 120); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated: %v, want ErrCorrupt", err)
	}
}
