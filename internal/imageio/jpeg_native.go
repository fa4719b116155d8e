//go:build cgo && !nonative

package imageio

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	int eof;
	char msg[JMSG_LENGTH_MAX];
} ps_err;

static void ps_error_exit(j_common_ptr c) {
	ps_err *e = (ps_err *)c->err;
	(*c->err->format_message)(c, e->msg);
	longjmp(e->jb, 1);
}

// ps_emit records premature end of data (libjpeg pads with grey and warns)
// so it can be reported as truncation, as the pure-Go decoder does; other
// warnings are recoverable, and libjpeg recovers from them.
static void ps_emit(j_common_ptr c, int level) {
	ps_err *e = (ps_err *)c->err;
	if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) e->eof = 1;
}

// ps_dec is one decode in progress. Planes come out raw (no upsampling, no
// colour conversion), so the result is the *image.YCbCr image/jpeg would
// produce and the rest of the pipeline treats it identically.
typedef struct {
	struct jpeg_decompress_struct cinfo;
	ps_err err;
	int ncomp, outw, outh, imcu_rows;
	int pw[3], ph[3], rows[3], hs[3], vs[3];
} ps_dec;

enum { PS_OK = 0, PS_ERR = 1, PS_OTHER = 2, PS_EOF = 3 };

static void ps_free(ps_dec *d) {
	jpeg_destroy_decompress(&d->cinfo);
	free(d);
}

// ps_open reads the header and starts a raw decode scaled by num/8. It
// returns PS_OTHER for colour spaces left to the pure-Go decoder.
static int ps_open(const unsigned char *data, unsigned long n, int num, ps_dec **out) {
	ps_dec *d = calloc(1, sizeof *d);
	if (!d) return PS_ERR;
	*out = d;
	d->cinfo.err = jpeg_std_error(&d->err.pub);
	d->err.pub.error_exit = ps_error_exit;
	d->err.pub.emit_message = ps_emit;
	jpeg_create_decompress(&d->cinfo);
	if (setjmp(d->err.jb)) return PS_ERR;
	jpeg_mem_src(&d->cinfo, data, n);
	jpeg_read_header(&d->cinfo, TRUE);
	struct jpeg_decompress_struct *c = &d->cinfo;
	if (!((c->num_components == 1 && c->jpeg_color_space == JCS_GRAYSCALE) ||
	      (c->num_components == 3 && c->jpeg_color_space == JCS_YCbCr)))
		return PS_OTHER;
	c->raw_data_out = TRUE;
	c->out_color_space = c->jpeg_color_space;
	c->scale_num = num;
	c->scale_denom = 8;
	jpeg_start_decompress(c);
	d->ncomp = c->num_components;
	d->outw = c->output_width;
	d->outh = c->output_height;
	d->imcu_rows = c->max_v_samp_factor * c->min_DCT_scaled_size;
	for (int i = 0; i < d->ncomp; i++) {
		jpeg_component_info *ci = &c->comp_info[i];
		d->rows[i] = ci->v_samp_factor * ci->DCT_scaled_size;
		d->pw[i] = ci->width_in_blocks * ci->DCT_scaled_size;
		d->ph[i] = c->total_iMCU_rows * d->rows[i];
		d->hs[i] = ci->h_samp_factor * ci->DCT_scaled_size;
		d->vs[i] = ci->v_samp_factor * ci->DCT_scaled_size;
		if (d->rows[i] > 32) return PS_OTHER;
	}
	return PS_OK;
}

// ps_read decodes every iMCU row into the planes (pw x ph each).
static int ps_read(ps_dec *d, unsigned char *p0, unsigned char *p1, unsigned char *p2) {
	unsigned char *planes[3] = {p0, p1, p2};
	JSAMPROW rows[3][32];
	JSAMPARRAY arrs[3] = {rows[0], rows[1], rows[2]};
	if (setjmp(d->err.jb)) return PS_ERR;
	struct jpeg_decompress_struct *c = &d->cinfo;
	for (int m = 0; c->output_scanline < c->output_height; m++) {
		for (int i = 0; i < d->ncomp; i++)
			for (int r = 0; r < d->rows[i]; r++)
				rows[i][r] = planes[i] + (size_t)(m * d->rows[i] + r) * d->pw[i];
		if (jpeg_read_raw_data(c, arrs, d->imcu_rows) == 0) return PS_EOF;
	}
	jpeg_finish_decompress(c);
	return d->err.eof ? PS_EOF : PS_OK;
}

