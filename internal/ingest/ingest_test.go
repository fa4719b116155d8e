package ingest

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"prodsearch/internal/imageio/imagetest"
	"prodsearch/internal/store"
	"prodsearch/internal/store/storetest"
)

// TestAddCommitReceipts checks the line Add (`index add`) prints per committed
// batch when stderr is not a terminal: what a supervisor or a crash test
// relies on to know which items are durable. Each ID appears once, quoted
// (IDs may hold spaces), and every ID named is in the store.
func TestAddCommitReceipts(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("photo %d", i) // a space, as IDs may have
		img := image.NewRGBA(image.Rect(0, 0, 24, 16))
		for p := range img.Pix {
			img.Pix[p] = uint8(40*i + p%7)
		}
		imagetest.WriteFile(t, filepath.Join(data, "c", id+".png"), imagetest.PNG(t, img))
		want = append(want, id)
	}
	dir := filepath.Join(root, "store")
	var stderr bytes.Buffer
	srcs, err := Collect([]string{data}, "", IDsName, "")
	if err != nil {
		t.Fatal(err)
	}
	d := storetest.NewColourDescriber(16)
	ctx := context.Background()
	s, err := store.Open(ctx, dir, d.BundleID(), d.Dim())
	if err != nil {
		t.Fatal(err)
	}
	st, err := Add(ctx, s, d, srcs, Options{Batch: 3, Workers: 2}, &stderr)
	if cerr := s.Close(); err != nil || cerr != nil || st.Added != 7 || st.Failed != 0 {
		t.Fatal(st, err, cerr, stderr.String())
	}
	receipt := regexp.MustCompile(`^committed (\d+) items \((\d+) in all\):((?: "[^"]*")+)$`)
	seen := map[string]bool{}
	batches, total := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		m := receipt.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("not a receipt: %q", line)
		}
		n, _ := strconv.Atoi(m[1])
		all, _ := strconv.Atoi(m[2])
		ids := regexp.MustCompile(`"[^"]*"`).FindAllString(m[3], -1)
		if total += n; all != total || len(ids) != n || n > 3 {
			t.Fatalf("receipt %q: %d IDs, running total %d", line, len(ids), total)
		}
		for _, q := range ids {
			id, err := strconv.Unquote(q)
			if err != nil || seen[id] {
				t.Fatalf("receipt %q: %q twice or malformed (%v)", line, q, err)
			}
			seen[id] = true
		}
		batches++
	}
	if batches != 3 || len(seen) != len(want) {
		t.Fatalf("%d receipts naming %d IDs, want 3 naming %d:\n%s", batches, len(seen), len(want), stderr.String())
	}
	s, err = store.Open(ctx, dir, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range want {
		if !seen[id] || !s.Has(id) {
			t.Errorf("%q: receipt %v, stored %v", id, seen[id], s.Has(id))
		}
	}
}
