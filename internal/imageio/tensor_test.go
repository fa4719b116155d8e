package imageio

import (
	"image"
	"image/color"
	"math"
	"testing"
)

// tiny2x2 is
//
//	(10,20,30)   (40,50,60)
//	(70,80,90)   (100,110,120)
func tiny2x2() *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, 2, 2))
	m.SetRGBA(0, 0, color.RGBA{10, 20, 30, 255})
	m.SetRGBA(1, 0, color.RGBA{40, 50, 60, 255})
	m.SetRGBA(0, 1, color.RGBA{70, 80, 90, 255})
	m.SetRGBA(1, 1, color.RGBA{100, 110, 120, 255})
	return m
}

func TestFillTensorHandChecked(t *testing.T) {
	// value = (px*Scale - Mean[c]) / Std[c]; Scale 1 keeps the arithmetic
	// exact so expectations can be written by hand.
	norm := PixelNorm{Layout: LayoutNCHW, Scale: 1, Mean: [3]float32{10, 20, 30}, Std: [3]float32{2, 4, 5}}
	cases := []struct {
		name   string
		layout string
		bgr    bool
		flip   bool
		want   []float32
	}{
		// R plane (px-10)/2, G plane (px-20)/4, B plane (px-30)/5
		{"NCHW", LayoutNCHW, false, false, []float32{
			0, 15, 30, 45,
			0, 7.5, 15, 22.5,
			0, 6, 12, 18,
		}},
		{"NCHW-flip", LayoutNCHW, false, true, []float32{
			15, 0, 45, 30,
			7.5, 0, 22.5, 15,
			6, 0, 18, 12,
		}},
		{"NHWC", LayoutNHWC, false, false, []float32{
			0, 0, 0, 15, 7.5, 6,
			30, 15, 12, 45, 22.5, 18,
		}},
		{"NHWC-flip", LayoutNHWC, false, true, []float32{
			15, 7.5, 6, 0, 0, 0,
			45, 22.5, 18, 30, 15, 12,
		}},
		// BGR: tensor channel 0 is blue with Mean[0]=10, Std[0]=2 etc.
		// ch0: (B-10)/2 = 10,25,40,55; ch1: (G-20)/4 = 0,7.5,15,22.5; ch2: (R-30)/5 = -4,2,8,14
		{"NCHW-BGR", LayoutNCHW, true, false, []float32{
			10, 25, 40, 55,
			0, 7.5, 15, 22.5,
			-4, 2, 8, 14,
		}},
		{"NHWC-BGR-flip", LayoutNHWC, true, true, []float32{
			25, 7.5, 2, 10, 0, -4,
			55, 22.5, 14, 40, 15, 8,
		}},
	}
	for _, c := range cases {
		n := norm
		n.Layout, n.BGR = c.layout, c.bgr
		dst := make([]float32, 12)
		if err := FillTensor(dst, tiny2x2(), n, c.flip); err != nil {
			t.Fatal(err)
		}
		for i := range dst {
			if dst[i] != c.want[i] {
				t.Errorf("%s: dst = %v, want %v", c.name, dst, c.want)
				break
			}
		}
	}
}

func TestFillTensorImageNet(t *testing.T) {
	n := ImageNetNorm()
	dst := make([]float32, 12)
	if err := FillTensor(dst, tiny2x2(), n, false); err != nil {
		t.Fatal(err)
	}
	// pixel (0,0) R=10: (10/255 - 0.485)/0.229
	want := (10.0/255 - 0.485) / 0.229
	if math.Abs(float64(dst[0])-want) > 1e-5 {
		t.Errorf("dst[0] = %v, want %v", dst[0], want)
	}
	// pixel (1,1) B=120 in the third plane
	want = (120.0/255 - 0.406) / 0.225
	if math.Abs(float64(dst[11])-want) > 1e-5 {
		t.Errorf("dst[11] = %v, want %v", dst[11], want)
	}
	if err := CLIPNorm().Validate(); err != nil {
		t.Error(err)
	}
}

func TestFillTensorSubImage(t *testing.T) {
	big := image.NewRGBA(image.Rect(0, 0, 5, 4))
	for i := range big.Pix {
		big.Pix[i] = 255
	}
	sub := big.SubImage(image.Rect(2, 1, 4, 3)).(*image.RGBA)
	src := tiny2x2()
	for y := range 2 {
		for x := range 2 {
			sub.SetRGBA(2+x, 1+y, src.RGBAAt(x, y))
		}
	}
	n := PixelNorm{Layout: LayoutNCHW, Scale: 1, Std: [3]float32{1, 1, 1}}
	a, b := make([]float32, 12), make([]float32, 12)
	if err := FillTensor(a, sub, n, true); err != nil {
		t.Fatal(err)
	}
	if err := FillTensor(b, src, n, true); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("sub-image tensor %v, want %v", a, b)
		}
	}
}

func TestPixelNormValidate(t *testing.T) {
	good := ImageNetNorm()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	nan := float32(math.NaN())
	bad := map[string]func(*PixelNorm){
		"layout":    func(n *PixelNorm) { n.Layout = "nchw" },
		"empty":     func(n *PixelNorm) { n.Layout = "" },
		"scale0":    func(n *PixelNorm) { n.Scale = 0 },
		"scaleInf":  func(n *PixelNorm) { n.Scale = float32(math.Inf(1)) },
		"std0":      func(n *PixelNorm) { n.Std[1] = 0 },
		"stdNaN":    func(n *PixelNorm) { n.Std[2] = nan },
		"meanNaN":   func(n *PixelNorm) { n.Mean[0] = nan },
		"zeroValue": func(n *PixelNorm) { *n = PixelNorm{} },
	}
	for name, f := range bad {
		n := good
		f(&n)
		if err := n.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if err := FillTensor(make([]float32, 12), tiny2x2(), n, false); err == nil {
			t.Errorf("%s: FillTensor accepted invalid norm", name)
		}
	}
	if err := FillTensor(make([]float32, 11), tiny2x2(), good, false); err == nil {
		t.Error("short dst accepted")
	}
	if err := FillTensor(make([]float32, 12), nil, good, false); err == nil {
		t.Error("nil image accepted")
	}
}

func BenchmarkFillTensor(b *testing.B) {
	img := ResizeShort(textured(224, 224), 224)
	dst := make([]float32, 3*224*224)
	for _, layout := range []string{LayoutNCHW, LayoutNHWC} {
		n := ImageNetNorm()
		n.Layout = layout
		b.Run(layout, func(b *testing.B) {
			for b.Loop() {
				if err := FillTensor(dst, img, n, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