static const char *ps_msg(ps_dec *d) { return d->err.msg; }
*/
import "C"

import (
	"image"
	"unsafe"
)

// nativeJPEG reports whether JPEG decodes can be scaled in the DCT domain
// (libjpeg-turbo through cgo); the pure-Go twin decodes at full size.
const nativeJPEG = true

// jpegScale is the smallest libjpeg scale num/8 whose output keeps the
// short side at least minShort; 8 (full size) when minShort asks for it.
// Only 1/8, 2/8 and 4/8 are used: the other reduced IDCTs (3/8, 5/8, ...)
// moved descriptors far more (GroceryStore photos at 3024 pixels decoded at
// 3/8: cosine 0.963 for coral_mnv2 against the full decode, 2/8 0.998,
// 4/8 0.9996).
func jpegScale(w, h, minShort int) int {
	short := min(w, h)
	for _, num := range []int{1, 2, 4} {
		if (short*num+7)/8 >= minShort {
			return num
		}
	}
	return 8
}

// scaledSize is libjpeg's output size at num/8 (jdiv_round_up).
func scaledSize(w, h, num int) (int, int) { return (w*num + 7) / 8, (h*num + 7) / 8 }

// subsampleRatios maps luma samples per chroma sample (x, y) to Go's ratio.
var subsampleRatios = map[[2]int]image.YCbCrSubsampleRatio{
	{1, 1}: image.YCbCrSubsampleRatio444, {2, 1}: image.YCbCrSubsampleRatio422,
	{2, 2}: image.YCbCrSubsampleRatio420, {1, 2}: image.YCbCrSubsampleRatio440,
	{4, 1}: image.YCbCrSubsampleRatio411, {4, 2}: image.YCbCrSubsampleRatio410,
}

// decodeJPEGScaled decodes with libjpeg-turbo at num/8 into the planes
// image/jpeg would produce: *image.Gray or *image.YCbCr with the file's
// chroma subsampling (libjpeg may decode chroma at a higher resolution
// when scaling, which only makes the ratio smaller). ok is false for what
// it leaves to image/jpeg: CMYK, YCCK, RGB-coded and unusual sampling.
func decodeJPEGScaled(data []byte, _ image.Config, num int) (img image.Image, ok bool, err error) {
	var d *C.ps_dec
	rc := C.ps_open((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), C.int(num), &d)
	if d == nil {
		return nil, true, newErr(ErrCorrupt, "jpeg", nil, "out of memory")
	}
	defer C.ps_free(d)
	if rc == C.PS_OTHER {
		return nil, false, nil
	}
	if rc != C.PS_OK {
		return nil, true, jpegErr(d, rc)
	}
	w, h := int(d.outw), int(d.outh)
	var planes [3][]byte
	for i := range int(d.ncomp) {
		planes[i] = make([]byte, int(d.pw[i])*int(d.ph[i]))
	}
	var yCbCr *image.YCbCr
	if d.ncomp == 3 {
		if d.hs[1] != d.hs[2] || d.vs[1] != d.vs[2] || d.pw[1] != d.pw[2] || d.hs[0]%d.hs[1] != 0 || d.vs[0]%d.vs[1] != 0 {
			return nil, false, nil
		}
		ratio, known := subsampleRatios[[2]int{int(d.hs[0] / d.hs[1]), int(d.vs[0] / d.vs[1])}]
		if !known {
			return nil, false, nil
		}
		yCbCr = &image.YCbCr{Y: planes[0], Cb: planes[1], Cr: planes[2], YStride: int(d.pw[0]), CStride: int(d.pw[1]),
			SubsampleRatio: ratio, Rect: image.Rect(0, 0, w, h)}
	}
	p := func(i int) *C.uchar {
		if planes[i] == nil {
			return nil
		}
		return (*C.uchar)(unsafe.Pointer(&planes[i][0]))
	}
	if rc = C.ps_read(d, p(0), p(1), p(2)); rc != C.PS_OK {
		return nil, true, jpegErr(d, rc)
	}
	if yCbCr != nil {
		return yCbCr, true, nil
	}
	return &image.Gray{Pix: planes[0], Stride: int(d.pw[0]), Rect: image.Rect(0, 0, w, h)}, true, nil
}

func jpegErr(d *C.ps_dec, rc C.int) error {
	if rc == C.PS_EOF || d.err.eof != 0 {
		return newErr(ErrTruncated, "jpeg", nil, "the data ends before the last scan")
	}
	return newErr(ErrCorrupt, "jpeg", nil, "%s", C.GoString(C.ps_msg(d)))
}
