//go:build !cgo || nonative

package imageio

import "image"

// nativeWebP is false without cgo (or with the nonative tag): x/image/webp
// decodes WebP at full size.
const nativeWebP = false

func decodeWebPScaled(data []byte, cfg image.Config, minShort int) (image.Image, error) {
	return nil, newErr(ErrUnsupported, "webp", nil, "scaled WebP decoding needs libwebp (cgo)")
}
