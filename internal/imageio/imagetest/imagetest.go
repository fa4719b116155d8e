// Package imagetest builds the hostile and unusual images that imageio,
// describe and server tests feed through the upload path, in code, so no
// test depends on committed binaries: truncated and bomb headers, GIFs with
// thousands of frames, CMYK JPEGs (which no Go encoder writes), 16-bit PNGs,
// EXIF orientations and extreme sizes; and the seeded stand-in photos that
// tests and benchmarks describe.
package imagetest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// QuadColors are the colours of Quadrants: top-left, top-right,
// bottom-left, bottom-right. They are far apart, so a misplaced quadrant
// shows after any lossy step.
var QuadColors = [4]color.RGBA{
	{220, 30, 30, 255},
	{30, 200, 30, 255},
	{30, 30, 220, 255},
	{240, 240, 40, 255},
}

// Quadrants is a w x h image with one colour per quadrant, so each of the
// eight EXIF transforms is identifiable from its corners.
func Quadrants(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			q := 0
			if x >= w/2 {
				q++
			}
			if y >= h/2 {
				q += 2
			}
			m.SetRGBA(x, y, QuadColors[q])
		}
	}
	return m
}

// Solid is a w x h image of one colour.
func Solid(w, h int, c color.RGBA) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return m
}

// Photo is a w x h stand-in for a product photo, different for every seed
// and the same for the same one: a gradient between two colours with five
// boxes (10 to 79 pixels a side) and three discs on it, so that a backbone
// describes two seeds apart and every scale has structure.
func Photo(seed uint64, w, h int) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 99))
	rc := func() color.RGBA { return color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255} }
	a, b := rc(), rc()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			t := float64(x*h+y*w) / float64(2*w*h)
			mix := func(p, q uint8) uint8 { return uint8(float64(p)*(1-t) + float64(q)*t) }
			m.SetRGBA(x, y, color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 255})
		}
	}
	for range 5 {
		c, x0, y0, bw, bh := rc(), r.IntN(w), r.IntN(h), 10+r.IntN(70), 10+r.IntN(70)
		for y := y0; y < min(h, y0+bh); y++ {
			for x := x0; x < min(w, x0+bw); x++ {
				m.SetRGBA(x, y, c)
			}
		}
	}
	for range 3 {
		c, cx, cy, rad := rc(), r.IntN(w), r.IntN(h), 8+r.IntN(30)
		for y := max(0, cy-rad); y < min(h, cy+rad); y++ {
			for x := max(0, cx-rad); x < min(w, cx+rad); x++ {
				if (x-cx)*(x-cx)+(y-cy)*(y-cy) <= rad*rad {
					m.SetRGBA(x, y, c)
				}
			}
		}
	}
	return m
}

// JPEG encodes m at quality q.
func JPEG(t testing.TB, m image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// PNG encodes m; 16-bit image types (*image.NRGBA64, *image.RGBA64,
// *image.Gray16) give a 16-bit PNG.
func PNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// WriteFile writes data to path, creating its folder: how tests lay out
// image folders and manifests.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Quadrants16 is Quadrants as a 16-bit NRGBA64 image whose low bytes differ
// from the high ones, so a decoder that kept only one byte would still be
// close but one that misread the layout would not.
func Quadrants16(w, h int) *image.NRGBA64 {
	m := image.NewNRGBA64(image.Rect(0, 0, w, h))
	q := Quadrants(w, h)
	for y := range h {
		for x := range w {
			c := q.RGBAAt(x, y)
			m.SetNRGBA64(x, y, color.NRGBA64{uint16(c.R)<<8 | 0x7f, uint16(c.G)<<8 | 0x3c, uint16(c.B)<<8 | 0xa1, 0xffff})
		}
	}
	return m
}

// Gray16 is a 16-bit grey horizontal ramp, black on the left.
func Gray16(w, h int) *image.Gray16 {
	m := image.NewGray16(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetGray16(x, y, color.Gray16{uint16(x * 0xffff / max(1, w-1))})
		}
	}
	return m
}

// Truncated keeps the first frac of data (at least one byte), the shape of
// an interrupted upload.
func Truncated(data []byte, frac float64) []byte {
	n := max(1, int(float64(len(data))*frac))
	return append([]byte(nil), data[:min(n, len(data))]...)
}

