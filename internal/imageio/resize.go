package imageio

import (
	"encoding/binary"
	"image"
	"image/draw"
	"math"
	"runtime"
	"sync"
)

// ResizeShort scales src so its short side equals short, keeping the aspect
// ratio (no crop; the long side is rounded, minimum 1). It runs on every
// query and indexed image, so it is a separable two-pass resampler on raw
// bytes with precomputed 16-bit fixed-point weights: a triangle filter
// widened by the scale factor when shrinking (antialiased, like
// PIL/torchvision "bilinear, antialias=True") and plain bilinear with
// half-pixel centres when enlarging. *image.YCbCr (JPEG, lossy WebP) is
// resampled per plane at native chroma resolution and converted to RGB only
// for output pixels; chroma is therefore interpolated like libjpeg's default
// upsampling rather than replicated as image/draw does. *image.RGBA,
// *image.NRGBA, *image.Gray, *image.Paletted and *image.NYCbCrA are read
// directly (conversion and alpha premultiplication happen per row, in
// cache); other types go through one image/draw conversion first. Images of
// a megapixel or more are split over goroutines by output rows. The result
// is a new, tightly packed *image.RGBA at (0,0) that never aliases src; it is
// empty if short < 1 or src is empty.
func ResizeShort(src image.Image, short int) *image.RGBA {
	b := src.Bounds()
	sw, sh := b.Dx(), b.Dy()
	if short < 1 || sw <= 0 || sh <= 0 {
		return image.NewRGBA(image.Rectangle{})
	}
	dw, dh := ShortSideSize(sw, sh, short)
	workers := 1
	if sw*sh >= parallelThreshold {
		workers = min(runtime.GOMAXPROCS(0), 8, max(1, dh/16))
	}
	return resize(src, dw, dh, workers)
}

// ShortSideSize returns the output size ResizeShort uses, so callers can
// size tensors or crops without resizing first.
func ShortSideSize(w, h, short int) (int, int) {
	if w <= 0 || h <= 0 || short < 1 {
		return 0, 0
	}
	if w <= h {
		return short, max(1, int(math.Round(float64(h)*float64(short)/float64(w))))
	}
	return max(1, int(math.Round(float64(w)*float64(short)/float64(h)))), short
}

// Fixed-point precision of the filter weights. Weights are non-negative and
// sum to 1<<wBits, so 255<<wBits plus rounding fits in int32 comfortably.
const (
	wBits = 16
	wHalf = 1 << (wBits - 1)
)

// kernel holds precomputed weights for one axis: output i reads taps input
// samples starting at start[i] with weights w[i*taps : (i+1)*taps]. Every
// output has the same number of taps (short windows are padded with zero
// weights and shifted inside the input), so the inner loops are branch-free
// and specialised for small tap counts.
type kernel struct {
	taps  int
	start []int32
	w     []int32
}

// makeKernel builds triangle-filter weights mapping in samples to out
// samples (PIL's convention: pixel centres at i+0.5, support scaled by the
// reduction factor, edge taps dropped and renormalised).
func makeKernel(in, out int) kernel {
	return makeKernelAt(in, out, float64(in)/float64(out), 0)
}

