package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"prodsearch/internal/imageio/imagetest"
	"strings"
	"testing"
)

// TestSmoke runs the whole in-process path on a tiny generated data set.
func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	var refs, queries strings.Builder
	palette := []color.RGBA{{250, 10, 10, 255}, {10, 250, 10, 255}, {10, 10, 250, 255}, {250, 250, 10, 255}, {10, 250, 250, 255}, {120, 120, 120, 255}}
	for i, c := range palette {
		jpg := imagetest.JPEG(t, imagetest.Solid(32, 32, c), 75)
		imagetest.WriteFile(t, filepath.Join(dir, fmt.Sprintf("r%d.jpg", i)), jpg)
		fmt.Fprintf(&refs, "r%d.jpg\tL%d\n", i, i)
		if i < 2 {
			imagetest.WriteFile(t, filepath.Join(dir, fmt.Sprintf("q%d.jpg", i)), jpg)
			fmt.Fprintf(&queries, "q%d.jpg\tL%d\n", i, i)
		}
	}
	rm, qm := filepath.Join(dir, "refs.tsv"), filepath.Join(dir, "queries.tsv")
	imagetest.WriteFile(t, rm, []byte(refs.String()))
	imagetest.WriteFile(t, qm, []byte(queries.String()))
	out := filepath.Join(dir, "out.json")
	var stdout bytes.Buffer
	err := dispatch(context.Background(), []string{"load", "-refs", "6,50", "-c", "1,2", "-n", "20", "-dim", "32",
		"-references", rm, "-queries", qm, "-json", out}, &stdout)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	var rs []loadResult
	data, _ := os.ReadFile(out)
	if err := json.Unmarshal(data, &rs); err != nil || len(rs) != 4 {
		t.Fatalf("results %s: %v", data, err)
	}
	for _, r := range rs {
		if r.Errors != 0 || r.RPS <= 0 || r.Latency["search"].P99 <= 0 || r.Top1Label != 1 {
			t.Errorf("result %+v", r)
		}
	}
	if rs[3].Refs != 50 {
		t.Errorf("last run had %d references", rs[3].Refs)
	}
}