// PNGHeader is a valid PNG whose IHDR claims w x h 8-bit RGB pixels, with a
// tiny IDAT: a decompression bomb that only a header check stops cheaply
// (100000 x 100000 would need 30 GB to decode).
func PNGHeader(w, h uint32) []byte {
	return pngFile(w, h, 8, 2, []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
}

// HostilePNG is a complete, valid w x h 16-bit RGBA PNG of one grey, a few
// hundred KB that decodes to 8 bytes a pixel: 7000 x 7000 is 381 KB on the
// wire, under a 50-megapixel limit, and 392 MB decoded. It is written row
// by row, so making it costs no more memory than the file.
func HostilePNG(w, h int) []byte {
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	row := make([]byte, 1+8*w) // filter byte 0, then RGBA64 samples
	for i := 1; i < len(row); i += 2 {
		row[i] = 0x80 // mid grey, opaque enough: every sample 0x8000
	}
	for range h {
		_, _ = zw.Write(row)
	}
	_ = zw.Close()
	return pngFile(uint32(w), uint32(h), 16, 6, z.Bytes())
}

// pngFile writes the signature, IHDR (depth, colour type), one IDAT and IEND.
func pngFile(w, h uint32, depth, colourType byte, idat []byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		b.WriteString(typ)
		b.Write(data)
		_ = binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, depth, colourType, 0, 0, 0)
	chunk("IHDR", ihdr)
	chunk("IDAT", idat)
	chunk("IEND", nil)
	return b.Bytes()
}

// Text is what a text file renamed to .jpg holds.
func Text() []byte {
	return []byte("hello, this is not a photo\nname,price\napple,0.99\n")
}

// EXIF inserts an APP1 EXIF segment with the given Orientation (1..8, or
// anything else to test range checks) right after the SOI of jpg.
func EXIF(jpg []byte, orientation int) []byte {
	return InsertSegment(jpg, EXIFSegment(orientation, false))
}

// EXIFSegment builds an APP1 segment holding a minimal TIFF structure: header,
// IFD0 with an unrelated tag first (to exercise the tag scan) and then
// Orientation (0x0112, SHORT, count 1), and no next IFD.
func EXIFSegment(orientation int, bigEndian bool) []byte {
	var bo binary.AppendByteOrder = binary.LittleEndian
	tiff := []byte("II*\x00")
	if bigEndian {
		bo = binary.BigEndian
		tiff = []byte("MM\x00*")
	}
	tiff = bo.AppendUint32(tiff, 8) // IFD0 offset
	tiff = bo.AppendUint16(tiff, 2) // entries
	// ImageWidth (0x0100), LONG, 1, 1234 (ignored)
	tiff = bo.AppendUint16(tiff, 0x0100)
	tiff = bo.AppendUint16(tiff, 4)
	tiff = bo.AppendUint32(tiff, 1)
	tiff = bo.AppendUint32(tiff, 1234)
	// Orientation
	tiff = bo.AppendUint16(tiff, 0x0112)
	tiff = bo.AppendUint16(tiff, 3)
	tiff = bo.AppendUint32(tiff, 1)
	tiff = bo.AppendUint16(tiff, uint16(orientation))
	tiff = bo.AppendUint16(tiff, 0)
	tiff = bo.AppendUint32(tiff, 0) // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xff, 0xe1}
	seg = binary.BigEndian.AppendUint16(seg, uint16(2+len(payload)))
	return append(seg, payload...)
}

