package describe_test

import (
	"testing"

	"prodsearch/internal/backbone"
	"prodsearch/internal/describe"
	"prodsearch/internal/imageio"
	"prodsearch/internal/imageio/imagetest"
	"prodsearch/internal/testenv"
)

// TestScaledDecodeKeepsDescriptors checks that decoding only the pixels the
// describer needs (imageio.DecodeAtLeast with MinDecodeShort: libjpeg's DCT
// scaling in cgo builds) gives the descriptor of the full image/jpeg decode
// and resize, for every shipped backbone: on GroceryStore photos as they are
// (348x348, decoded at full size by libjpeg instead of image/jpeg) and
// enlarged to a phone camera's 3024-pixel short side, upright or stored
// sideways with an EXIF orientation. The float backbones must keep cosine
// >= 0.999, at full size and scaled. The int8 backbone's noise floor
// is lower: the same planes with libjpeg's IDCT rounding instead of Go's
// (at most 1/255 apart) already move it to 0.98, so it is held to 0.97.
func TestScaledDecodeKeepsDescriptors(t *testing.T) {
	specs, dir, lib := testenv.Builtins(t)
	set := testenv.Split(t, "train.tsv")
	// One photo from each of six classes spread over the split.
	var photos [][]byte
	step := len(set.Items) / 6
	for i := 0; i < 6; i++ {
		data, err := imageio.ReadBytes(set.Items[i*step].Path, 0)
		if err != nil {
			t.Fatal(err)
		}
		photos = append(photos, data)
	}
	// The enlarged versions, made once: 348 -> 3024, JPEG q90, two of them
	// stored sideways (EXIF 6 and 8) as phones do.
	var big [][]byte
	for i, p := range photos {
		img, err := imageio.Decode(p, imageio.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		jpg := imagetest.JPEG(t, imageio.ResizeShort(img, 3024), 90)
		switch i {
		case 1:
			jpg = imagetest.EXIF(jpg, 6)
		case 4:
			jpg = imagetest.EXIF(jpg, 8)
		}
		big = append(big, jpg)
	}
	lim := imageio.DefaultLimits()
	for _, spec := range specs {
		sess, err := backbone.Open(spec, dir, backbone.Options{Library: lib})
		if err != nil {
			t.Fatal(err)
		}
		d, err := describe.New(sess, describe.DefaultSettings())
		if err != nil {
			t.Fatal(err)
		}
		worst := float32(1)
		for i, data := range append(photos, big...) {
			full, err := imageio.Decode(data, lim)
			if err != nil {
				t.Fatal(err)
			}
			scaled, err := imageio.DecodeAtLeast(data, lim, d.MinDecodeShort())
			if err != nil {
				t.Fatal(err)
			}
			a, b := mustDescribe(t, d, full), mustDescribe(t, d, scaled)
			var cos float32
			for k := range a {
				cos += a[k] * b[k]
			}
			worst = min(worst, cos)
			floor := float32(0.999)
			switch {
			case spec.Name == "mnv2_int8":
				floor = 0.97
			}
			if cos < floor {
				t.Errorf("%s photo %d (%v decoded as %v): cosine %.5f < %.3f", spec.Name, i, full.Bounds().Size(), scaled.Bounds().Size(), cos, floor)
			}
		}
		t.Logf("%s: worst cosine %.5f over %d photos (decode short side >= %d)", spec.Name, worst, 2*len(photos), d.MinDecodeShort())
		sess.Destroy()
	}
}
