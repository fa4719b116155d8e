package imageio

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strings"

	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// Limits guards against decompression bombs and oversized uploads. A zero
// field means "no limit" for that field, so the zero value disables both.
type Limits struct {
	MaxBytes  int64 // maximum encoded size in bytes
	MaxPixels int64 // maximum width*height, checked from the header before decoding
	// MaxDecodeBytes bounds the memory a decode allocates (Info.DecodeBytes:
	// pixels times the decoder's bytes per pixel), so a 16-bit RGBA PNG
	// counts eight times a greyscale one of the same size.
	MaxDecodeBytes int64
}

// DefaultLimits is sized for product photos: well above any phone camera
// (~12-48 MP, a few MiB). A 50 MP 8-bit photo needs 200-550 MiB to decode
// at full size, a 50 MP 16-bit RGBA PNG 600 MiB; 768 MiB admits all of them.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 32 << 20, MaxPixels: 50_000_000, MaxDecodeBytes: 768 << 20}
}

// Info is what Probe reads from an image's header, before decoding.
type Info struct {
	Format        string // "jpeg", "png", "heif", ...
	Width, Height int    // as stored, before any orientation
	// DecodeBytes estimates the memory DecodeAtLeast allocates for it and
	// the describer's first conversion of it: the decoded pixels at the
	// scale DecodeAtLeast will use, times bytes per pixel of the decoder's
	// output (1 for grey, 1.5 for 4:2:0 JPEG, 8 for 16-bit RGBA), plus a
	// rotated copy, a conversion to 8-bit RGBA for types ResizeShort has no
	// fast path for, and libheif's own planes and output.
	DecodeBytes int64
}

// format is a supported container format detected from magic bytes.
type format int

const (
	fmtUnknown format = iota
	fmtJPEG
	fmtPNG
	fmtGIF
	fmtWebP
	fmtHEIF // HEIC and other HEIF, through libheif
	fmtAVIF // through libheif
	fmtTIFF
)

func (f format) String() string {
	switch f {
	case fmtJPEG:
		return "jpeg"
	case fmtPNG:
		return "png"
	case fmtGIF:
		return "gif"
	case fmtWebP:
		return "webp"
	case fmtHEIF:
		return "heif"
	case fmtAVIF:
		return "avif"
	case fmtTIFF:
		return "tiff"
	}
	return ""
}

// sniff identifies the format by magic bytes. It does not consult the global
// image.RegisterFormat table, so other packages importing extra decoders
// (bmp, tiff) cannot silently widen what uploads we accept. For known but
// unsupported formats it returns their name so the error can say what it was.
func sniff(b []byte) (format, string) {
	hasPrefix := func(p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }
	switch {
	case hasPrefix("\xff\xd8\xff"):
		return fmtJPEG, ""
	case hasPrefix("\x89PNG\r\n\x1a\n"):
		return fmtPNG, ""
	case hasPrefix("GIF87a"), hasPrefix("GIF89a"):
		return fmtGIF, ""
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return fmtWebP, ""
	case hasPrefix("BM"):
		return fmtUnknown, "bmp"
	case hasPrefix("II*\x00"), hasPrefix("MM\x00*"):
		return fmtTIFF, ""
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		brand := string(b[8:12])
		switch {
		case strings.HasPrefix(brand, "avi"):
			return fmtAVIF, ""
		case strings.HasPrefix(brand, "hei"), strings.HasPrefix(brand, "hev"), brand == "mif1", brand == "msf1":
			return fmtHEIF, ""
		}
		return fmtUnknown, "iso-bmff (" + strings.TrimSpace(brand) + ")"
	case hasPrefix("\xff\x0a"), hasPrefix("\x00\x00\x00\x0cJXL \r\n\x87\n"):
		return fmtUnknown, "jpeg-xl"
	case hasPrefix("8BPS"):
		return fmtUnknown, "psd"
	case hasPrefix("%PDF"):
		return fmtUnknown, "pdf"
	case hasPrefix("\x00\x00\x01\x00"):
		return fmtUnknown, "ico"
	case hasPrefix("\x00\x00\x00\x0cjP  "):
		return fmtUnknown, "jpeg-2000"
	}
	t := bytes.TrimLeft(b[:min(len(b), 512)], " \t\r\n\ufeff")
	if bytes.HasPrefix(t, []byte("<svg")) || bytes.HasPrefix(t, []byte("<?xml")) {
		return fmtUnknown, "svg/xml"
	}
	return fmtUnknown, ""
}

