package imageio

import (
	"encoding/binary"
	"image"
)

// jpegOrientation returns the EXIF orientation (1..8) of a JPEG, or 1 when
// absent or malformed. Phone photos are usually stored sideways with the
// rotation only in this tag; ignoring it would index the product lying on
// its side, which hurts CNN embeddings badly. Only the marker segments before
// the first scan are walked, so the cost is independent of image size.
func jpegOrientation(b []byte) int {
	if len(b) < 4 || b[0] != 0xff || b[1] != 0xd8 {
		return 1
	}
	p := 2
	for p+4 <= len(b) {
		if b[p] != 0xff {
			return 1
		}
		m := b[p+1]
		if m == 0xff { // fill byte
			p++
			continue
		}
		if m == 0xd8 || m == 0x01 || (m >= 0xd0 && m <= 0xd7) { // standalone markers
			p += 2
			continue
		}
		if m == 0xda || m == 0xd9 { // start of scan / end of image: no more metadata
			return 1
		}
		n := int(binary.BigEndian.Uint16(b[p+2:]))
		if n < 2 || p+2+n > len(b) {
			return 1
		}
		seg := b[p+4 : p+2+n]
		if m == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			if o := tiffOrientation(seg[6:]); o != 0 {
				return o
			}
		}
		p += 2 + n
	}
	return 1
}

// tiffOrientation reads tag 0x0112 from IFD0 of a TIFF-structured EXIF blob;
// it returns 0 if not found or invalid.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	off := int64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > int64(len(t)) {
		return 0
	}
	n := int64(bo.Uint16(t[off:]))
	for i := int64(0); i < n; i++ {
		e := off + 2 + 12*i
		if e+12 > int64(len(t)) {
			return 0
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		typ, cnt := bo.Uint16(t[e+2:]), bo.Uint32(t[e+4:])
		if cnt != 1 {
			return 0
		}
		var v int
		switch typ {
		case 3: // SHORT, left-justified in the 4-byte value field
			v = int(bo.Uint16(t[e+8:]))
		case 4, 9: // LONG / SLONG, seen in the wild from sloppy writers
			v = int(bo.Uint32(t[e+8:]))
		default:
			return 0
		}
		if v < 1 || v > 8 {
			return 0
		}
		return v
	}
	return 0
}

// applyOrientation returns img transformed so that it displays upright for
// EXIF orientation o (2..8). Most phone photos carry o=6, so the common
// cases stay cheap and keep their type: *image.YCbCr is transformed plane by
// plane when the chroma blocks map exactly (dimensions multiple of the
// subsampling factors; 4:2:2 and 4:4:0 swap on transposition), *image.Gray
// stays Gray; anything else becomes *image.RGBA.
func applyOrientation(img image.Image, o int) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	switch m := img.(type) {
	case *image.YCbCr:
		if out, ok := orientYCbCr(m, o); ok {
			return out
		}
	case *image.Gray:
		out := image.NewGray(image.Rect(0, 0, dw, dh))
		orientPlane(out.Pix, out.Stride, m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, o, 1)
		return out
	}
	src := toRGBA(img)
	out := image.NewRGBA(image.Rect(0, 0, dw, dh))
	orientPlane(out.Pix, out.Stride, src.Pix, src.Stride, w, h, o, 4)
	return out
}