// makeKernelAt is makeKernel with an explicit input step per output sample
// and an offset (in input samples) of the sampling grid, which subsampled
// chroma planes need: output centre i maps to (i+0.5)*scale + offset.
func makeKernelAt(in, out int, scale, offset float64) kernel {
	fscale := max(scale, 1)
	support := fscale // triangle support is 1 at unit scale
	maxTaps := int(math.Ceil(support))*2 + 1
	starts := make([]int, out)
	counts := make([]int, out)
	qws := make([]int32, out*maxTaps)
	fw := make([]float64, 0, maxTaps)
	taps := 1
	for i := 0; i < out; i++ {
		center := (float64(i)+0.5)*scale + offset
		lo := max(int(math.Floor(center-support+0.5)), 0)
		hi := min(int(math.Floor(center+support+0.5)), in)
		hi = min(hi, lo+maxTaps)
		total := 0.0
		fw = fw[:0]
		for x := lo; x < hi; x++ {
			d := math.Abs((float64(x) + 0.5 - center) / fscale)
			v := 0.0
			if d < 1 {
				v = 1 - d
			}
			fw = append(fw, v)
			total += v
		}
		// Trim zero-weight taps so identity and integer-ratio cases stay cheap.
		a, e := 0, len(fw)
		for a < e-1 && fw[a] == 0 {
			a++
		}
		for e > a+1 && fw[e-1] == 0 {
			e--
		}
		lo += a
		ws := fw[a:e]
		if total == 0 { // only when the grid lies outside the input: clamp
			ws, total = []float64{1}, 1
			lo = min(max(int(math.Floor(center)), 0), in-1)
		}
		qw := qws[i*maxTaps : i*maxTaps+len(ws)]
		sum, big := int32(0), 0
		for j, v := range ws {
			qw[j] = int32(math.Round(v / total * (1 << wBits)))
			sum += qw[j]
			if qw[j] > qw[big] {
				big = j
			}
		}
		qw[big] += 1<<wBits - sum // exact unity gain: solid colours survive unchanged
		starts[i], counts[i] = lo, len(ws)
		taps = max(taps, len(ws))
	}
	k := kernel{taps: taps, start: make([]int32, out), w: make([]int32, out*taps)}
	for i := range out {
		st := min(starts[i], in-taps) // taps <= in, so st >= 0
		copy(k.w[i*taps+starts[i]-st:], qws[i*maxTaps:i*maxTaps+counts[i]])
		k.start[i] = int32(st)
	}
	return k
}

// rowSource yields source rows as packed 8-bit samples with nc channels:
// 1 (gray), 3 (opaque RGB) or 4 (premultiplied RGBA).
type rowSource struct {
	nc   int
	w, h int
	// direct means row returns the source's own memory (no conversion),
	// so a vertical-first pass can read rows in place.
	direct bool
	// row returns row y (0-based) of the source; it may return a slice of
	// the source's own pixels or fill and return buf (len >= w*nc).
	row func(y int, buf []byte) []byte
}