// signaturePrefix reports which supported format data could be the start
// of, when it is shorter than that format's signature.
func signaturePrefix(b []byte) string {
	for _, s := range []struct{ sig, name string }{
		{"\xff\xd8\xff", "jpeg"}, {"\x89PNG\r\n\x1a\n", "png"}, {"GIF87a", "gif"}, {"GIF89a", "gif"}, {"RIFF", "webp"},
	} {
		if len(b) < len(s.sig) && string(b) == s.sig[:len(b)] {
			return s.name
		}
	}
	if len(b) < 12 && len(b) >= 4 && string(b[:4]) == "RIFF" {
		return "webp"
	}
	return ""
}

// Decode turns an uploaded blob into an upright image, refusing anything that
// would be expensive to even try (MaxBytes, then MaxPixels from the header)
// before the pixel buffer is allocated. Supported: JPEG (with EXIF
// orientation applied), PNG, GIF (first frame), WebP, TIFF and, in cgo
// builds, HEIC/HEIF and AVIF through libheif (its rotation and mirroring
// applied; 10-bit reduced to 8). The concrete type is
// whatever the codec produces (*image.YCbCr, *image.NRGBA, *image.Paletted,
// ...) or *image.RGBA / *image.Gray when a rotation was applied; ResizeShort
// has fast paths for all the common ones. Errors wrap ErrEmpty,
// ErrUnsupported, ErrTooLarge, ErrCorrupt or ErrTruncated.
func Decode(data []byte, lim Limits) (image.Image, error) {
	return DecodeAtLeast(data, lim, 0)
}

// DecodeAtLeast is Decode for a consumer that shrinks the image until its
// short side is minShort: where the format allows it, it decodes fewer
// pixels, never fewer than minShort on the short side. JPEGs are scaled in
// the DCT domain by libjpeg-turbo (the smallest of 1/8, 2/8, ... 8/8 that
// covers minShort; a 12 MP photo for a 374-pixel view decodes at 1/8 in a
// tenth of the full decode's time); builds without cgo, and other formats,
// decode at full size. minShort <= 0 means full size, through the same
// decoder as Decode so that both agree.
func DecodeAtLeast(data []byte, lim Limits, minShort int) (img image.Image, err error) {
	h, err := probe(data, lim)
	if err != nil {
		return nil, err
	}
	if err := h.checkMemory(data, lim, minShort); err != nil {
		return nil, err
	}
	name := h.format.String()

	// The stdlib and x/image decoders are robust, but a panic on hostile input
	// must not take the server down; report it as corrupt data instead.
	defer func() {
		if r := recover(); r != nil {
			img = nil
			err = newErr(ErrCorrupt, name, nil, "decoder panic: %v", r)
		}
	}()

	switch h.format {
	case fmtJPEG:
		if minShort > 0 && nativeJPEG {
			var ok bool
			img, ok, err = decodeJPEGScaled(data, h.cfg, jpegScale(h.cfg.Width, h.cfg.Height, minShort))
			if ok {
				break
			}
		}
		img, err = jpeg.Decode(bytes.NewReader(data))
	case fmtPNG:
		img, err = png.Decode(bytes.NewReader(data))
	case fmtGIF:
		img, err = gif.Decode(bytes.NewReader(data))
	case fmtWebP:
		if minShort > 0 && nativeWebP {
			img, err = decodeWebPScaled(data, h.cfg, minShort)
			break
		}
		img, err = webp.Decode(bytes.NewReader(data))
	case fmtHEIF, fmtAVIF:
		img, err = decodeHEIF(data, name)
	case fmtTIFF:
		img, err = tiff.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, classify(name, err)
	}
	if b := img.Bounds(); b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, newErr(ErrCorrupt, name, nil, "decoded to empty image")
	}
	if h.format == fmtJPEG {
		if o := jpegOrientation(data); o > 1 {
			img = applyOrientation(img, o)
		}
	}
	return img, nil
}

