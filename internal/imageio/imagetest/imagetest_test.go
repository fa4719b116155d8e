package imagetest

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

// TestCMYKJPEG checks the hand-built CMYK JPEG against the standard
// decoder: exact ink per block with the Adobe marker, refused without it.
func TestCMYKJPEG(t *testing.T) {
	ink := func(bx, by int) color.CMYK {
		return color.CMYK{uint8(bx * 60), uint8(by * 70), uint8(255 - bx*40), uint8((bx + by) * 17)}
	}
	data := CMYKJPEG(40, 24, ink, true)
	m, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := m.(*image.CMYK)
	if !ok || c.Rect != image.Rect(0, 0, 40, 24) {
		t.Fatalf("decoded %T %v", m, m.Bounds())
	}
	for y := range 24 {
		for x := range 40 {
			if got, want := c.CMYKAt(x, y), ink(x/8, y/8); got != want {
				t.Fatalf("(%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
	_, err = jpeg.Decode(bytes.NewReader(CMYKJPEG(16, 16, ink, false)))
	var ue jpeg.UnsupportedError
	if !errors.As(err, &ue) {
		t.Fatalf("without Adobe marker: %v", err)
	}
}

func TestManyFrameGIF(t *testing.T) {
	data := ManyFrameGIF(t, 16, 8, 50, color.RGBA{200, 10, 10, 255})
	g, err := gif.DecodeAll(bytes.NewReader(data))
	if err != nil || len(g.Image) != 50 {
		t.Fatalf("%v, %d frames", err, len(g.Image))
	}
	if g.Image[0].ColorIndexAt(3, 3) != 0 || g.Image[0].Palette[0] != (color.RGBA{200, 10, 10, 255}) {
		t.Error("first frame is not solid")
	}
}

func TestPNG16AndHeader(t *testing.T) {
	for _, m := range []image.Image{Quadrants16(6, 4), Gray16(6, 4)} {
		cfg, err := png.DecodeConfig(bytes.NewReader(PNG(t, m)))
		if err != nil || cfg.Width != 6 {
			t.Fatalf("%T: %v %+v", m, err, cfg)
		}
		d, _ := png.Decode(bytes.NewReader(PNG(t, m)))
		switch d.(type) {
		case *image.NRGBA64, *image.RGBA64, *image.Gray16:
		default:
			t.Errorf("%T decoded as %T, not 16-bit", m, d)
		}
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(PNGHeader(100000, 100000)))
	if err != nil || cfg.Width != 100000 || cfg.Height != 100000 {
		t.Fatalf("%v %+v", err, cfg)
	}
}

func TestStoredForRoundTrip(t *testing.T) {
	up := Quadrants(6, 4)
	for o := 1; o <= 8; o++ {
		s := StoredFor(up, o)
		if o >= 5 && s.Rect.Dx() != 4 || o < 5 && s.Rect.Dx() != 6 {
			t.Errorf("o=%d: %v", o, s.Rect)
		}
	}
	if got := StoredFor(up, 3).RGBAAt(0, 0); got != QuadColors[3] {
		t.Errorf("o=3 top-left %v, want bottom-right colour", got)
	}
}

func TestHostilePNG(t *testing.T) {
	data := HostilePNG(300, 200)
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil || cfg.Width != 300 || cfg.Height != 200 || cfg.ColorModel != color.NRGBA64Model {
		t.Fatalf("config %+v, %v: want 300x200 NRGBA64", cfg, err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if c := img.(*image.NRGBA64).NRGBA64At(299, 199); c.R != 0x8000 || c.A != 0x8000 {
		t.Errorf("last pixel %v, want every sample 0x8000", c)
	}
}
