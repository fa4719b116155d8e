package imageio

import (
	"bytes"
	"errors"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/tiff"

	"prodsearch/internal/imageio/imagetest"
)

// heifEncode writes m as HEIC or AVIF (by ext) with heif-enc (Debian
// libheif-examples), skipping the test where it is missing.
func heifEncode(t *testing.T, m image.Image, ext string) []byte {
	t.Helper()
	enc, err := exec.LookPath("heif-enc")
	if err != nil {
		t.Skip("SKIP: heif-enc (Debian libheif-examples) not installed")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.png"), filepath.Join(dir, "out."+ext)
	if err := os.WriteFile(in, imagetest.PNG(t, m), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(enc, "-q", "90", "-o", out, in).CombinedOutput(); err != nil {
		t.Skipf("SKIP: heif-enc cannot write %s here: %v: %s", ext, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestDecodeHEIFAndAVIF(t *testing.T) {
	src := imagetest.Quadrants(320, 240)
	for _, ext := range []string{"heic", "avif"} {
		t.Run(ext, func(t *testing.T) {
			data := heifEncode(t, src, ext)
			img, err := DecodeAtLeast(data, DefaultLimits(), 100)
			if !nativeHEIF {
				if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "libheif") {
					t.Fatalf("pure-Go build: %v, want ErrUnsupported naming libheif", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img.Bounds() != src.Bounds() {
				t.Fatalf("decoded %v, want %v", img.Bounds(), src.Bounds())
			}
			if mean, _ := meanAbsDiff(toRGBA(img), src); mean > 4 {
				t.Errorf("mean difference %.2f/255 from the source", mean)
			}
			if _, err := Decode(data, Limits{MaxPixels: 320*240 - 1}); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "320x240") {
				t.Errorf("pixel limit: %v, want ErrTooLarge naming 320x240", err)
			}
			for _, cut := range []int{len(data) / 2, len(data) - 1} {
				if _, err := Decode(data[:cut], DefaultLimits()); !errors.Is(err, ErrCorrupt) {
					t.Errorf("cut at %d/%d: %v, want ErrCorrupt", cut, len(data), err)
				}
			}
		})
	}
}

func TestDecodeTIFF(t *testing.T) {
	src := imagetest.Quadrants(64, 48)
	var b bytes.Buffer
	if err := tiff.Encode(&b, src, &tiff.Options{Compression: tiff.Deflate}); err != nil {
		t.Fatal(err)
	}
	img, err := Decode(b.Bytes(), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if mean, _ := meanAbsDiff(toRGBA(img), src); mean != 0 {
		t.Errorf("lossless TIFF decoded %.2f/255 away from the source", mean)
	}
	if _, err := Decode(b.Bytes(), Limits{MaxPixels: 64*48 - 1}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("pixel limit: %v, want ErrTooLarge", err)
	}
}
