package bundle

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"prodsearch/internal/describe"
	"prodsearch/internal/imageio"
	"prodsearch/internal/imageio/imagetest"
	"prodsearch/internal/testenv"
	"prodsearch/internal/vec/vectest"
)

// An ensemble describes one image (members side by side) exactly as it
// describes the same file in a batch (one decode shared by the members), also
// when several requests run at once.
func TestEnsembleEngineOneImageMatchesFiles(t *testing.T) {
	dir, lib := testenv.Models(t)
	a, _ := Default("coral_mnv1")
	b, _ := Default("mnv2_int8")
	b.Describe.Crop = 0.8
	ens := Bundle{Version: FormatVersion, Name: "ens", Members: []Member{{Bundle: a, Weight: 1}, {Bundle: b, Weight: 0.5}}}
	eng, err := Open(ens, Options{ModelDir: dir, Library: lib, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	path := filepath.Join(t.TempDir(), "q.png")
	imagetest.WriteFile(t, path, imagetest.PNG(t, imagetest.Quadrants(300, 200)))
	ctx := context.Background()
	batch, fails, _, err := eng.DescribeFiles(ctx, []string{path}, describe.FileOptions{})
	if err != nil || len(fails) != 0 {
		t.Fatalf("files: %v %v", err, fails)
	}
	img, err := imageio.ReadFile(path, imageio.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one, tm, err := eng.DescribeTimed(ctx, img)
			if err != nil {
				t.Error(err)
				return
			}
			if len(one) != eng.Dim() || tm.Infer <= 0 {
				t.Errorf("one image: %d values (want %d), inference %v", len(one), eng.Dim(), tm.Infer)
				return
			}
			if c := vectest.Cosine(one, batch[0]); c < 0.99999 {
				t.Errorf("one image vs batch: cosine %.6f", c)
			}
		}()
	}
	wg.Wait()
}