func newRowSource(img image.Image) rowSource {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	rs := rowSource{w: w, h: h}
	switch m := img.(type) {
	case *image.RGBA:
		rs.nc, rs.direct = 4, true
		rs.row = func(y int, _ []byte) []byte {
			o := m.PixOffset(b.Min.X, b.Min.Y+y)
			return m.Pix[o : o+4*w]
		}
	case *image.Gray:
		rs.nc, rs.direct = 1, true
		rs.row = func(y int, _ []byte) []byte {
			o := m.PixOffset(b.Min.X, b.Min.Y+y)
			return m.Pix[o : o+w]
		}
	case *image.NRGBA:
		if nrgbaOpaque(m) {
			rs.nc = 3
			rs.row = func(y int, buf []byte) []byte {
				o := m.PixOffset(b.Min.X, b.Min.Y+y)
				s := m.Pix[o : o+4*w]
				d := buf[:3*w]
				for x := 0; x < w; x++ {
					d[3*x], d[3*x+1], d[3*x+2] = s[4*x], s[4*x+1], s[4*x+2]
				}
				return d
			}
		} else {
			rs.nc = 4
			rs.row = func(y int, buf []byte) []byte {
				o := m.PixOffset(b.Min.X, b.Min.Y+y)
				s := m.Pix[o : o+4*w]
				d := buf[:4*w]
				for x := 0; x < 4*w; x += 4 {
					premultiply(d[x:x+4:x+4], s[x], s[x+1], s[x+2], s[x+3])
				}
				return d
			}
		}
	case *image.YCbCr:
		rs.nc = 3
		rgb := ycbcrRows(m, b, w)
		rs.row = func(y int, buf []byte) []byte {
			d := buf[:3*w]
			rgb(y, d)
			return d
		}
	case *image.NYCbCrA:
		rs.nc = 4
		rgb := ycbcrRows(&m.YCbCr, b, w)
		rs.row = func(y int, buf []byte) []byte {
			ai := m.AOffset(b.Min.X, b.Min.Y+y)
			d := buf[:4*w]
			// Convert to RGB in the upper 3/4 of buf, then spread and premultiply.
			tmp := buf[w : 4*w]
			rgb(y, tmp)
			a := m.A[ai : ai+w]
			for x := 0; x < w; x++ {
				// Writes to d[4x:4x+4] never reach tmp[3x':] for x' > x.
				premultiply(d[4*x:4*x+4:4*x+4], tmp[3*x], tmp[3*x+1], tmp[3*x+2], a[x])
			}
			return d
		}
	case *image.Paletted:
		var lut [256][4]byte
		opaque := true
		for i := range lut {
			if i < len(m.Palette) {
				r, g, bb, a := m.Palette[i].RGBA()
				lut[i] = [4]byte{byte(r >> 8), byte(g >> 8), byte(bb >> 8), byte(a >> 8)}
				if a != 0xffff {
					opaque = false
				}
			} else {
				// Out-of-palette indices decode as transparent black in
				// image.Paletted.At; any use of them makes the image non-opaque.
				lut[i] = [4]byte{}
			}
		}
		if opaque && len(m.Palette) < 256 && palettedUsesMissing(m, len(m.Palette)) {
			opaque = false
		}
		// The table holds premultiplied RGBA: an opaque image takes the
		// first three bytes of each entry, any other all four.
		rs.nc = 4
		if opaque {
			rs.nc = 3
		}
		nc := rs.nc
		rs.row = func(y int, buf []byte) []byte {
			o := m.PixOffset(b.Min.X, b.Min.Y+y)
			d := buf[:nc*w]
			for x, p := range m.Pix[o : o+w] {
				copy(d[nc*x:nc*x+nc], lut[p][:nc])
			}
			return d
		}
	default:
		// Rare types (16-bit PNG, CMYK JPEG, ...): one conversion pass via
		// image/draw, then the RGBA fast path.
		c := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(c, c.Rect, img, b.Min, draw.Src)
		rs.nc, rs.direct = 4, true
		rs.row = func(y int, _ []byte) []byte {
			return c.Pix[y*c.Stride : y*c.Stride+4*w]
		}
	}
	return rs
}

// ycbcrRows returns what writes row y (0-based) of m's w visible columns
// from b as packed RGB into d (len 3*w).
func ycbcrRows(m *image.YCbCr, b image.Rectangle, w int) func(y int, d []byte) {
	cx := chromaX(m.SubsampleRatio, b.Min.X, m.Rect.Min.X, w)
	return func(y int, d []byte) {
		yy := b.Min.Y + y
		yi := m.YOffset(b.Min.X, yy)
		ci := m.COffset(m.Rect.Min.X, yy) // chroma row start; cx adds the column
		ycbcrRow(d, m.Y[yi:yi+w], m.Cb[ci:], m.Cr[ci:], cx)
	}
}

func nrgbaOpaque(m *image.NRGBA) bool {
	b := m.Rect
	for y := b.Min.Y; y < b.Max.Y; y++ {
		o := m.PixOffset(b.Min.X, y)
		row := m.Pix[o : o+4*b.Dx()]
		for x := 3; x < len(row); x += 4 {
			if row[x] != 0xff {
				return false
			}
		}
	}
	return true
}

func palettedUsesMissing(m *image.Paletted, n int) bool {
	b := m.Rect
	for y := b.Min.Y; y < b.Max.Y; y++ {
		o := m.PixOffset(b.Min.X, y)
		for _, p := range m.Pix[o : o+b.Dx()] {
			if int(p) >= n {
				return true
			}
		}
	}
	return false
}

// premultiply converts one non-premultiplied RGBA pixel to premultiplied,
// with the same rounding as color.NRGBA.RGBA followed by >>8.
func premultiply(d []byte, r, g, b, a byte) {
	switch a {
	case 0xff:
		d[0], d[1], d[2], d[3] = r, g, b, 0xff
	case 0:
		d[0], d[1], d[2], d[3] = 0, 0, 0, 0
	default:
		a16 := uint32(a) * 0x101
		d[0] = byte((uint32(r) * 0x101 * a16 / 0xffff) >> 8)
		d[1] = byte((uint32(g) * 0x101 * a16 / 0xffff) >> 8)
		d[2] = byte((uint32(b) * 0x101 * a16 / 0xffff) >> 8)
		d[3] = a
	}
}

