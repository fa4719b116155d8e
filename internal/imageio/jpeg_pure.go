//go:build !cgo || nonative

package imageio

import "image"

// nativeJPEG is false in builds without cgo (or with the nonative tag):
// JPEGs are decoded at full size by image/jpeg.
const nativeJPEG = false

func jpegScale(w, h, minShort int) int { return 8 }

func scaledSize(w, h, num int) (int, int) { return w, h }

func decodeJPEGScaled(data []byte, cfg image.Config, num int) (image.Image, bool, error) {
	return nil, false, nil
}
