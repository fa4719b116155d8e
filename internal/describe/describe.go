// Package describe turns images into retrieval descriptors: resize (keep
// aspect, short side S), run the backbone, pool the feature map (GeM, GAP or
// max), average over scales and horizontal flips, L2-normalise, then apply the
// learned head if the bundle has one.
package describe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"prodsearch/internal/backbone"
	"prodsearch/internal/imageio"
	"prodsearch/internal/vec"
)

// Settings choose how a feature map becomes a descriptor. They are part of a
// model bundle: two indexes built with different settings are not comparable.
type Settings struct {
	Scales  []int   `json:"scales"`             // short sides in pixels, e.g. [224] or [224, 320]
	Flip    bool    `json:"flip"`               // also describe the mirrored image
	Pool    string  `json:"pool"`               // gem, gap or max
	P       float64 `json:"p,omitempty"`        // GeM exponent
	MaxLong int     `json:"max_long,omitempty"` // cap on the long side after resizing (0 = 2×short)
	// Crop keeps the central fraction of each side before resizing (0 or 1 =
	// the whole image); the resize itself never crops. Product photos centre
	// the product, and the measured default trims the clutter around it.
	Crop float64 `json:"crop,omitempty"`
}

// DefaultSettings are the defaults measured on the 41 GroceryStore training
// classes (README, "Choosing the defaults"): GAP beat GeM p=3 by 0.03 mAP, a
// central 60% crop added 0.06, while a second scale or flips added under
// 0.01 for 2-3x the inference, so one scale it is.
func DefaultSettings() Settings {
	return Settings{Scales: []int{224}, Flip: false, Pool: PoolGAP, Crop: 0.6}
}

// DefaultGeMP is GeM's exponent when GeM is chosen (Radenovic et al.).
const DefaultGeMP = 3

// Validate rejects settings that would fail or silently mean something else.
func (s Settings) Validate(spec backbone.Spec) error {
	if len(s.Scales) == 0 {
		return errors.New("describe: at least one scale is required")
	}
	for _, sc := range s.Scales {
		if sc < spec.MinSize || sc <= 0 || sc > 4096 {
			return fmt.Errorf("describe: scale %d outside [%d, 4096] for backbone %s", sc, max(spec.MinSize, 1), spec.Name)
		}
	}
	if s.Crop < 0 || s.Crop > 1 {
		return fmt.Errorf("describe: crop %v must be in [0, 1]", s.Crop)
	}
	switch s.Pool {
	case PoolGeM:
		if s.P <= 0 {
			return fmt.Errorf("describe: GeM p must be positive, got %v", s.P)
		}
	case PoolGAP, PoolMax:
	default:
		return fmt.Errorf("describe: unknown pooling %q (want gem, gap or max)", s.Pool)
	}
	if spec.OutputKind == backbone.OutputVector && s.Pool != PoolGAP {
		return fmt.Errorf("describe: backbone %s outputs a pooled vector; only pool=gap applies", spec.Name)
	}
	return nil
}

// Key identifies backbone + settings: descriptors with equal keys are
// interchangeable, so it keys the descriptor cache.
func Key(spec backbone.Spec, s Settings) string {
	sc := append([]int(nil), s.Scales...)
	sort.Ints(sc)
	s.Scales = sc
	if s.Pool != PoolGeM {
		s.P = 0
	}
	b, _ := json.Marshal(struct {
		Model string   `json:"model"`
		Out   string   `json:"out"`
		S     Settings `json:"s"`
		Norm  imageio.PixelNorm
	}{spec.SHA256, spec.Output, s, spec.Norm()})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}

// Runner is what a Describer needs from a backbone session.
type Runner interface {
	Spec() backbone.Spec
	Run(ctx context.Context, input []float32, n, h, w int) (backbone.FeatureMap, error)
}

// Timing accumulates where describe time goes, for benchmarks and /metrics.
type Timing struct {
	Resize, Tensor, Infer, Pool time.Duration
}

// Add sums two timings.
func (t *Timing) Add(o Timing) {
	t.Resize += o.Resize
	t.Tensor += o.Tensor
	t.Infer += o.Infer
	t.Pool += o.Pool
}

// Describer computes backbone descriptors (before any head). It is safe for
// concurrent use when its Runner is.
type Describer struct {
	run  Runner
	set  Settings
	key  string
	norm imageio.PixelNorm
}

// New checks the settings against the backbone.
func New(r Runner, s Settings) (*Describer, error) {
	spec := r.Spec()
	if err := s.Validate(spec); err != nil {
		return nil, err
	}
	return &Describer{run: r, set: s, key: Key(spec, s), norm: spec.Norm()}, nil
}

// Key is the cache key of this backbone and settings.
func (d *Describer) Key() string { return d.key }

// Settings returns the settings in use.
func (d *Describer) Settings() Settings { return d.set }

