package imageio

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strings"

	"golang.org/x/image/webp"
)

// Limits guards against decompression bombs and oversized uploads. A zero
// field means "no limit" for that field, so the zero value disables both.
type Limits struct {
	MaxBytes  int64 // maximum encoded size in bytes
	MaxPixels int64 // maximum width*height, checked from the header before decoding
}

// DefaultLimits is sized for product photos: well above any phone camera
// (~12-48 MP, a few MiB) while keeping the worst-case decode buffer of a
// single request around 200 MiB (50 MP * 4 bytes).
func DefaultLimits() Limits {
	return Limits{MaxBytes: 32 << 20, MaxPixels: 50_000_000}
}

// format is a supported container format detected from magic bytes.
type format int

const (
	fmtUnknown format = iota
	fmtJPEG
	fmtPNG
	fmtGIF
	fmtWebP
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
		return fmtUnknown, "tiff"
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		brand := string(b[8:12])
		switch {
		case strings.HasPrefix(brand, "avi"):
			return fmtUnknown, "avif"
		case strings.HasPrefix(brand, "hei"), strings.HasPrefix(brand, "hev"), brand == "mif1", brand == "msf1":
			return fmtUnknown, "heif"
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
// orientation applied), PNG, GIF (first frame) and WebP. The concrete type is
// whatever the codec produces (*image.YCbCr, *image.NRGBA, *image.Paletted,
// ...) or *image.RGBA / *image.Gray when a rotation was applied; ResizeShort
// has fast paths for all the common ones. Errors wrap ErrEmpty,
// ErrUnsupported, ErrTooLarge, ErrCorrupt or ErrTruncated.
func Decode(data []byte, lim Limits) (img image.Image, err error) {
	if len(data) == 0 {
		return nil, ErrEmpty
	}
	if lim.MaxBytes > 0 && int64(len(data)) > lim.MaxBytes {
		return nil, newErr(ErrTooLarge, "", nil, "%d bytes exceeds limit of %d", len(data), lim.MaxBytes)
	}
	f, other := sniff(data)
	if f == fmtUnknown {
		if p := signaturePrefix(data); p != "" {
			return nil, newErr(ErrTruncated, p, nil, "only %d bytes", len(data))
		}
		if other != "" {
			return nil, newErr(ErrUnsupported, other, nil, "")
		}
		return nil, newErr(ErrUnsupported, "", nil, "unrecognised signature % x", data[:min(len(data), 8)])
	}
	name := f.String()

	// The stdlib and x/image decoders are robust, but a panic on hostile input
	// must not take the server down; report it as corrupt data instead.
	defer func() {
		if r := recover(); r != nil {
			img = nil
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
	}
	if err != nil {
		return nil, classify(name, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, newErr(ErrCorrupt, name, nil, "invalid dimensions %dx%d", cfg.Width, cfg.Height)
	}
	if lim.MaxPixels > 0 && int64(cfg.Width)*int64(cfg.Height) > lim.MaxPixels {
		return nil, newErr(ErrTooLarge, name, nil, "%dx%d pixels exceeds limit of %d", cfg.Width, cfg.Height, lim.MaxPixels)
	}

	switch f {
	case fmtJPEG:
		img, err = jpeg.Decode(bytes.NewReader(data))
	case fmtPNG:
		img, err = png.Decode(bytes.NewReader(data))
	case fmtGIF:
		img, err = gif.Decode(bytes.NewReader(data))
	case fmtWebP:
		img, err = webp.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, classify(name, err)
	}
	if b := img.Bounds(); b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, newErr(ErrCorrupt, name, nil, "decoded to empty image")
	}
	if f == fmtJPEG {
		if o := jpegOrientation(data); o > 1 {
			img = applyOrientation(img, o)
		}
	}
	return img, nil
}

// classify maps a codec error to our sentinels. Codecs signal truncation in
// several ways (io.ErrUnexpectedEOF, jpeg's "short Huffman data", gif's
// "not enough image data").
func classify(format string, err error) error {
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
