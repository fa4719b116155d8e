package describe_test

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"prodsearch/internal/describe"
	"prodsearch/internal/describe/describetest"
	"prodsearch/internal/imageio"
	"prodsearch/internal/imageio/imagetest"
	"prodsearch/internal/vec/vectest"
)

// pipeline is the path an uploaded or indexed image takes: decode with
// limits (EXIF orientation applied there), then the describer's crop,
// resize, tensor fill, backbone and pooling.
func pipeline(t *testing.T, d *describetest.Describer, data []byte) ([]float32, error) {
	t.Helper()
	img, err := imageio.Decode(data, imageio.DefaultLimits())
	if err != nil {
		return nil, err
	}
	return d.Describe(context.Background(), img)
}

func newQuad(t *testing.T) *describetest.Describer {
	t.Helper()
	d, err := describetest.New(describe.DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// mustDescribe describes img with d (a describe.Describer or a
// describetest one), failing t on an error.
func mustDescribe(t *testing.T, d interface {
	Describe(context.Context, image.Image) ([]float32, error)
}, img image.Image) []float32 {
	t.Helper()
	v, err := d.Describe(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestHostileRefusedLibraryPath feeds each refused input of the issue-7
// table through the whole path and checks the sentinel and the message.
func TestHostileRefusedLibraryPath(t *testing.T) {
	d := newQuad(t)
	jpg := imagetest.JPEG(t, imagetest.Quadrants(64, 48), 90)
	cases := []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"truncated-jpeg", imagetest.Truncated(jpg, 0.5), imageio.ErrTruncated, "truncated image (jpeg)"},
		{"png-100000x100000", imagetest.PNGHeader(100000, 100000), imageio.ErrTooLarge, "100000x100000 pixels exceeds limit of 50000000"},
		{"zero-bytes", nil, imageio.ErrEmpty, "empty input"},
		{"text-as-jpg", imagetest.Text(), imageio.ErrUnsupported, "unrecognised signature 68 65 6c 6c"},
		{"cmyk-jpeg-without-adobe-marker", imagetest.CMYKJPEG(16, 16, func(int, int) color.CMYK { return color.CMYK{0, 255, 255, 0} }, false),
			imageio.ErrUnsupported, "4-component JPEG doesn't have Adobe APP14 metadata"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, before := d.Runner.Largest()
			vec, err := pipeline(t, d, c.data)
			if err == nil {
				t.Fatalf("accepted: %d-d descriptor", len(vec))
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q, want %v mentioning %q", err, c.want, c.msg)
			}
			if _, _, after := d.Runner.Largest(); after != before {
				t.Errorf("the backbone ran for a refused image")
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestHostileFileNamedJPG checks that a file's name decides nothing: a
// text file called .jpg is refused by content, and the error names it.
func TestHostileFileNamedJPG(t *testing.T) {
	p := filepath.Join(t.TempDir(), "photo.jpg")
	if err := os.WriteFile(p, imagetest.Text(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := imageio.ReadFile(p, imageio.DefaultLimits())
	if !errors.Is(err, imageio.ErrUnsupported) || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v", err)
	}
	t.Logf("refused: %v", err)
}

// TestHostileManyFrameGIF checks that only the first frame of a GIF with
// thousands of frames is decoded: time and memory stay those of one frame.
func TestHostileManyFrameGIF(t *testing.T) {
	const frames, w, h = 3000, 128, 128
	first := color.RGBA{200, 30, 30, 255}
	data := imagetest.ManyFrameGIF(t, w, h, frames, first)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	img, err := imageio.Decode(data, imageio.DefaultLimits())
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d frames, %d bytes: decoded %v in %v allocating %d bytes (all frames would be %d pixel bytes)",
		frames, len(data), img.Bounds(), elapsed, alloc, frames*w*h)
	// One paletted frame is 16 KiB; all of them would be 47 MiB.
	if alloc > 2<<20 {
		t.Errorf("decoding allocated %d bytes: more than the first frame", alloc)
	}
	if elapsed > 2*time.Second {
		t.Errorf("decoding took %v", elapsed)
	}
	d := newQuad(t)
	got := mustDescribe(t, d, img)
	want := mustDescribe(t, d, imagetest.Solid(w, h, first))
	if c := vectest.Cosine(got, want); c < 0.9999 {
		t.Errorf("descriptor is not that of the solid first frame: cosine %.5f", c)
	}
}

// TestHostileAcceptedLibraryPath checks the unusual but valid inputs are
// described as what they show.
func TestHostileAcceptedLibraryPath(t *testing.T) {
	d := newQuad(t)
	quad := imagetest.Quadrants(64, 48)
	upright := mustDescribe(t, d, quad)

	t.Run("cmyk-jpeg", func(t *testing.T) {
		// Quadrant colours as ink, one per 8x8 block.
		data := imagetest.CMYKJPEG(64, 48, imagetest.QuadrantInk(64, 48), true)
		img, err := imageio.Decode(data, imageio.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := img.(*image.CMYK); !ok {
			t.Errorf("decoded as %T", img)
		}
		c := vectest.Cosine(mustDescribe(t, d, img), upright)
		t.Logf("accepted as %T %v; cosine to the RGB original %.5f", img, img.Bounds(), c)
		if c < 0.999 {
			t.Errorf("CMYK colours came out wrong: cosine %.5f", c)
		}
	})
	for _, m := range []image.Image{imagetest.Quadrants16(64, 48), imagetest.Gray16(64, 48)} {
		t.Run(fmt.Sprintf("png16-%T", m), func(t *testing.T) {
			img, err := imageio.Decode(imagetest.PNG(t, m), imageio.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			// The 8-bit rendering of the same picture is the reference.
			ref := image.NewRGBA(m.Bounds())
			for y := range 48 {
				for x := range 64 {
					ref.Set(x, y, m.At(x, y))
				}
			}
			c := vectest.Cosine(mustDescribe(t, d, img), mustDescribe(t, d, ref))
			t.Logf("accepted as %T; cosine to the 8-bit rendering %.6f", img, c)
			if c < 0.9999 {
				t.Errorf("cosine %.6f", c)
			}
		})
	}
	t.Run("exif-orientation", func(t *testing.T) {
		for o := 1; o <= 8; o++ {
			stored := imagetest.StoredFor(quad, o)
			raw := imagetest.JPEG(t, stored, 95)
			vec, err := pipeline(t, d, imagetest.EXIF(raw, o))
			if err != nil {
				t.Fatalf("o=%d: %v", o, err)
			}
			withEXIF := vectest.Cosine(vec, upright)
			ignored := vectest.Cosine(mustDescribe(t, d, stored), upright)
			t.Logf("orientation %d: cosine to upright %.4f with EXIF applied, %.4f if it were ignored", o, withEXIF, ignored)
			if withEXIF < 0.995 {
				t.Errorf("o=%d: not upright after decoding: cosine %.4f", o, withEXIF)
			}
			if o > 1 && ignored > 0.95 {
				t.Errorf("o=%d: the test image cannot tell orientations apart (%.4f)", o, ignored)
			}
		}
	})
	t.Run("1x1", func(t *testing.T) {
		d := newQuad(t)
		c := color.RGBA{10, 180, 90, 255}
		vec, err := pipeline(t, d, imagetest.PNG(t, imagetest.Solid(1, 1, c)))
		if err != nil {
			t.Fatal(err)
		}
		h, w, _ := d.Runner.Largest()
		if cs := vectest.Cosine(vec, mustDescribe(t, d, imagetest.Solid(50, 50, c))); cs < 0.9999 {
			t.Errorf("1x1 described unlike its colour: cosine %.5f", cs)
		}
		t.Logf("accepted; upscaled to a %dx%d tensor", w, h)
	})
}

// TestHostilePanorama checks that extreme aspect ratios cannot blow up the
// backbone input: a 20000-pixel-wide strip, even one pixel high, costs no
// more than the long-side cap allows.
func TestHostilePanorama(t *testing.T) {
	for _, sz := range [][2]int{{20000, 100}, {20000, 10}, {20000, 1}, {1, 20000}} {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			d := newQuad(t)
			m := image.NewRGBA(image.Rect(0, 0, sz[0], sz[1]))
			for y := range sz[1] {
				for x := range sz[0] {
					o := m.PixOffset(x, y)
					m.Pix[o], m.Pix[o+1], m.Pix[o+2], m.Pix[o+3] = uint8(x*255/sz[0]), 128, uint8(y*255/sz[1]), 255
				}
			}
			data := imagetest.PNG(t, m)
			start := time.Now()
			vec, err := pipeline(t, d, data)
			if err != nil {
				t.Fatal(err)
			}
			h, w, _ := d.Runner.Largest()
			t.Logf("%dx%d (%d bytes): described in %v from a %dx%d tensor", sz[0], sz[1], len(data), time.Since(start), w, h)
			// Short side 224, long side capped at 2x224: never more pixels
			// than a 224x448 input.
			if h*w > 224*448 || len(vec) != describetest.Channels {
				t.Errorf("%dx%d gave a %dx%d backbone input", sz[0], sz[1], w, h)
			}
		})
	}
}
