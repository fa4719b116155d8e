package describe_test

import (
	"context"
	"testing"

	"prodsearch/internal/backbone"
	"prodsearch/internal/describe"
	"prodsearch/internal/testenv"
)

// TestRealBackboneRanksSameClassFirst describes a few GroceryStore photos of
// three classes with every shipped backbone and checks that, for each photo,
// its most similar other photo belongs to the same class in most cases and
// that same-class similarity beats different-class similarity on average.
func TestRealBackboneRanksSameClassFirst(t *testing.T) {
	specs, dir, lib := testenv.Builtins(t)
	set := testenv.Split(t, "reference.tsv")
	// Four photos from each of three visually different classes.
	perClass := map[string]int{}
	var paths, labels []string
	for _, it := range set.Items {
		if _, seen := perClass[it.Label]; (!seen && len(perClass) == 3) || perClass[it.Label] == 4 {
			continue
		}
		perClass[it.Label]++
		paths = append(paths, it.Path)
		labels = append(labels, it.Label)
	}
	for _, spec := range specs {
		sess, err := backbone.Open(spec, dir, backbone.Options{Library: lib})
		if err != nil {
			t.Fatal(err)
		}
		d, err := describe.New(sess, describe.DefaultSettings())
		if err != nil {
			t.Fatal(err)
		}
		vecs, fails, _, err := d.DescribeFiles(context.Background(), paths, describe.FileOptions{})
		sess.Destroy()
		if err != nil || len(fails) > 0 {
			t.Fatalf("%s: %v %v", spec.Name, err, fails)
		}
		var same, diff float64
		var nSame, nDiff, top1 int
		for i := range vecs {
			best, bestSim := -1, float32(-2)
			for j := range vecs {
				if i == j {
					continue
				}
				var s float32
				for k := range vecs[i] {
					s += vecs[i][k] * vecs[j][k]
				}
				if labels[i] == labels[j] {
					same += float64(s)
					nSame++
				} else {
					diff += float64(s)
					nDiff++
				}
				if s > bestSim {
					best, bestSim = j, s
				}
			}
			if labels[best] == labels[i] {
				top1++
			}
		}
		same /= float64(nSame)
		diff /= float64(nDiff)
		t.Logf("%s: top-1 same class %d/%d, mean cosine same %.3f vs different %.3f", spec.Name, top1, len(vecs), same, diff)
		if same <= diff || top1 < len(vecs)*2/3 {
			t.Errorf("%s does not rank same-class photos first: top-1 %d/%d, same %.3f, diff %.3f", spec.Name, top1, len(vecs), same, diff)
		}
	}
}