// Probe reads the header: format, size and the memory DecodeAtLeast(data,
// lim, minShort) would allocate, enforcing every limit Decode does (so a
// server can refuse or defer an upload before allocating anything).
func Probe(data []byte, lim Limits, minShort int) (Info, error) {
	h, err := probe(data, lim)
	if err != nil {
		return Info{}, err
	}
	if err := h.checkMemory(data, lim, minShort); err != nil {
		return Info{}, err
	}
	return h.info(data, minShort), nil
}

func (h header) checkMemory(data []byte, lim Limits, minShort int) error {
	if lim.MaxDecodeBytes <= 0 {
		return nil
	}
	if n := h.info(data, minShort).DecodeBytes; n > lim.MaxDecodeBytes {
		return newErr(ErrTooLarge, h.format.String(), nil, "%dx%d pixels need %d MiB to decode, over the limit of %d MiB",
			h.cfg.Width, h.cfg.Height, n>>20, lim.MaxDecodeBytes>>20)
	}
	return nil
}

// info computes Info.DecodeBytes from the header (see there).
func (h header) info(data []byte, minShort int) Info {
	w, ht := h.cfg.Width, h.cfg.Height
	var perPixel float64 // bytes per decoded pixel
	extra := 0.0         // more bytes per pixel: conversions, codec planes
	switch h.format {
	case fmtJPEG:
		perPixel = 3 // 4:4:4 YCbCr; 4:2:0 needs half of it
		switch h.cfg.ColorModel {
		case color.GrayModel:
			perPixel = 1
		case color.CMYKModel:
			perPixel, extra = 4, 4 // image/jpeg, full size, then converted
		}
		if minShort > 0 && nativeJPEG && h.cfg.ColorModel != color.CMYKModel {
			w, ht = scaledSize(w, ht, jpegScale(w, ht, minShort))
		}
		if jpegOrientation(data) > 1 {
			extra += perPixel
		}
	case fmtHEIF, fmtAVIF:
		perPixel, extra = 4, 4+3 // our RGBA copy, libheif's RGBA, its decoded planes
	case fmtGIF:
		perPixel = 1
	case fmtWebP:
		perPixel = 4 // NYCbCrA from x/image/webp is 2.5; libwebp's scaled RGBA 4
		if minShort > 0 && nativeWebP {
			w, ht = scaledToShort(w, ht, minShort)
		}
	default: // PNG, WebP, TIFF: by the colour model the header announces
		switch h.cfg.ColorModel {
		case color.GrayModel, color.AlphaModel:
			perPixel = 1
		case color.Gray16Model, color.Alpha16Model:
			perPixel, extra = 2, 4
		case color.RGBA64Model, color.NRGBA64Model:
			perPixel, extra = 8, 4
		case color.YCbCrModel, color.NYCbCrAModel:
			perPixel = 2.5
		default:
			if _, ok := h.cfg.ColorModel.(color.Palette); ok {
				perPixel = 1
			} else {
				perPixel = 4
			}
		}
	}
	px := float64(w) * float64(ht)
	return Info{Format: h.format.String(), Width: h.cfg.Width, Height: h.cfg.Height, DecodeBytes: int64(px*(perPixel+extra)) + 64<<10}
}

