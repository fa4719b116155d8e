package imagetest

import (
	"encoding/binary"
	"image/color"
)

// QuadrantInk is the ink of Quadrants for CMYKJPEG: block (bx, by) of a
// w x h image gets the CMYK form of its quadrant's colour, so a CMYK JPEG
// of it shows what Quadrants(w, h) shows (w and h multiples of 16).
func QuadrantInk(w, h int) func(bx, by int) color.CMYK {
	return func(bx, by int) color.CMYK {
		q := 0
		if bx >= w/16 {
			q++
		}
		if by >= h/16 {
			q += 2
		}
		c := QuadColors[q]
		cc, m, y, k := color.RGBToCMYK(c.R, c.G, c.B)
		return color.CMYK{C: cc, M: m, Y: y, K: k}
	}
}

// CMYKJPEG is a baseline 4-component (CMYK) JPEG of w x h pixels, the
// format print workflows export and image/jpeg decodes but cannot encode.
// ink gives the colour of each 8x8 block (bx, by); every block is flat, so
// only DC coefficients are coded and the decoded pixels equal ink exactly.
// With adobe set the file carries the Adobe APP14 marker (transform 0,
// inverted CMYK as Photoshop writes it) that decoders need to know the
// components are CMYK; without it the file is a well-formed JPEG that no
// decoder can interpret.
func CMYKJPEG(w, h int, ink func(bx, by int) color.CMYK, adobe bool) []byte {
	out := []byte{0xff, 0xd8}
	seg := func(marker byte, payload []byte) {
		out = append(out, 0xff, marker)
		out = binary.BigEndian.AppendUint16(out, uint16(2+len(payload)))
		out = append(out, payload...)
	}
	if adobe {
		// "Adobe", version 100, flags0, flags1, transform 0 (no YCC).
		seg(0xee, []byte{'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, 0})
	}
	// One quantisation table of ones: a coefficient is coded as is.
	q := make([]byte, 65)
	for i := 1; i < 65; i++ {
		q[i] = 1
	}
	seg(0xdb, q)
	sof := []byte{8}
	sof = binary.BigEndian.AppendUint16(sof, uint16(h))
	sof = binary.BigEndian.AppendUint16(sof, uint16(w))
	sof = append(sof, 4)
	for id := byte(1); id <= 4; id++ {
		sof = append(sof, id, 0x11, 0) // no subsampling, table 0
	}
	seg(0xc0, sof)
	// DC table: the standard luminance one (categories 0..11). AC table: a
	// single 1-bit code for EOB, the only AC symbol a flat block needs.
	dcBits := [16]byte{0, 1, 5, 1, 1, 1, 1, 1, 1}
	dht := append([]byte{0x00}, dcBits[:]...)
	for s := byte(0); s < 12; s++ {
		dht = append(dht, s)
	}
	acBits := [16]byte{1}
	dht = append(dht, 0x10)
	dht = append(dht, acBits[:]...)
	dht = append(dht, 0x00)
	seg(0xc4, dht)
	sos := []byte{4}
	for id := byte(1); id <= 4; id++ {
		sos = append(sos, id, 0x00)
	}
	sos = append(sos, 0, 63, 0)
	seg(0xda, sos)

	codes := canonicalCodes(dcBits)
	var bw jpegBits
	var pred [4]int
	for by := 0; by < (h+7)/8; by++ {
		for bx := 0; bx < (w+7)/8; bx++ {
			c := ink(bx, by)
			// Adobe CMYK is stored inverted: 255 means no ink.
			for k, v := range [4]uint8{255 - c.C, 255 - c.M, 255 - c.Y, 255 - c.K} {
				dc := 8 * (int(v) - 128) // DC of a flat, level-shifted block
				diff := dc - pred[k]
				pred[k] = dc
				cat, bits := 0, diff
				for a := abs(diff); a > 0; a >>= 1 {
					cat++
				}
				if diff < 0 {
					bits = diff - 1 // one's complement in the low cat bits
				}
				bw.put(codes[cat].code, codes[cat].n)
				bw.put(uint32(bits)&(1<<cat-1), cat)
				bw.put(0, 1) // EOB
			}
		}
	}
	out = append(out, bw.flush()...)
	return append(out, 0xff, 0xd9)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

type huffCode struct {
	code uint32
	n    int
}

// canonicalCodes assigns JPEG's canonical Huffman codes to symbols 0, 1, ...
// in order, given how many codes each length 1..16 has.
func canonicalCodes(bits [16]byte) []huffCode {
	var out []huffCode
	code := uint32(0)
	for l := range 16 {
		for range bits[l] {
			out = append(out, huffCode{code, l + 1})
			code++
		}
		code <<= 1
	}
	return out
}

// jpegBits packs entropy-coded bits MSB first, stuffing a zero after every
// 0xff byte and padding the end with ones, as JPEG requires.
type jpegBits struct {
	buf []byte
	acc uint32
	n   int
}

func (b *jpegBits) put(v uint32, n int) {
	for i := n - 1; i >= 0; i-- {
		b.acc = b.acc<<1 | (v>>uint(i))&1
		b.n++
		if b.n == 8 {
			b.emit()
		}
	}
}

func (b *jpegBits) emit() {
	c := byte(b.acc)
	b.buf = append(b.buf, c)
	if c == 0xff {
		b.buf = append(b.buf, 0)
	}
	b.acc, b.n = 0, 0
}

func (b *jpegBits) flush() []byte {
	for b.n != 0 {
		b.put(1, 1)
	}
	return b.buf
}
