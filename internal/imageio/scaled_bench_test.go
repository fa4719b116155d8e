package imageio

import (
	"fmt"
	"testing"

	"prodsearch/internal/imageio/imagetest"
)

// BenchmarkDecode12MP compares decoding a 4032x3024 q90 JPEG at full size
// with image/jpeg (Decode) against DecodeAtLeast for a 374-pixel view (the
// default bundle's MinDecodeShort) and for twice that.
func BenchmarkDecode12MP(b *testing.B) {
	jpg := imagetest.JPEG(b, textured(4032, 3024), 90)
	b.Run("image-jpeg-full", func(b *testing.B) {
		for b.Loop() {
			if _, err := Decode(jpg, DefaultLimits()); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, m := range []int{375, 750, 1500, 3024} {
		b.Run(fmt.Sprintf("at-least-%d", m), func(b *testing.B) {
			for b.Loop() {
				if _, err := DecodeAtLeast(jpg, DefaultLimits(), m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