// chromaX precomputes, for each of the w visible columns starting at absolute
// x0, the chroma column index relative to the chroma row start, matching
// image.YCbCr.COffset exactly for every subsample ratio.
func chromaX(r image.YCbCrSubsampleRatio, x0, rectMinX, w int) []int32 {
	cx := make([]int32, w)
	for i := range cx {
		x := x0 + i
		var c int
		switch r {
		case image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420:
			c = x/2 - rectMinX/2
		case image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
			c = x/4 - rectMinX/4
		default: // 444, 440
			c = x - rectMinX
		}
		cx[i] = int32(c)
	}
	return cx
}

// ycbcrRow converts one row to packed RGB with the exact integer arithmetic
// of color.YCbCrToRGB, so results match image/draw bit for bit.
func ycbcrRow(d, ys, cbs, crs []byte, cx []int32) {
	d = d[:3*len(ys)]
	cx = cx[:len(ys)]
	for x, y8 := range ys {
		c := cx[x]
		yy1 := int32(y8) * 0x10101
		cb1 := int32(cbs[c]) - 128
		cr1 := int32(crs[c]) - 128
		// Same values as color.YCbCrToRGB's ^(v>>31) trick, but branch-free.
		r := min(max((yy1+91881*cr1)>>16, 0), 255)
		g := min(max((yy1-22554*cb1-46802*cr1)>>16, 0), 255)
		b := min(max((yy1+116130*cb1)>>16, 0), 255)
		dd := d[3*x : 3*x+3 : 3*x+3]
		dd[0], dd[1], dd[2] = byte(r), byte(g), byte(b)
	}
}

// expandRow writes nc-channel samples as RGBA.
func expandRow(d, s []byte, nc int) {
	switch nc {
	case 4:
		copy(d, s)
	case 3:
		n := len(s) / 3
		d = d[:4*n]
		for x := 0; x < n; x++ {
			dd := d[4*x : 4*x+4 : 4*x+4]
			ss := s[3*x : 3*x+3 : 3*x+3]
			dd[0], dd[1], dd[2], dd[3] = ss[0], ss[1], ss[2], 0xff
		}
	case 1:
		d = d[:4*len(s)]
		for x, v := range s {
			dd := d[4*x : 4*x+4 : 4*x+4]
			dd[0], dd[1], dd[2], dd[3] = v, v, v, 0xff
		}
	}
}

// clamp8 rounds a filter accumulator back to a byte. With the triangle
// filter every weight is non-negative and they sum to 1<<wBits, so the value
// is always within 0..255 already; the branch-free clamp only guards against
// a future kernel with negative lobes (which vfilterRows' SWAR lanes would
// not support either).
func clamp8(v int32) byte {
	return byte(min(max(v>>wBits, 0), 255))
}