// Dim is the descriptor length before any head.
func (d *Describer) Dim() int { return d.run.Spec().Channels }

// View is one test-time view of an image: a scale, mirrored or not. The
// descriptor is the normalised sum of its views' normalised descriptors, and
// views are cached one by one, so trying another combination of scales or
// flips only runs the network for views not seen before.
type View struct {
	Scale  int
	Mirror bool
}

// Views lists the views the settings combine.
func (d *Describer) Views() []View {
	var vs []View
	for _, s := range d.set.Scales {
		vs = append(vs, View{Scale: s})
		if d.set.Flip {
			vs = append(vs, View{Scale: s, Mirror: true})
		}
	}
	return vs
}

// ViewKey is the cache key of one view's descriptors.
func (d *Describer) ViewKey(v View) string {
	s := d.set
	s.Scales, s.Flip = []int{v.Scale}, false
	k := Key(d.run.Spec(), s)
	if v.Mirror {
		k += "-m"
	}
	return k
}

// Describe returns the L2-normalised descriptor of one image.
func (d *Describer) Describe(ctx context.Context, img image.Image) ([]float32, error) {
	v, _, err := d.DescribeTimed(ctx, img)
	return v, err
}

// DescribeTimed is Describe with where the time went.
func (d *Describer) DescribeTimed(ctx context.Context, img image.Image) ([]float32, Timing, error) {
	out, tm, err := d.DescribeBatch(ctx, []image.Image{img})
	if err != nil {
		return nil, tm, err
	}
	return out[0], tm, nil
}

// DescribeBatch describes several images with every view of the settings.
func (d *Describer) DescribeBatch(ctx context.Context, imgs []image.Image) ([][]float32, Timing, error) {
	var tm Timing
	acc := make([][]float32, len(imgs))
	for i := range acc {
		acc[i] = make([]float32, d.Dim())
	}
	for _, s := range d.set.Scales {
		plain, mirrored, t, err := d.DescribeScale(ctx, imgs, s, d.set.Flip)
		tm.Add(t)
		if err != nil {
			return nil, tm, err
		}
		for i := range imgs {
			addTo(acc[i], plain[i])
			if mirrored != nil {
				addTo(acc[i], mirrored[i])
			}
		}
	}
	for _, a := range acc {
		vec.Normalize(a)
	}
	return acc, tm, nil
}

func addTo(acc, v []float32) {
	for k, x := range v {
		acc[k] += x
	}
}

// view is one resized image waiting for inference.
type view struct {
	img    int // which input image
	rgba   *image.RGBA
	mirror bool
}

// DescribeScale returns the normalised descriptors of the images resized to
// short side s, and of their mirror images when flip is set (else nil). One
// resize serves both; equal-sized views share one backbone call.
func (d *Describer) DescribeScale(ctx context.Context, imgs []image.Image, s int, flip bool) (plain, mirrored [][]float32, tm Timing, err error) {
	t0 := time.Now()
	groups := map[image.Point][]view{}
	var order []image.Point
	for i, img := range imgs {
		if img == nil || img.Bounds().Empty() {
			return nil, nil, tm, fmt.Errorf("describe: image %d is empty", i)
		}
		r := d.resize(img, s)
		sz := r.Rect.Size()
		if _, ok := groups[sz]; !ok {
			order = append(order, sz)
		}
		groups[sz] = append(groups[sz], view{img: i, rgba: r})
		if flip {
			groups[sz] = append(groups[sz], view{img: i, rgba: r, mirror: true})
		}
	}
	tm.Resize += time.Since(t0)
	plain = make([][]float32, len(imgs))
	if flip {
		mirrored = make([][]float32, len(imgs))
	}
	for _, sz := range order {
		vs := groups[sz]
		t1 := time.Now()
		per := 3 * sz.X * sz.Y
		input := make([]float32, len(vs)*per)
		for j, v := range vs {
			if err := imageio.FillTensor(input[j*per:(j+1)*per], v.rgba, d.norm, v.mirror); err != nil {
				return nil, nil, tm, fmt.Errorf("describe: %w", err)
			}
		}
		t2 := time.Now()
		tm.Tensor += t2.Sub(t1)
		fm, err := d.run.Run(ctx, input, len(vs), sz.Y, sz.X)
		if err != nil {
			return nil, nil, tm, err
		}
		t3 := time.Now()
		tm.Infer += t3.Sub(t2)
		for j, v := range vs {
			pooled := make([]float32, fm.C)
			if err := Pool(pooled, fm.At(j), fm.C, fm.H*fm.W, d.set.Pool, d.set.P); err != nil {
				return nil, nil, tm, err
			}
			vec.Normalize(pooled)
			if v.mirror {
				mirrored[v.img] = pooled
			} else {
				plain[v.img] = pooled
			}
		}
		tm.Pool += time.Since(t3)
	}
	return plain, mirrored, tm, nil
}

