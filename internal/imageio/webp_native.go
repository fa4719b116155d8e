//go:build cgo && !nonative

package imageio

/*
#cgo pkg-config: libwebp
#include <string.h>
#include <webp/decode.h>

// pw_decode decodes data scaled to w x h (libwebp's rescaler runs while
// decoding, so no full-size buffer is made) into out, 4 bytes a pixel,
// non-premultiplied RGBA.
static int pw_decode(const uint8_t *data, size_t n, int w, int h, uint8_t *out) {
	WebPDecoderConfig c;
	if (!WebPInitDecoderConfig(&c)) return -1;
	c.options.use_scaling = 1;
	c.options.scaled_width = w;
	c.options.scaled_height = h;
	c.output.colorspace = MODE_RGBA;
	c.output.is_external_memory = 1;
	c.output.u.RGBA.rgba = out;
	c.output.u.RGBA.stride = w * 4;
	c.output.u.RGBA.size = (size_t)w * h * 4;
	int st = WebPDecode(data, n, &c);
	WebPFreeDecBuffer(&c.output);
	return st;
}

static int pw_has_alpha(const uint8_t *data, size_t n) {
	WebPBitstreamFeatures f;
	if (WebPGetFeatures(data, n, &f) != VP8_STATUS_OK) return 1; // NRGBA is always right
	return f.has_alpha;
}
*/
import "C"

import (
	"image"
	"unsafe"
)

// nativeWebP reports whether WebP decodes can shrink while decoding
// (libwebp's rescaler through cgo); the pure-Go twin, x/image/webp, decodes
// at full size.
const nativeWebP = true

// decodeWebPScaled decodes to the smallest size whose short side is at
// least minShort, as *image.NRGBA (alpha) or *image.RGBA (opaque).
func decodeWebPScaled(data []byte, cfg image.Config, minShort int) (image.Image, error) {
	if len(data) == 0 {
		return nil, ErrEmpty
	}
	w, h := scaledToShort(cfg.Width, cfg.Height, minShort)
	r := image.Rect(0, 0, w, h)
	var pix []byte
	var img image.Image
	p := (*C.uint8_t)(unsafe.Pointer(&data[0]))
	if C.pw_has_alpha(p, C.size_t(len(data))) != 0 {
		m := image.NewNRGBA(r)
		pix, img = m.Pix, m
	} else {
		m := image.NewRGBA(r)
		pix, img = m.Pix, m
	}
	st := C.pw_decode((*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data)), C.int(w), C.int(h), (*C.uint8_t)(unsafe.Pointer(&pix[0])))
	switch st {
	case C.VP8_STATUS_OK:
		return img, nil
	case C.VP8_STATUS_NOT_ENOUGH_DATA:
		return nil, newErr(ErrTruncated, "webp", nil, "the data ends early")
	case C.VP8_STATUS_UNSUPPORTED_FEATURE:
		return nil, newErr(ErrUnsupported, "webp", nil, "libwebp: unsupported feature")
	}
	return nil, newErr(ErrCorrupt, "webp", nil, "libwebp status %d", int(st))
}
