package imageio

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/gif"
	"testing"
)

// ---- synthetic images ----

// gradient is smooth in both axes with different directions per channel.
func gradient(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetRGBA(x, y, color.RGBA{
				R: uint8(255 * x / max(1, w-1)),
				G: uint8(255 * y / max(1, h-1)),
				B: uint8(255 * (x + y) / max(1, w+h-2)),
				A: 255,
			})
		}
	}
	return m
}

// textured mixes a checkerboard, a gradient and a drawn disc, resembling a
// product photo more than a pure gradient does.
func textured(w, h int) *image.RGBA {
	m := gradient(w, h)
	cx, cy, r := w/2, h/2, min(w, h)/3
	for y := range h {
		for x := range w {
			o := m.PixOffset(x, y)
			if (x/8+y/8)%2 == 0 {
				m.Pix[o] /= 2
			}
			if dx, dy := x-cx, y-cy; dx*dx+dy*dy < r*r {
				m.Pix[o+1] = 255 - m.Pix[o+1]
			}
		}
	}
	return m
}

// ---- encoders ----

func encGIF(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bitWriter writes the LSB-first bit stream used by VP8L.
type bitWriter struct {
	buf []byte
	acc uint64
	n   uint
}

func (w *bitWriter) bits(v uint32, n uint) {
	w.acc |= uint64(v) << w.n
	w.n += n
	for w.n >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

// code writes a canonical Huffman code, most significant bit first.
func (w *bitWriter) code(c uint32, length uint) {
	for i := int(length) - 1; i >= 0; i-- {
		w.bits((c>>uint(i))&1, 1)
	}
}

func (w *bitWriter) bytes() []byte {
	if w.n > 0 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc, w.n = 0, 0
	}
	return w.buf
}

// encWebPLossless is a minimal VP8L encoder (no transforms, no LZ77, no
// colour cache): every literal uses a flat 8-bit prefix code, so the code
// for byte v is v itself. It exists because there is no Go WebP encoder and
// tests must not depend on external tools or files.
func encWebPLossless(m *image.NRGBA) []byte {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	var bw bitWriter
	bw.bits(0x2f, 8) // VP8L signature
	bw.bits(uint32(w-1), 14)
	bw.bits(uint32(h-1), 14)
	bw.bits(1, 1) // alpha_is_used hint
	bw.bits(0, 3) // version
	bw.bits(0, 1) // no transform
	bw.bits(0, 1) // no colour cache
	bw.bits(0, 1) // no meta prefix codes
	flat8 := func(alphabet int) {
		bw.bits(0, 1)    // normal (not simple) code length code
		bw.bits(12-4, 4) // 12 code-length-code lengths follow
		order := [12]int{17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8}
		for _, s := range order {
			l := uint32(0)
			if s == 0 || s == 8 {
				l = 1 // symbols 0 and 8 get 1-bit codes: "0" -> 0, "1" -> 8
			}
			bw.bits(l, 3)
		}
		bw.bits(0, 1) // max_symbol not given: all alphabet lengths follow
		for s := range alphabet {
			if s < 256 {
				bw.code(1, 1) // length 8
			} else {
				bw.code(0, 1) // length 0 (LZ77 length codes unused)
			}
		}
	}
	flat8(256 + 24) // green + length prefixes
	flat8(256)      // red
	flat8(256)      // blue
	flat8(256)      // alpha
	// distance: simple code with a single 1-bit symbol 0
	bw.bits(1, 1)
	bw.bits(0, 1)
	bw.bits(0, 1)
	bw.bits(0, 1)
	for y := range h {
		for x := range w {
			c := m.NRGBAAt(m.Rect.Min.X+x, m.Rect.Min.Y+y)
			bw.code(uint32(c.G), 8)
			bw.code(uint32(c.R), 8)
			bw.code(uint32(c.B), 8)
			bw.code(uint32(c.A), 8)
		}
	}
	return riffWebP("VP8L", bw.bytes())
}

func riffWebP(fourcc string, data []byte) []byte {
	var b bytes.Buffer
	pad := len(data) & 1
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(4+8+len(data)+pad))
	b.WriteString("WEBP")
	b.WriteString(fourcc)
	binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	if pad == 1 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

func toNRGBA(m image.Image) *image.NRGBA {
	b := m.Bounds()
	n := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		for x := range b.Dx() {
			n.Set(x, y, m.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	return n
}

// jpegWithSize patches the SOF0 dimensions of a valid baseline JPEG.
func jpegWithSize(t testing.TB, jpg []byte, w, h uint16) []byte {
	t.Helper()
	out := append([]byte{}, jpg...)
	for p := 2; p+9 < len(out); {
		if out[p] != 0xff {
			t.Fatal("lost marker sync")
		}
		m := out[p+1]
		n := int(binary.BigEndian.Uint16(out[p+2:]))
		if m == 0xc0 {
			binary.BigEndian.PutUint16(out[p+5:], h)
			binary.BigEndian.PutUint16(out[p+7:], w)
			return out
		}
		p += 2 + n
	}
	t.Fatal("no SOF0")
	return nil
}

func meanAbsDiff(a, b *image.RGBA) (mean float64, maxd int) {
	if a.Rect != b.Rect {
		panic("rect mismatch")
	}
	sum := 0
	n := 0
	for i := range a.Pix {
		if i%4 == 3 {
			continue
		}
		d := int(a.Pix[i]) - int(b.Pix[i])
		if d < 0 {
			d = -d
		}
		sum += d
		maxd = max(maxd, d)
		n++
	}
	return float64(sum) / float64(n), maxd
}

// heifOrUnsupported is the error a HEIF/AVIF case expects: want where
// libheif is built in, ErrUnsupported in the pure-Go twin.
func heifOrUnsupported(want error) error {
	if nativeHEIF {
		return want
	}
	return ErrUnsupported
}