// hpass filters one source row horizontally into dst (len(k.start)*nc).
func hpass(dst, src []byte, k *kernel, nc int) {
	out := len(k.start)
	t := k.taps
	if nc == 1 {
		dst = dst[:out]
		switch t {
		case 1:
			for i, st := range k.start {
				dst[i] = src[st]
			}
		case 2:
			w := k.w[:2*out]
			for i, st := range k.start {
				o := int(st)
				s := src[o : o+2 : o+2]
				ww := w[2*i : 2*i+2 : 2*i+2]
				dst[i] = clamp8(wHalf + ww[0]*int32(s[0]) + ww[1]*int32(s[1]))
			}
		case 3:
			w := k.w[:3*out]
			for i, st := range k.start {
				o := int(st)
				s := src[o : o+3 : o+3]
				ww := w[3*i : 3*i+3 : 3*i+3]
				dst[i] = clamp8(wHalf + ww[0]*int32(s[0]) + ww[1]*int32(s[1]) + ww[2]*int32(s[2]))
			}
		case 4:
			w := k.w[:4*out]
			for i, st := range k.start {
				o := int(st)
				s := src[o : o+4 : o+4]
				ww := w[4*i : 4*i+4 : 4*i+4]
				dst[i] = clamp8(wHalf + ww[0]*int32(s[0]) + ww[1]*int32(s[1]) + ww[2]*int32(s[2]) + ww[3]*int32(s[3]))
			}
		default:
			for i, st := range k.start {
				s := src[st : int(st)+t]
				acc := int32(wHalf)
				for j, w := range k.w[i*t : (i+1)*t] {
					acc += w * int32(s[j])
				}
				dst[i] = clamp8(acc)
			}
		}
		return
	}
	switch nc {
	case 3:
		dst = dst[:3*out]
		for i, st := range k.start {
			s := src[3*int(st) : 3*(int(st)+t)]
			r, g, b := int32(wHalf), int32(wHalf), int32(wHalf)
			for j, w := range k.w[i*t : (i+1)*t] {
				p := s[3*j : 3*j+3 : 3*j+3]
				r += w * int32(p[0])
				g += w * int32(p[1])
				b += w * int32(p[2])
			}
			d := dst[3*i : 3*i+3 : 3*i+3]
			d[0], d[1], d[2] = clamp8(r), clamp8(g), clamp8(b)
		}
	case 4:
		dst = dst[:4*out]
		for i, st := range k.start {
			s := src[4*int(st) : 4*(int(st)+t)]
			r, g, b, a := int32(wHalf), int32(wHalf), int32(wHalf), int32(wHalf)
			for j, w := range k.w[i*t : (i+1)*t] {
				p := s[4*j : 4*j+4 : 4*j+4]
				r += w * int32(p[0])
				g += w * int32(p[1])
				b += w * int32(p[2])
				a += w * int32(p[3])
			}
			d := dst[4*i : 4*i+4 : 4*i+4]
			d[0], d[1], d[2], d[3] = clamp8(r), clamp8(g), clamp8(b), clamp8(a)
		}
	}
}

// ring keeps the last few prepared source rows (horizontally filtered, or
// just colour-converted when the vertical pass runs first), so the passes
// stream through the image with a working set of a few KB instead of a full
// intermediate image.
type ring struct {
	rows [][]byte
	next int // next source row to filter
}

func newRing(n, rowLen int) *ring {
	r := &ring{rows: make([][]byte, n)}
	buf := make([]byte, n*rowLen)
	for i := range r.rows {
		r.rows[i] = buf[i*rowLen : (i+1)*rowLen : (i+1)*rowLen]
	}
	return r
}

// ensure makes source rows [s, e) available, calling fill for rows not yet
// prepared. Rows are requested in non-decreasing order of s.
func (r *ring) ensure(s, e int, fill func(y int, dst []byte)) {
	r.next = max(r.next, s)
	for ; r.next < e; r.next++ {
		fill(r.next, r.rows[r.next%len(r.rows)])
	}
}

func (r *ring) row(y int) []byte { return r.rows[y%len(r.rows)] }

// rowSet gives vfilter its input rows: a ring of filtered rows, or the rows
// of a source plane directly when the vertical pass runs first.
type rowSet interface{ row(y int) []byte }

// planeRows exposes the visible rows of one 8-bit plane.
type planeRows struct {
	pix         []byte
	off, stride int
	w           int
}

func (p *planeRows) row(y int) []byte {
	o := p.off + y*p.stride
	return p.pix[o : o+p.w : o+p.w]
}

// vfilter computes output row i of a vertical pass over the rows of rg, as
// len(out) bytes, using rowsBuf (cap >= k.taps) as scratch. It returns the
// input row itself for single-tap kernels.
func vfilter(out []byte, rg rowSet, k *kernel, i int, rowsBuf [][]byte) []byte {
	t := k.taps
	s := int(k.start[i])
	if t == 1 {
		return rg.row(s)
	}
	rows := rowsBuf[:t]
	for j := range rows {
		rows[j] = rg.row(s + j)[:len(out)]
	}
	vfilterRows(out, rows, k.w[i*t:(i+1)*t])
	return out
}