// InsertSegment inserts a marker segment right after the SOI of jpg.
func InsertSegment(jpg, seg []byte) []byte {
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// exifDisplay maps stored pixel (x, y) of a w x h image with orientation o
// to where it is displayed, per the EXIF specification; it is written
// independently of imageio's code, which the tests check against it.
func exifDisplay(o, x, y, w, h int) (int, int) {
	switch o {
	case 2: // mirrored horizontally
		return w - 1 - x, y
	case 3: // rotated 180
		return w - 1 - x, h - 1 - y
	case 4: // mirrored vertically
		return x, h - 1 - y
	case 5: // transposed: 0th row is visual left, 0th column visual top
		return y, x
	case 6: // 0th row is visual right, 0th column visual top (rotate 90 CW to view)
		return h - 1 - y, x
	case 7: // transverse: 0th row visual right, 0th column visual bottom
		return h - 1 - y, w - 1 - x
	case 8: // 0th row visual left, 0th column visual bottom (rotate 90 CCW to view)
		return y, w - 1 - x
	}
	return x, y
}

// StoredFor is the sensor image that a camera would write, with EXIF
// orientation o, for a photo that displays as upright.
func StoredFor(upright *image.RGBA, o int) *image.RGBA { return reorient(upright, o, false) }

// Displayed is how a stored image with EXIF orientation o displays: the
// reference that imageio's orientation code is compared with.
func Displayed(stored *image.RGBA, o int) *image.RGBA { return reorient(stored, o, true) }

// reorient maps src through exifDisplay, from stored to displayed pixels
// (toDisplay) or back.
func reorient(src *image.RGBA, o int, toDisplay bool) *image.RGBA {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	if o >= 5 && o <= 8 {
		w, h = h, w
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	sw, sh := w, h // the stored image's size, which the mapping takes
	if toDisplay {
		sw, sh = src.Rect.Dx(), src.Rect.Dy()
	}
	r0 := src.Rect.Min
	for y := range sh {
		for x := range sw {
			dx, dy := exifDisplay(o, x, y, sw, sh)
			if toDisplay {
				out.SetRGBA(dx, dy, src.RGBAAt(r0.X+x, r0.Y+y))
			} else {
				out.SetRGBA(x, y, src.RGBAAt(r0.X+dx, r0.Y+dy))
			}
		}
	}
	return out
}

// ManyFrameGIF is an animated GIF of w x h frames. The first frame is solid
// first; every later one is the same noise frame, which LZW barely
// compresses, so a decoder that went past the first frame would pay for all
// of them. The noise frame is encoded once and its bytes repeated, so
// building thousands of frames costs no more than copying them.
func ManyFrameGIF(t testing.TB, w, h, frames int, first color.RGBA) []byte {
	t.Helper()
	pal := color.Palette{first, color.RGBA{0, 0, 0, 255}, color.RGBA{255, 255, 255, 255}, color.RGBA{0, 128, 255, 255}}
	noise := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	seed := uint32(1)
	for j := range noise.Pix {
		seed = seed*1664525 + 1013904223
		noise.Pix[j] = uint8(seed>>30) & 3
	}
	g := &gif.GIF{Image: []*image.Paletted{image.NewPaletted(noise.Rect, pal), noise}, Delay: []int{1, 1}}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	starts, end := gifFrames(t, data)
	if len(starts) != 2 {
		t.Fatalf("imagetest: encoded GIF has %d frames, want 2", len(starts))
	}
	out := append([]byte(nil), data[:starts[1]]...)
	for range frames - 1 {
		out = append(out, data[starts[1]:end]...)
	}
	return append(out, 0x3b)
}

// gifFrames returns where each frame (its extensions, then the image)
// starts in a GIF stream, and where the trailer is.
func gifFrames(t testing.TB, d []byte) (starts []int, trailer int) {
	t.Helper()
	p := 13
	if d[10]&0x80 != 0 {
		p += 3 << (d[10]&7 + 1)
	}
	subBlocks := func() {
		for p < len(d) && d[p] != 0 {
			p += 1 + int(d[p])
		}
		p++
	}
	frameStart := -1
	for p < len(d) {
		switch d[p] {
		case 0x21: // extension: label, then sub-blocks
			if frameStart < 0 && d[p+1] == 0xf9 {
				frameStart = p
			}
			p += 2
			subBlocks()
		case 0x2c: // image descriptor, optional local table, LZW data
			if frameStart < 0 {
				frameStart = p
			}
			starts = append(starts, frameStart)
			frameStart = -1
			flags := d[p+9]
			p += 10
			if flags&0x80 != 0 {
				p += 3 << (flags&7 + 1)
			}
			p++ // LZW minimum code size
			subBlocks()
		case 0x3b:
			return starts, p
		default:
			t.Fatalf("imagetest: unexpected GIF block 0x%02x at %d", d[p], p)
		}
	}
	t.Fatal("imagetest: GIF without trailer")
	return nil, 0
}