// ViewImage returns the image as the backbone sees it at short side s:
// centre-cropped and resized, before normalisation. An exported graph takes
// this as its input.
func (d *Describer) ViewImage(img image.Image, s int) *image.RGBA { return d.resize(img, s) }

// MinDecodeShort is the short side a decoder may shrink an image to before
// describing it: four times what the largest view needs (its scale, or the
// backbone's minimum input, divided by the central crop, plus a pixel for
// the crop's rounding), so that the resize after the decode averages four or
// more source pixels per output pixel. On GroceryStore photos enlarged to
// 12 MP (TestScaledDecodeKeepsDescriptors) the coral descriptors moved by up
// to 0.009 in cosine when decoded to exactly the view's need (1/8), 0.0016
// at twice it (2/8) and 0.0007 at four times (4/8), the first within the
// 0.999 asked; 4/8 costs 8 ms more than 2/8 per 12 MP JPEG.
func (d *Describer) MinDecodeShort() int {
	need := d.run.Spec().MinSize
	for _, s := range d.set.Scales {
		need = max(need, s)
	}
	if c := d.set.Crop; c > 0 && c < 1 {
		need = int(math.Ceil(float64(need)/c)) + 1
	}
	return 4 * need
}

// resize scales to short side s, capping the long side so a panorama cannot
// blow up inference memory.
func (d *Describer) resize(img image.Image, s int) *image.RGBA {
	if c := d.set.Crop; c > 0 && c < 1 {
		b := img.Bounds()
		dx, dy := int(float64(b.Dx())*(1-c)/2), int(float64(b.Dy())*(1-c)/2)
		if sub, ok := img.(interface {
			SubImage(image.Rectangle) image.Image
		}); ok && b.Dx()-2*dx > 0 && b.Dy()-2*dy > 0 {
			img = sub.SubImage(image.Rect(b.Min.X+dx, b.Min.Y+dy, b.Max.X-dx, b.Max.Y-dy))
		}
	}
	maxLong := d.set.MaxLong
	if maxLong <= 0 {
		maxLong = 2 * s
	}
	minSize := d.run.Spec().MinSize
	b := img.Bounds()
	short, long := b.Dx(), b.Dy()
	if short > long {
		short, long = long, short
	}
	if long*s > maxLong*short {
		// Scale by the long side instead; the short side ends below s.
		s = max(1, maxLong*short/long)
		if s < minSize {
			// Even at the backbone's smallest input the long side would
			// pass maxLong (a 20000x1 strip would become 64x1280000): keep
			// the centre of the long side, as much as maxLong allows.
			img = centreLong(img, max(1, short*maxLong/minSize))
		}
	}
	return imageio.ResizeShort(img, max(s, minSize))
}

// centreLong keeps the central n pixels of img's long side.
func centreLong(img image.Image, n int) image.Image {
	sub, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	})
	b := img.Bounds()
	if !ok {
		return img
	}
	if b.Dx() >= b.Dy() {
		x0 := b.Min.X + (b.Dx()-n)/2
		return sub.SubImage(image.Rect(x0, b.Min.Y, x0+n, b.Max.Y))
	}
	y0 := b.Min.Y + (b.Dy()-n)/2
	return sub.SubImage(image.Rect(b.Min.X, y0, b.Max.X, y0+n))
}

// ViewTensor returns the backbone input for one view of an image, exactly
// as Describe feeds it (crop, resize, normalisation, mirroring, layout), so
// that a caller running part of the backbone itself (fine-tuning caches
// the frozen trunk's output) sees the same pixels.
func (d *Describer) ViewTensor(img image.Image, v View) (input []float32, h, w int, err error) {
	if img == nil || img.Bounds().Empty() {
		return nil, 0, 0, errors.New("describe: image is empty")
	}
	r := d.resize(img, v.Scale)
	sz := r.Rect.Size()
	input = make([]float32, 3*sz.X*sz.Y)
	if err := imageio.FillTensor(input, r, d.norm, v.Mirror); err != nil {
		return nil, 0, 0, fmt.Errorf("describe: %w", err)
	}
	return input, sz.Y, sz.X, nil
}

// ParseViews reads an augmentation spec such as "mirror,192,256": "mirror"
// adds the mirrored image at each of baseScales, a number adds that short
// side; the empty spec adds none.
func ParseViews(spec string, baseScales []int) ([]View, error) {
	var out []View
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		switch {
		case part == "":
		case part == "mirror":
			for _, sc := range baseScales {
				out = append(out, View{Scale: sc, Mirror: true})
			}
		default:
			n, err := strconv.Atoi(part)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("view %q: want mirror or a short side in pixels", part)
			}
			out = append(out, View{Scale: n})
		}
	}
	return out, nil
}