// lanes8 selects bytes 0 and 4 of a uint64 into two 32-bit lanes.
const lanes8 = 0x000000ff_000000ff

// vfilterRows computes out[x] = sum_j ws[j]*rows[j][x] (rounded, >> wBits)
// eight bytes at a time with SWAR arithmetic: a 64-bit load is split into
// four words holding two bytes each in separate 32-bit lanes, so one 64-bit
// multiply filters two samples. The lanes cannot carry into each other:
// weights are non-negative and sum to 1<<wBits, so a lane never exceeds
// 255<<wBits + wHalf < 1<<24. Results are bit-identical to the scalar form.
func vfilterRows(out []byte, rows [][]byte, ws []int32) {
	n := len(out)
	ws = ws[:len(rows)]
	const half2 = wHalf | wHalf<<32
	x := 0
	for ; x+8 <= n; x += 8 {
		a0, a1, a2, a3 := uint64(half2), uint64(half2), uint64(half2), uint64(half2)
		for j, r := range rows {
			u := binary.LittleEndian.Uint64(r[x : x+8])
			w := uint64(ws[j])
			a0 += w * (u & lanes8)
			a1 += w * (u >> 8 & lanes8)
			a2 += w * (u >> 16 & lanes8)
			a3 += w * (u >> 24 & lanes8)
		}
		v := a0>>wBits&lanes8 | (a1>>wBits&lanes8)<<8 | (a2>>wBits&lanes8)<<16 | (a3>>wBits&lanes8)<<24
		binary.LittleEndian.PutUint64(out[x:x+8], v)
	}
	for ; x < n; x++ {
		acc := int32(wHalf)
		for j, r := range rows {
			acc += ws[j] * int32(r[x])
		}
		out[x] = clamp8(acc)
	}
}

// parallelThreshold is the source pixel count above which ResizeShort splits
// work across goroutines; below it goroutine overhead outweighs the gain
// (and the server already runs requests concurrently).
const parallelThreshold = 1 << 20

// parallelRows runs f over [0, n) split into up to workers contiguous bands.
func parallelRows(n, workers int, f func(from, to int)) {
	if workers <= 1 || n < 2 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		a, b := n*w/workers, n*(w+1)/workers
		if a == b {
			continue
		}
		wg.Go(func() { f(a, b) })
	}
	wg.Wait()
}

// resize scales src to exactly dw x dh using up to workers goroutines.
func resize(src image.Image, dw, dh, workers int) *image.RGBA {
	if m, ok := src.(*image.YCbCr); ok && m.Rect.Min.X >= 0 && m.Rect.Min.Y >= 0 {
		return resizeYCbCr(m, dw, dh, workers)
	}
	rs := newRowSource(src)
	sw, sh, nc := rs.w, rs.h, rs.nc
	kx := makeKernel(sw, dw)
	ky := makeKernel(sh, dh)
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	rowLen := dw * nc
	// Same pass-ordering rule as planeStepper.
	vFirst := 2*sh*dw+dh*dw > dh*sw+2*dh*dw
	parallelRows(dh, workers, func(from, to int) {
		rowsBuf := make([][]byte, ky.taps)
		tmp := make([]byte, rowLen)
		if !vFirst {
			buf := make([]byte, sw*nc)
			rg := newRing(ky.taps, rowLen)
			fill := func(y int, d []byte) { hpass(d, rs.row(y, buf), &kx, nc) }
			for i := from; i < to; i++ {
				s := int(ky.start[i])
				rg.ensure(s, s+ky.taps, fill)
				expandRow(dst.Pix[i*dst.Stride:(i+1)*dst.Stride], vfilter(tmp, rg, &ky, i, rowsBuf), nc)
			}
			return
		}
		// Vertical first: read source rows in place when possible, else
		// convert each needed source row once into a ring.
		var rows rowSet = directRows{rs}
		var rg *ring
		if !rs.direct {
			rg = newRing(ky.taps, sw*nc)
			rows = rg
		}
		fill := func(y int, d []byte) { rs.row(y, d) }
		vtmp := make([]byte, sw*nc)
		for i := from; i < to; i++ {
			if rg != nil {
				s := int(ky.start[i])
				rg.ensure(s, s+ky.taps, fill)
			}
			hpass(tmp, vfilter(vtmp, rows, &ky, i, rowsBuf), &kx, nc)
			expandRow(dst.Pix[i*dst.Stride:(i+1)*dst.Stride], tmp, nc)
		}
	})
	return dst
}

