// Package imageio is the first stage of the search hot path: it turns
// untrusted upload bytes into an upright image (Decode, ReadFile, and
// DecodeAtLeast, which decodes only the pixels a consumer will keep: JPEGs
// through libjpeg-turbo's DCT scaling and WebPs through libwebp's rescaler
// in cgo builds, jpeg_native.go and webp_native.go, with image/jpeg and
// x/image/webp as the twins without cgo or with -tags nonative), shrinks it
// to the backbone's input scale (ResizeShort) and writes it into a
// normalised float32 tensor (FillTensor).
//
// Decoding is defensive because uploads are hostile by default: size and
// pixel-count limits are enforced before any pixel buffer is allocated, only
// JPEG, PNG, GIF, WebP, TIFF, HEIF and AVIF are accepted regardless of which decoders other
// packages register with package image, and every failure maps to a sentinel
// error (ErrEmpty, ErrUnsupported, ErrTooLarge, ErrCorrupt, ErrTruncated).
//
// Resizing and tensor filling are tuned for throughput because they run on
// every query and every indexed image; everything here is safe for
// concurrent use and keeps no package-level mutable state.
package imageio
