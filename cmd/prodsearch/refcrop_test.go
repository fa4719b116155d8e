package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"prodsearch/internal/bundle"
	"prodsearch/internal/store"
)

// TestRefCropOneImageCatalogue runs a bundle whose one-image recipe
// describes references whole: a one-image catalogue's references are
// described with it, a catalogue forced to another shape is not.
func TestRefCropOneImageCatalogue(t *testing.T) {
	// Three classes: two photos of each as queries, the next one as the
	// class's only reference.
	dir, _, _ := smallTask(t, 3, 2, 1)
	b, err := bundle.Default("coral_mnv1")
	if err != nil {
		t.Fatal(err)
	}
	whole := 0.0
	b.Recipes = []bundle.Recipe{{Shape: bundle.ShapeOne, RefCrop: &whole}}
	bpath := filepath.Join(dir, "b.json")
	if err := b.Save(bpath); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--bundle", bpath, "--queries", filepath.Join(dir, "q.tsv"), "--references", filepath.Join(dir, "r.tsv"), "--cache=" + filepath.Join(dir, "cache")}
	const said = "references described with centre crop 0"
	_, stderr, err := runCLI(t, args...)
	if err != nil || !strings.Contains(stderr, "catalogue shape one: "+said) {
		t.Fatalf("one-image catalogue: %v\n%s", err, stderr)
	}
	_, stderr, err = runCLI(t, append(args, "--shape", "many")...)
	if err != nil || strings.Contains(stderr, said) {
		t.Fatalf("a many-image catalogue used the one-image reference crop: %v\n%s", err, stderr)
	}

	// index add --shape one stores the catalogue images as described whole,
	// under the bundle's own ID (its queries keep the crop); without
	// --shape they are described as queries are.
	wholePath := filepath.Join(dir, "whole.json")
	wb := b.WithCrop(0)
	if err := wb.Save(wholePath); err != nil {
		t.Fatal(err)
	}
	vectors := func(name, bpath string, id string, extra ...string) [][]float32 {
		t.Helper()
		sdir := filepath.Join(dir, name)
		add := append([]string{"index", "add", "--store", sdir, "--bundle", bpath, "--cache=" + filepath.Join(dir, "cache")}, extra...)
		if _, stderr, err := runCLI(t, append(add, filepath.Join(dir, "r.tsv"))...); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, stderr)
		}
		s, err := store.Open(context.Background(), sdir, id, 1024)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		items, _, err := s.List(context.Background(), store.ListOptions{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out [][]float32
		for _, it := range items {
			v, err := s.Vector(it.ID)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}
	one := vectors("one", bpath, b.ID(), "--shape", "one")
	wholeVecs := vectors("whole", wholePath, wb.ID())
	cropped := vectors("cropped", bpath, b.ID())
	if len(one) != 3 || !slices.EqualFunc(one, wholeVecs, slices.Equal) {
		t.Fatalf("--shape one did not store the images described whole (%d items)", len(one))
	}
	if slices.EqualFunc(one, cropped, slices.Equal) {
		t.Fatal("--shape one stored the same descriptors as the queries' settings")
	}
}
