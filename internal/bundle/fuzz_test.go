package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"prodsearch/internal/describe"
	"prodsearch/internal/index"
	"prodsearch/internal/rerank"
)

// FuzzLoad feeds arbitrary bytes as a bundle file. An accepted bundle must
// have been one JSON value, must validate, must have a positive descriptor
// size that its heads can produce, must run its re-ranking recipe, and must
// save and load again to the same bundle.
func FuzzLoad(f *testing.F) {
	dir := f.TempDir()
	n := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		n++
		src := filepath.Join(dir, fmt.Sprintf("b%d.json", n))
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(src)
		b, err := Load(src)
		if err != nil {
			if !strings.Contains(err.Error(), src) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted %q, which is not a single JSON value", data)
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("accepted an invalid bundle: %v", err)
		}
		dim := b.Dim()
		if dim <= 0 {
			t.Fatalf("descriptor size %d", dim)
		}
		if !b.IsEnsemble() && len(b.Heads) > 0 {
			x := make([]float32, b.Heads.InDim())
			for i := range x {
				x[i] = float32(i%7-3) / float32(len(x))
			}
			y := b.Heads.Apply(x)
			if len(y) != dim {
				t.Fatalf("heads give %d values, Dim says %d", len(y), dim)
			}
			// Finite weights can still overflow float32 in the product;
			// with weights a trained head could have, the output is finite.
			if moderate(b.Heads) {
				for _, v := range y {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("heads give non-finite %v", y)
					}
				}
			}
		}
		if b.Rerank != nil {
			refs, err := index.NewFlatFrom(2, []string{"a", "b", "c"}, []float32{1, 0, 0, 1, 0.6, 0.8})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rerank.Apply(context.Background(), [][]float32{{1, 0}}, refs, 2, *b.Rerank); err != nil {
				t.Fatalf("accepted re-ranking %+v that cannot run: %v", *b.Rerank, err)
			}
		}
		dst := filepath.Join(dir, fmt.Sprintf("saved%d.json", n))
		if err := b.Save(dst); err != nil {
			t.Fatalf("save: %v", err)
		}
		defer os.Remove(dst)
		again, err := Load(dst)
		if err != nil {
			t.Fatalf("reloading the saved bundle: %v", err)
		}
		// Save writes the current version and moves weights into a
		// tensor file: compare what the bundle means, not where it came from.
		b.Version, b.Tensors = FormatVersion, nil
		again.Tensors = nil
		j1, _ := json.Marshal(b)
		j2, _ := json.Marshal(again)
		if again.ID() != b.ID() || !bytes.Equal(j1, j2) {
			t.Fatalf("save and load changed the bundle:\n%s\n%s", j1, j2)
		}
	})
}

// moderate reports whether every head parameter is within ±1e6.
func moderate(hs describe.Heads) bool {
	for _, h := range hs {
		for _, v := range [][]float32{h.Mean, h.W1, h.B1, h.W} {
			for _, x := range v {
				if math.Abs(float64(x)) > 1e6 {
					return false
				}
			}
		}
	}
	return true
}