// orientYCbCr transforms the three planes of m; ok is false when the chroma
// grid would not map onto itself exactly (odd sizes, sub-image offsets, or
// a transposed 4:1:x ratio that image.YCbCr cannot represent).
func orientYCbCr(m *image.YCbCr, o int) (*image.YCbCr, bool) {
	fx, fy := subsampleFactors(m.SubsampleRatio)
	w, h := m.Rect.Dx(), m.Rect.Dy()
	if m.Rect.Min != (image.Point{}) || w%fx != 0 || h%fy != 0 {
		return nil, false
	}
	ratio := m.SubsampleRatio
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
		switch ratio {
		case image.YCbCrSubsampleRatio422:
			ratio = image.YCbCrSubsampleRatio440
		case image.YCbCrSubsampleRatio440:
			ratio = image.YCbCrSubsampleRatio422
		case image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
			return nil, false
		}
	}
	out := image.NewYCbCr(image.Rect(0, 0, dw, dh), ratio)
	orientPlane(out.Y, out.YStride, m.Y, m.YStride, w, h, o, 1)
	orientPlane(out.Cb, out.CStride, m.Cb, m.CStride, w/fx, h/fy, o, 1)
	orientPlane(out.Cr, out.CStride, m.Cr, m.CStride, w/fx, h/fy, o, 1)
	return out, true
}

// subsampleFactors returns the horizontal and vertical chroma subsampling
// factors of r.
func subsampleFactors(r image.YCbCrSubsampleRatio) (fx, fy int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 2, 1
	case image.YCbCrSubsampleRatio420:
		return 2, 2
	case image.YCbCrSubsampleRatio440:
		return 1, 2
	case image.YCbCrSubsampleRatio411:
		return 4, 1
	case image.YCbCrSubsampleRatio410:
		return 4, 2
	}
	return 1, 1
}

// orientPlane writes the w x h plane src (bpp bytes per pixel, 1 or 4) into
// dst transformed for EXIF orientation o, using the spec's mapping of stored
// pixel (x,y) to its displayed position. It walks the source in tiles so the
// transposing orientations stay cache-friendly on large photos.
func orientPlane(dst []byte, dstStride int, src []byte, srcStride, w, h, o, bpp int) {
	pos := func(x, y int) (int, int) {
		switch o {
		case 2:
			return w - 1 - x, y
		case 3:
			return w - 1 - x, h - 1 - y
		case 4:
			return x, h - 1 - y
		case 5:
			return y, x
		case 6:
			return h - 1 - y, x
		case 7:
			return h - 1 - y, w - 1 - x
		case 8:
			return y, w - 1 - x
		}
		return x, y
	}
	// The mapping is affine, so express it as a byte offset plus steps per
	// source column and row and keep the inner loop free of the switch.
	// (pos(1,0) may lie outside when w == 1; the affine form still holds.)
	x0, y0 := pos(0, 0)
	x1, y1 := pos(1, 0)
	x2, y2 := pos(0, 1)
	base := bpp*x0 + y0*dstStride
	stepX := bpp*(x1-x0) + (y1-y0)*dstStride
	stepY := bpp*(x2-x0) + (y2-y0)*dstStride
	const tile = 64
	for ty := 0; ty < h; ty += tile {
		for tx := 0; tx < w; tx += tile {
			xe := min(tx+tile, w)
			for y := ty; y < min(ty+tile, h); y++ {
				d := base + y*stepY + tx*stepX
				if bpp == 1 {
					row := src[y*srcStride+tx : y*srcStride+xe]
					for _, v := range row {
						dst[d] = v
						d += stepX
					}
					continue
				}
				row := src[y*srcStride+4*tx : y*srcStride+4*xe]
				for x := 0; x < len(row); x += 4 {
					binary.LittleEndian.PutUint32(dst[d:d+4], binary.LittleEndian.Uint32(row[x:x+4]))
					d += stepX
				}
			}
		}
	}
}

// toRGBA converts any image to a tightly packed *image.RGBA at origin (0,0),
// using the fast row converters shared with the resizer.
func toRGBA(img image.Image) *image.RGBA {
	b := img.Bounds()
	if m, ok := img.(*image.RGBA); ok && m.Rect.Min == (image.Point{}) && m.Stride == 4*b.Dx() {
		return m
	}
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	rs := newRowSource(img)
	buf := make([]byte, b.Dx()*rs.nc)
	for y := 0; y < b.Dy(); y++ {
		row := rs.row(y, buf)
		expandRow(out.Pix[y*out.Stride:y*out.Stride+4*b.Dx()], row, rs.nc)
	}
	return out
}
