package main

import (
	"slices"
	"testing"

	"prodsearch/internal/index"
)

// The streamed benchmark relies on drawing a slice of references twice (for
// the ground truth, then for the import) and getting the rows the whole
// draw would have.
func TestViewsAtMatchesWholeDraw(t *testing.T) {
	w := defaultSynth(32, 7).world(5000)
	whole := w.views(5000, refStream)
	var parts []float32
	for lo := 0; lo < 5000; lo += 2 * viewChunk {
		p, err := w.viewsAt(lo, min(2*viewChunk, 5000-lo), refStream)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p...)
	}
	if !slices.Equal(whole, parts) {
		t.Fatal("streamed draw differs from the whole draw")
	}
	if _, err := w.viewsAt(3, 10, refStream); err == nil {
		t.Fatal("unaligned offset accepted")
	}
}

func TestMergeTop(t *testing.T) {
	a := []index.Hit{{ID: "a", Score: 0.9}, {ID: "b", Score: 0.5}}
	b := []index.Hit{{ID: "c", Score: 0.7}, {ID: "d", Score: 0.1}}
	got := mergeTop(a, b, 3)
	var ids []string
	for _, h := range got {
		ids = append(ids, h.ID)
	}
	if !slices.Equal(ids, []string{"a", "c", "b"}) {
		t.Fatalf("mergeTop = %v", ids)
	}
}
