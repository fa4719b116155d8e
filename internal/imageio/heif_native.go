//go:build cgo && !nonative

package imageio

/*
#cgo pkg-config: libheif
#include <stdlib.h>
#include <string.h>
#include <libheif/heif.h>

// ph_open parses the container and finds the primary image; nothing is
// decoded yet. The caller frees ctx and handle with ph_close.
static struct heif_error ph_open(const void *data, size_t n, struct heif_context **ctx, struct heif_image_handle **h) {
	*ctx = heif_context_alloc();
	*h = NULL;
	struct heif_error err = heif_context_read_from_memory_without_copy(*ctx, data, n, NULL);
	if (err.code != heif_error_Ok) return err;
	return heif_context_get_primary_image_handle(*ctx, h);
}

static void ph_close(struct heif_context *ctx, struct heif_image_handle *h) {
	if (h) heif_image_handle_release(h);
	if (ctx) heif_context_free(ctx);
}

// ph_decode decodes to 8-bit interleaved RGBA with the file's rotation and
// mirroring applied, strictly (a truncated file is an error, not grey tiles).
static struct heif_error ph_decode(struct heif_image_handle *h, struct heif_image **img) {
	struct heif_decoding_options *o = heif_decoding_options_alloc();
	o->convert_hdr_to_8bit = 1;
	o->strict_decoding = 1;
	struct heif_error err = heif_decode_image(h, img, heif_colorspace_RGB, heif_chroma_interleaved_RGBA, o);
	heif_decoding_options_free(o);
	return err;
}
*/
import "C"

import (
	"image"
	"image/color"
	"runtime"
	"unsafe"
)

// nativeHEIF reports whether HEIC/HEIF and AVIF decode (libheif through
// cgo); the pure-Go twin refuses them as unsupported.
const nativeHEIF = true

// heifOpen parses data with libheif and returns a closer for the context.
func heifOpen(data []byte, name string) (*C.struct_heif_context, *C.struct_heif_image_handle, error) {
	var ctx *C.struct_heif_context
	var h *C.struct_heif_image_handle
	e := C.ph_open(unsafe.Pointer(&data[0]), C.size_t(len(data)), &ctx, &h)
	if e.code != C.heif_error_Ok {
		C.ph_close(ctx, h)
		return nil, nil, heifErr(name, e)
	}
	return ctx, h, nil
}

// heifConfig reads the primary image's size (after rotation) without
// decoding it.
func heifConfig(data []byte, name string) (image.Config, error) {
	ctx, h, err := heifOpen(data, name)
	if err != nil {
		return image.Config{}, err
	}
	defer C.ph_close(ctx, h)
	cm := image.Config{Width: int(C.heif_image_handle_get_width(h)), Height: int(C.heif_image_handle_get_height(h))}
	cm.ColorModel = color.RGBAModel
	if C.heif_image_handle_has_alpha_channel(h) != 0 {
		cm.ColorModel = color.NRGBAModel
	}
	return cm, nil
}

// decodeHEIF decodes the primary image to *image.RGBA (opaque) or
// *image.NRGBA (with alpha), upright.
func decodeHEIF(data []byte, name string) (image.Image, error) {
	ctx, h, err := heifOpen(data, name)
	if err != nil {
		return nil, err
	}
	defer C.ph_close(ctx, h)
	var himg *C.struct_heif_image
	if e := C.ph_decode(h, &himg); e.code != C.heif_error_Ok {
		return nil, heifErr(name, e)
	}
	defer C.heif_image_release(himg)
	w := int(C.heif_image_get_width(himg, C.heif_channel_interleaved))
	ht := int(C.heif_image_get_height(himg, C.heif_channel_interleaved))
	var stride C.int
	p := C.heif_image_get_plane_readonly(himg, C.heif_channel_interleaved, &stride)
	if p == nil || w <= 0 || ht <= 0 || int(stride) < 4*w {
		return nil, newErr(ErrCorrupt, name, nil, "libheif returned no pixels")
	}
	src := unsafe.Slice((*byte)(unsafe.Pointer(p)), int(stride)*(ht-1)+4*w)
	r := image.Rect(0, 0, w, ht)
	var pix []byte
	var out image.Image
	if C.heif_image_handle_has_alpha_channel(h) != 0 {
		m := image.NewNRGBA(r)
		pix, out = m.Pix, m
	} else {
		m := image.NewRGBA(r)
		pix, out = m.Pix, m
	}
	for y := range ht {
		copy(pix[y*4*w:(y+1)*4*w], src[y*int(stride):])
	}
	runtime.KeepAlive(data)
	return out, nil
}

// heifErr maps libheif's error codes to the package's sentinels.
func heifErr(name string, e C.struct_heif_error) error {
	msg := C.GoString(e.message)
	switch {
	case e.subcode == C.heif_suberror_End_of_data:
		return newErr(ErrTruncated, name, nil, "%s", msg)
	case e.code == C.heif_error_Unsupported_filetype, e.code == C.heif_error_Unsupported_feature:
		return newErr(ErrUnsupported, name, nil, "%s", msg)
	case e.subcode == C.heif_suberror_Security_limit_exceeded, e.code == C.heif_error_Memory_allocation_error:
		return newErr(ErrTooLarge, name, nil, "%s", msg)
	}
	return newErr(ErrCorrupt, name, nil, "%s", msg)
}
