package bundle

import (
	"fmt"
	"slices"
	"sort"

	"prodsearch/internal/describe"
	"prodsearch/internal/rerank"
)

// Catalogue shapes: how many reference images a product has. A recipe
// tuned on one shape can hurt another (database-side augmentation mixes a
// product's only image with other products' images), so a bundle keeps one
// recipe per shape and the catalogue it is given picks it.
const (
	ShapeOne  = "one"  // one image per product: a shop's studio catalogue
	ShapeFew  = "few"  // two to five images per product
	ShapeMany = "many" // more: the hackathon's photo catalogues
)

// Shapes lists the shapes in order of size.
var Shapes = []string{ShapeOne, ShapeFew, ShapeMany}

// ShapeOf classifies a catalogue by the median number of references per
// labelled product; it returns "" when no reference has a label, since the
// shape is then unknown.
func ShapeOf(labels []string) string {
	count := map[string]int{}
	for _, l := range labels {
		if l != "" {
			count[l]++
		}
	}
	if len(count) == 0 {
		return ""
	}
	per := make([]int, 0, len(count))
	for _, n := range count {
		per = append(per, n)
	}
	sort.Ints(per)
	return ShapeForCount(per[len(per)/2])
}

// ShapeForCount is the shape of a catalogue with n images per product.
func ShapeForCount(n int) string {
	switch {
	case n <= 1:
		return ShapeOne
	case n <= 5:
		return ShapeFew
	}
	return ShapeMany
}

// Recipe is the re-ranking chosen for one catalogue shape on a validation
// task of that shape, with the figures it was chosen by.
type Recipe struct {
	Shape  string         `json:"shape"`
	Rerank *rerank.Params `json:"rerank,omitempty"` // nil: plain search was best
	// Task names the validation task and Val its scores with this recipe,
	// Plain without re-ranking, so a reader sees what the choice gained.
	Task  string     `json:"task,omitempty"`
	Val   *ValScores `json:"val,omitempty"`
	Plain *ValScores `json:"plain,omitempty"`
	// RefCrop, when set, is the centre crop (0 = the whole image) the
	// references of this shape are described with instead of the bundle's
	// own: a studio image is all product while a phone photo has hands and
	// shelves around it, so a one-image catalogue wants its images whole
	// while the photos keep the crop (chosen on validation, see MODEL.md).
	RefCrop *float64 `json:"ref_crop,omitempty"`
}

// ValScores are validation figures kept in a bundle.
type ValScores struct {
	MAP float64 `json:"map"`
	R1  float64 `json:"recall@1"`
	MRR float64 `json:"mrr,omitempty"`
}

// RecipeFor returns the re-ranking for a catalogue of the given shape and
// where it came from: the recipe stored for that shape, else the bundle's
// single recipe (format 1 bundles and hand-tuned ones), else none. An unknown
// shape ("") uses the many-images recipe, the hackathon's case.
func (b Bundle) RecipeFor(shape string) (*rerank.Params, string) {
	if shape == "" {
		shape = ShapeMany
	}
	for _, r := range b.Recipes {
		if r.Shape == shape {
			return r.Rerank, "tuned for " + shape + "-image catalogues"
		}
	}
	if b.Rerank != nil {
		return b.Rerank, "the bundle's recipe"
	}
	return nil, "none"
}

// ForReferences returns the bundle that describes the references of a
// catalogue of the given shape, and whether it differs from b: b with the
// shape's RefCrop in every member, or b itself when the recipe sets none.
func (b Bundle) ForReferences(shape string) (Bundle, bool) {
	if shape == "" {
		shape = ShapeMany
	}
	for _, r := range b.Recipes {
		if r.Shape == shape && r.RefCrop != nil {
			return b.WithCrop(*r.RefCrop), true
		}
	}
	return b, false
}

// WithCrop is b with the centre crop of its describe settings, and of every
// member's, set to c (0 = the whole image).
func (b Bundle) WithCrop(c float64) Bundle {
	return b.WithSettings(func(s describe.Settings) describe.Settings {
		s.Crop = c
		return s
	})
}

// WithSettings is b with f applied to its describe settings and to every
// member's, the members copied so that b is left as it was.
func (b Bundle) WithSettings(f func(describe.Settings) describe.Settings) Bundle {
	b.Describe = f(b.Describe)
	b.Members = slices.Clone(b.Members)
	for i := range b.Members {
		b.Members[i].Bundle = b.Members[i].Bundle.WithSettings(f)
	}
	return b
}

func validateRecipes(rs []Recipe) error {
	seen := map[string]bool{}
	for _, r := range rs {
		switch r.Shape {
		case ShapeOne, ShapeFew, ShapeMany:
		default:
			return fmt.Errorf("bundle: recipe for unknown catalogue shape %q (want one, few or many)", r.Shape)
		}
		if seen[r.Shape] {
			return fmt.Errorf("bundle: two recipes for shape %q", r.Shape)
		}
		seen[r.Shape] = true
		if c := r.RefCrop; c != nil && !(*c >= 0 && *c <= 1) {
			return fmt.Errorf("bundle: recipe %s: reference crop %v must be in [0, 1]", r.Shape, *c)
		}
		if r.Rerank != nil {
			if err := r.Rerank.Validate(); err != nil {
				return fmt.Errorf("bundle: recipe %s: %w", r.Shape, err)
			}
		}
	}
	return nil
}
