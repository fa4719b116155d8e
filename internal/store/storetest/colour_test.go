package storetest

import (
	"context"
	"image"
	"image/color"
	"math"
	"testing"
)

func TestColourDescriber(t *testing.T) {
	d := NewColourDescriber(48)
	img := func(c color.Color) image.Image {
		m := image.NewRGBA(image.Rect(3, 5, 40, 30))
		for y := 5; y < 30; y++ {
			for x := 3; x < 40; x++ {
				m.Set(x, y, c)
			}
		}
		return m
	}
	ctx := context.Background()
	a, _ := d.Describe(ctx, img(color.RGBA{200, 10, 10, 255}))
	b, _ := NewColourDescriber(48).Describe(ctx, img(color.RGBA{200, 10, 10, 255}))
	c, _ := d.Describe(ctx, img(color.RGBA{10, 10, 200, 255}))
	var ab, ac, aa float64
	for i := range a {
		aa += float64(a[i] * a[i])
		ab += float64(a[i] * b[i])
		ac += float64(a[i] * c[i])
	}
	if len(a) != 48 || math.Abs(aa-1) > 1e-5 || math.Abs(ab-1) > 1e-5 || ac > 0.9 {
		t.Errorf("len %d, |a|² %v, a·b %v, a·c %v", len(a), aa, ab, ac)
	}
	if _, err := d.Describe(ctx, image.NewRGBA(image.Rect(0, 0, 0, 0))); err == nil {
		t.Error("empty image described")
	}
}