// directRows adapts a direct rowSource to rowSet.
type directRows struct{ rs rowSource }

func (d directRows) row(y int) []byte { return d.rs.row(y, nil) }

// ycbcrPlane is one plane of a YCbCr image prepared for resampling: its
// visible rows and the kernels mapping them onto the output grid.
type ycbcrPlane struct {
	src    planeRows
	h      int
	kx, ky kernel
}

// floorDiv is integer division rounding towards minus infinity.
func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// chromaPlane describes the chroma samples covering luma columns
// [lo, lo+n) (absolute coordinates) for subsampling factor f along one axis,
// and builds the kernel mapping them to out samples. The sampling grid keeps
// chroma sample j centred on the luma pixels it covers (JFIF centred siting),
// so upsampling interpolates like libjpeg's "fancy upsampling".
func chromaAxis(lo, n, rectLo, f, out int) (first, count int, k kernel) {
	first = floorDiv(lo, f) - floorDiv(rectLo, f) // index in the plane relative to its origin
	count = floorDiv(lo+n-1, f) - floorDiv(lo, f) + 1
	scale := float64(n) / float64(out) / float64(f)
	offset := float64(lo-floorDiv(lo, f)*f) / float64(f)
	return first, count, makeKernelAt(count, out, scale, offset)
}

// resizeYCbCr resamples the Y, Cb and Cr planes at their native resolution
// and converts to RGB only for output pixels. For 4:2:0 JPEGs that is half
// the filtering work of converting first, and chroma is interpolated rather
// than nearest-neighbour upsampled.
func resizeYCbCr(m *image.YCbCr, dw, dh, workers int) *image.RGBA {
	b := m.Rect
	sw, sh := b.Dx(), b.Dy()
	fx, fy := subsampleFactors(m.SubsampleRatio)
	yp := ycbcrPlane{
		src: planeRows{pix: m.Y, off: 0, stride: m.YStride, w: sw}, h: sh,
		kx: makeKernel(sw, dw), ky: makeKernel(sh, dh),
	}
	// m.Y and m.Cb start at the samples of Rect.Min (sub-images included);
	// chroma columns/rows follow image.YCbCr.COffset. Cb and Cr share their
	// kernels, so they are filtered together, two samples per multiply, into
	// interleaved CbCr rows.
	cx0, cw, ckx := chromaAxis(b.Min.X, sw, b.Min.X, fx, dw)
	cy0, ch, cky := chromaAxis(b.Min.Y, sh, b.Min.Y, fy, dh)
	cp := ycbcrPlane{
		src: planeRows{pix: m.Cb, off: cy0*m.CStride + cx0, stride: m.CStride, w: cw}, h: ch,
		kx: ckx, ky: cky,
	}
	crp := planeRows{pix: m.Cr, off: cy0*m.CStride + cx0, stride: m.CStride, w: cw}

	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	parallelRows(dh, workers, func(from, to int) {
		yStep := planeStepper(&yp, nil, dw, dh)
		cStep := planeStepper(&cp, &crp, dw, dh)
		for i := from; i < to; i++ {
			ycbcrToRGBA(dst.Pix[i*dst.Stride:(i+1)*dst.Stride], yStep(i), cStep(i))
		}
	})
	return dst
}

