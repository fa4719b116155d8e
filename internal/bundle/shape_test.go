package bundle

import (
	"testing"

	"prodsearch/internal/rerank"
)

func TestShapeOf(t *testing.T) {
	for _, c := range []struct {
		labels []string
		want   string
	}{
		{nil, ""},
		{[]string{"", ""}, ""},
		{[]string{"a", "b", "c"}, ShapeOne},
		{[]string{"a", "a", "b", "c"}, ShapeOne}, // median of 2,1,1
		{[]string{"a", "a", "b", "b", "c"}, ShapeFew},
		{[]string{"a", "a", "a", "a", "a", "a"}, ShapeMany},
	} {
		if got := ShapeOf(c.labels); got != c.want {
			t.Errorf("%v: %q, want %q", c.labels, got, c.want)
		}
	}
}

func TestRecipeFor(t *testing.T) {
	b, _ := Default("coral_mnv1")
	if r, _ := b.RecipeFor(ShapeOne); r != nil {
		t.Fatal("a bundle without recipes re-ranks")
	}
	dba := &rerank.Params{DBA: 10}
	b.Rerank = dba
	if r, _ := b.RecipeFor(ShapeOne); r != dba {
		t.Fatal("no fallback to the single recipe")
	}
	qe := &rerank.Params{QE: 2}
	b.Recipes = []Recipe{{Shape: ShapeOne}, {Shape: ShapeMany, Rerank: qe}}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	if r, _ := b.RecipeFor(ShapeOne); r != nil {
		t.Fatal("the one-image recipe (plain search) was not used")
	}
	if r, _ := b.RecipeFor(""); r != qe {
		t.Fatal("an unknown shape must use the many-images recipe")
	}
	if r, _ := b.RecipeFor(ShapeFew); r != dba {
		t.Fatal("a shape without a recipe falls back to the single recipe")
	}
	b.Recipes = append(b.Recipes, Recipe{Shape: ShapeOne})
	if b.Validate() == nil {
		t.Fatal("two recipes for one shape accepted")
	}
	b.Recipes = []Recipe{{Shape: "huge"}}
	if b.Validate() == nil {
		t.Fatal("unknown shape accepted")
	}
}

func TestForReferences(t *testing.T) {
	m, _ := Default("coral_mnv1")
	b := Bundle{Version: FormatVersion, Members: []Member{{Bundle: m, Weight: 1}, {Bundle: m, Weight: 0.5}}}
	if _, differs := b.ForReferences(ShapeOne); differs {
		t.Fatal("a bundle without a reference crop describes references otherwise")
	}
	whole := 0.0
	b.Recipes = []Recipe{{Shape: ShapeOne, RefCrop: &whole}, {Shape: ShapeMany}}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	r, differs := b.ForReferences(ShapeOne)
	if !differs || r.Members[0].Bundle.Describe.Crop != 0 || r.Members[1].Bundle.Describe.Crop != 0 {
		t.Fatalf("one-image references not described whole: %+v", r.Members)
	}
	if b.Members[0].Bundle.Describe.Crop != m.Describe.Crop {
		t.Fatal("ForReferences changed the bundle it was called on")
	}
	if _, differs := b.ForReferences(ShapeMany); differs {
		t.Fatal("the many-images recipe has no reference crop but got one")
	}
	bad := 1.5
	b.Recipes = []Recipe{{Shape: ShapeOne, RefCrop: &bad}}
	if b.Validate() == nil {
		t.Fatal("reference crop 1.5 accepted")
	}
}
