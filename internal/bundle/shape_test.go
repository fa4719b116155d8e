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