// scaledToShort is the size with short side minShort, the aspect kept
// (rounded up), or w x h when that is already no larger.
func scaledToShort(w, h, minShort int) (int, int) {
	short := min(w, h)
	if minShort <= 0 || short <= minShort {
		return w, h
	}
	return (w*minShort + short - 1) / short, (h*minShort + short - 1) / short
}

// header is what probe learns before any pixel is decoded.
type header struct {
	format format
	cfg    image.Config
}

// probe sniffs the format and reads the header, enforcing MaxBytes and
// MaxPixels; it allocates nothing in proportion to the image.
func probe(data []byte, lim Limits) (h header, err error) {
	if len(data) == 0 {
		return h, ErrEmpty
	}
	if lim.MaxBytes > 0 && int64(len(data)) > lim.MaxBytes {
		return h, newErr(ErrTooLarge, "", nil, "%d bytes exceeds limit of %d", len(data), lim.MaxBytes)
	}
	f, other := sniff(data)
	if f == fmtUnknown {
		if p := signaturePrefix(data); p != "" {
			return h, newErr(ErrTruncated, p, nil, "only %d bytes", len(data))
		}
		if other != "" {
			return h, newErr(ErrUnsupported, other, nil, "")
		}
		return h, newErr(ErrUnsupported, "", nil, "unrecognised signature % x", data[:min(len(data), 8)])
	}
	name := f.String()
	defer func() {
		if r := recover(); r != nil {
			err = newErr(ErrCorrupt, name, nil, "decoder panic: %v", r)
		}
	}()
	var cfg image.Config
	switch f {
	case fmtJPEG:
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(data))
	case fmtPNG:
		cfg, err = png.DecodeConfig(bytes.NewReader(data))
	case fmtGIF:
		cfg, err = gif.DecodeConfig(bytes.NewReader(data))
	case fmtWebP:
		cfg, err = webp.DecodeConfig(bytes.NewReader(data))
	case fmtHEIF, fmtAVIF:
		cfg, err = heifConfig(data, name)
	case fmtTIFF:
		cfg, err = tiff.DecodeConfig(bytes.NewReader(data))
	}
	if err != nil {
		return h, classify(name, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return h, newErr(ErrCorrupt, name, nil, "invalid dimensions %dx%d", cfg.Width, cfg.Height)
	}
	if lim.MaxPixels > 0 && int64(cfg.Width)*int64(cfg.Height) > lim.MaxPixels {
		return h, newErr(ErrTooLarge, name, nil, "%dx%d pixels exceeds limit of %d", cfg.Width, cfg.Height, lim.MaxPixels)
	}
	return header{format: f, cfg: cfg}, nil
}

// classify maps a codec error to our sentinels. Codecs signal truncation in
// several ways (io.ErrUnexpectedEOF, jpeg's "short Huffman data", gif's
// "not enough image data").
func classify(format string, err error) error {
	if de := (*decodeError)(nil); errors.As(err, &de) {
		return err // already classified (the cgo decoders)
	}
	var (
		jU jpeg.UnsupportedError
		pU png.UnsupportedError
	)
	switch {
	case errors.As(err, &jU), errors.As(err, &pU):
		return newErr(ErrUnsupported, format, err, "")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newErr(ErrTruncated, format, err, "")
	}
	msg := err.Error()
	if strings.Contains(msg, "short Huffman data") || strings.Contains(msg, "unexpected EOF") ||
		strings.Contains(msg, "not enough image data") || strings.Contains(msg, "not enough pixel data") {
		return newErr(ErrTruncated, format, err, "")
	}
	return newErr(ErrCorrupt, format, err, "")
}

// ReadFile is Decode for files, used by batch indexing: ReadBytes, then
// Decode, naming the file in every error.
func ReadFile(path string, lim Limits) (image.Image, error) {
	data, err := ReadBytes(path, lim.MaxBytes)
	if err != nil {
		return nil, err
	}
	img, err := Decode(data, lim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}
