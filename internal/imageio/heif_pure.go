//go:build !cgo || nonative

package imageio

import "image"

// nativeHEIF is false without cgo (or with the nonative tag): HEIC/HEIF and
// AVIF need libheif, so they are refused as unsupported.
const nativeHEIF = false

func heifConfig(data []byte, name string) (image.Config, error) {
	return image.Config{}, newErr(ErrUnsupported, name, nil, "this binary was built without libheif (cgo)")
}

func decodeHEIF(data []byte, name string) (image.Image, error) {
	_, err := heifConfig(data, name)
	return nil, err
}