// planeStepper returns a function producing output row i (in increasing
// order) of plane pl, or of the interleaved pair (pl, pair) when pair is
// non-nil (pair shares pl's geometry and kernels). Filtering horizontally
// costs about twice as much per output sample as vertically, so the passes
// are ordered to do less work: shrinking vertically first pays off for
// typical photo downscales, horizontal-first for upscales.
func planeStepper(pl *ycbcrPlane, pair *planeRows, dw, dh int) func(i int) []byte {
	nc := 1
	if pair != nil {
		nc = 2
	}
	hp := func(d []byte, a, b []byte) {
		if pair != nil {
			hpassPair(d, a, b, &pl.kx)
		} else {
			hpass(d, a, &pl.kx, 1)
		}
	}
	out := make([]byte, nc*dw)
	rowsBuf := make([][]byte, pl.ky.taps)
	if 2*pl.h*dw+dh*dw <= dh*pl.src.w+2*dh*dw {
		rg := newRing(pl.ky.taps, nc*dw)
		fill := func(y int, d []byte) {
			if pair != nil {
				hp(d, pl.src.row(y), pair.row(y))
			} else {
				hp(d, pl.src.row(y), nil)
			}
		}
		return func(i int) []byte {
			s := int(pl.ky.start[i])
			rg.ensure(s, s+pl.ky.taps, fill)
			return vfilter(out, rg, &pl.ky, i, rowsBuf)
		}
	}
	tmpA := make([]byte, pl.src.w)
	tmpB := make([]byte, pl.src.w)
	return func(i int) []byte {
		a := vfilter(tmpA, &pl.src, &pl.ky, i, rowsBuf)
		var b []byte
		if pair != nil {
			b = vfilter(tmpB, pair, &pl.ky, i, rowsBuf)
		}
		hp(out, a, b)
		return out
	}
}

// hpassPair filters rows a and b with the same kernel in one pass, writing
// interleaved output (a0 b0 a1 b1 ...). The two samples ride in separate
// 32-bit lanes of one uint64 (see vfilterRows for why lanes cannot carry).
func hpassPair(dst, a, b []byte, k *kernel) {
	out := len(k.start)
	t := k.taps
	dst = dst[:2*out]
	const half2 = wHalf | wHalf<<32
	if t == 2 {
		w := k.w[:2*out]
		for i, st := range k.start {
			o := int(st)
			sa, sb := a[o:o+2:o+2], b[o:o+2:o+2]
			ww := w[2*i : 2*i+2 : 2*i+2]
			u := half2 + uint64(ww[0])*(uint64(sa[0])|uint64(sb[0])<<32) +
				uint64(ww[1])*(uint64(sa[1])|uint64(sb[1])<<32)
			d := dst[2*i : 2*i+2 : 2*i+2]
			d[0], d[1] = byte(u>>wBits), byte(u>>(32+wBits))
		}
		return
	}
	for i, st := range k.start {
		o := int(st)
		sa, sb := a[o:o+t], b[o:o+t]
		u := uint64(half2)
		for j, w := range k.w[i*t : (i+1)*t] {
			u += uint64(w) * (uint64(sa[j]) | uint64(sb[j])<<32)
		}
		d := dst[2*i : 2*i+2 : 2*i+2]
		d[0], d[1] = byte(u>>wBits), byte(u>>(32+wBits))
	}
}

// ycbcrToRGBA converts a Y row and a co-sited interleaved CbCr row to RGBA
// with the integer arithmetic of color.YCbCrToRGB.
func ycbcrToRGBA(d, ys, cbcr []byte) {
	n := len(ys)
	d, cbcr = d[:4*n], cbcr[:2*n]
	for x := range n {
		yy1 := int32(ys[x]) * 0x10101
		cb1 := int32(cbcr[2*x]) - 128
		cr1 := int32(cbcr[2*x+1]) - 128
		r := yy1 + 91881*cr1
		g := yy1 - 22554*cb1 - 46802*cr1
		b := yy1 + 116130*cb1
		var px uint32
		if uint32(r|g|b)&0xff000000 == 0 {
			// In gamut (the common case): no clamping needed.
			px = uint32(r)>>16 | uint32(g)>>16<<8 | uint32(b)>>16<<16 | 0xff000000
		} else {
			// Same values as color.YCbCrToRGB's ^(v>>31) trick.
			px = uint32(min(max(r>>16, 0), 255)) | uint32(min(max(g>>16, 0), 255))<<8 |
				uint32(min(max(b>>16, 0), 255))<<16 | 0xff000000
		}
		binary.LittleEndian.PutUint32(d[4*x:4*x+4], px)
	}
}
