package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"prodsearch/internal/imageio/imagetest"
	"prodsearch/internal/store"
	"prodsearch/internal/store/storetest"
)

func writePNG(t *testing.T, path string, c color.Color) {
	imagetest.WriteFile(t, path, imagetest.PNG(t, imagetest.Solid(40, 30, color.RGBAModel.Convert(c).(color.RGBA))))
}

type runner struct {
	t      *testing.T
	d      store.Describer
	asked  []string
	stdout bytes.Buffer
	stderr bytes.Buffer
}

func (r *runner) run(args ...string) error {
	r.stdout.Reset()
	r.stderr.Reset()
	open := func(_ context.Context, flagVal, recorded, shape string) (store.Describer, error) {
		r.asked = append(r.asked, flagVal+"|"+recorded+shape)
		return r.d, nil
	}
	return runIndex(context.Background(), args, &r.stdout, &r.stderr, open, nil)
}

func TestIndexCommands(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	writePNG(t, filepath.Join(data, "classes", "red", "r1.png"), color.RGBA{250, 10, 10, 255})
	writePNG(t, filepath.Join(data, "classes", "red", "r2.png"), color.RGBA{230, 30, 20, 255})
	writePNG(t, filepath.Join(data, "classes", "blue", "b1.png"), color.RGBA{10, 10, 240, 255})
	writePNG(t, filepath.Join(data, "extra", "g1.png"), color.RGBA{10, 240, 10, 255})
	writePNG(t, filepath.Join(data, "single.png"), color.RGBA{200, 200, 200, 255})
	if err := os.WriteFile(filepath.Join(data, "extra", "broken.jpg"), []byte("\xff\xd8\xff\xe0 not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(data, "m.tsv")
	if err := os.WriteFile(manifest, []byte("extra/g1.png\tgreen\nextra/broken.jpg\tgreen\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "store")
	r := &runner{t: t, d: storetest.NewColourDescriber(32)}

	if err := r.run("add", "--store", dir, filepath.Join(data, "classes")); err != nil {
		t.Fatalf("add folder: %v\n%s", err, r.stderr.String())
	}
	if !strings.Contains(r.stdout.String(), "added 3") {
		t.Errorf("add output: %q", r.stdout.String())
	}
	// The manifest has one broken image: the good one is added, the command fails.
	err := r.run("add", "--store", dir, "--label", "grey", manifest, filepath.Join(data, "single.png"))
	if err == nil || !strings.Contains(r.stderr.String(), "broken.jpg") {
		t.Errorf("broken image: err %v, stderr %q", err, r.stderr.String())
	}
	// Re-running skips what is there.
	if err := r.run("add", "--store", dir, filepath.Join(data, "classes")); err != nil || !strings.Contains(r.stderr.String(), "3 of 3 images already in the store") {
		t.Errorf("re-run: %v, %q", err, r.stderr.String())
	}
	if len(r.asked) != 3 || r.asked[0] != "|" || r.asked[1] != "|"+r.d.BundleID() {
		t.Errorf("describer asked for %q", r.asked)
	}

	if err := r.run("list", "--store", dir, "--json", "--limit", "0"); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	dec := json.NewDecoder(&r.stdout)
	for dec.More() {
		var it store.Item
		if err := dec.Decode(&it); err != nil {
			t.Fatal(err)
		}
		got[it.ID] = it.Label
	}
	want := map[string]string{"r1": "red", "r2": "red", "b1": "blue", "g1": "green", "single": "grey"}
	if len(got) != len(want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	for id, l := range want {
		if got[id] != l {
			t.Errorf("item %s: label %q, want %q", id, got[id], l)
		}
	}
	if err := r.run("list", "--store", dir, "--label", "red"); err != nil || !strings.Contains(r.stdout.String(), "items 1-2 of 2") {
		t.Errorf("list by label: %v\n%s", err, r.stdout.String())
	}

	if err := r.run("remove", "--store", dir, "r2", "nope"); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("remove: %v", err)
	}
	if err := r.run("stats", "--store", dir, "--check"); err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(r.stdout.String()), " ")
	for _, w := range []string{"items 4", "check ok", r.d.BundleID()} {
		if !strings.Contains(flat, w) {
			t.Errorf("stats lacks %q:\n%s", w, r.stdout.String())
		}
	}

	// --index hnsw builds the graph once, then reuses it.
	for _, want := range []string{"vectors hnsw (4 indexed at open)", "vectors hnsw (0 indexed at open)"} {
		if err := r.run("stats", "--store", dir, "--index", "hnsw"); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(strings.Fields(r.stdout.String()), " "); !strings.Contains(got, want) {
			t.Errorf("stats --index hnsw lacks %q:\n%s", want, r.stdout.String())
		}
	}
	// --vectors is the deprecated alias of --index.
	if err := r.run("list", "--store", dir, "--vectors", "annoy"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("--vectors annoy: %v", err)
	}

	// A describer from another bundle is refused with the store's bundle named.
	other := &runner{t: t, d: storetest.NewColourDescriber(64)}
	if err := other.run("add", "--store", dir, filepath.Join(data, "single.png")); !errors.Is(err, store.ErrBundleMismatch) {
		t.Errorf("other bundle: %v", err)
	}
}

func TestIndexCommandUsage(t *testing.T) {
	r := &runner{t: t, d: storetest.NewColourDescriber(8)}
	if err := r.run(); err == nil {
		t.Error("no command accepted")
	}
	if err := r.run("frobnicate"); err == nil || !strings.Contains(r.stderr.String(), "usage") {
		t.Errorf("unknown command: %v", err)
	}
	if err := r.run("list"); err == nil || !strings.Contains(err.Error(), "--store") {
		t.Errorf("missing --store: %v", err)
	}
	if err := r.run("add", "-h"); !errors.Is(err, errHelp) {
		t.Errorf("-h: %v", err)
	}
	if err := r.run("stats", "--store", t.TempDir()); !errors.Is(err, store.ErrNoStore) {
		t.Errorf("stats on empty dir: %v", err)
	}
	dup := t.TempDir()
	writePNG(t, filepath.Join(dup, "a", "x.png"), color.Black)
	writePNG(t, filepath.Join(dup, "b", "x.png"), color.White)
	if err := r.run("add", "--store", t.TempDir(), dup); err == nil || !strings.Contains(err.Error(), `ID "x"`) || !strings.Contains(err.Error(), "--ids path") {
		t.Errorf("duplicate IDs: %v", err)
	}
	// With --ids path they are told apart by their folder.
	sdir := t.TempDir()
	if err := r.run("add", "--store", sdir, "--ids", "path", dup); err != nil {
		t.Fatalf("--ids path: %v", err)
	}
	if err := r.run("list", "--store", sdir); err != nil || !strings.Contains(r.stdout.String(), "a/x.png") || !strings.Contains(r.stdout.String(), "b/x.png") {
		t.Errorf("list after --ids path: %v\n%s", err, r.stdout.String())
	}
}

// TestIndexAddNames checks --names: items of a listed label get the
// product name as metadata, others none, and a malformed file is refused.
func TestIndexAddNames(t *testing.T) {
	root := t.TempDir()
	writePNG(t, filepath.Join(root, "classes", "7", "a.png"), color.RGBA{250, 10, 10, 255})
	writePNG(t, filepath.Join(root, "classes", "8", "b.png"), color.RGBA{10, 10, 240, 255})
	names := filepath.Join(root, "names.tsv")
	if err := os.WriteFile(names, []byte("# label\tname\n7\tGranny Smith\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "store")
	r := &runner{t: t, d: storetest.NewColourDescriber(32)}
	if err := r.run("add", "--store", dir, "--names", names, filepath.Join(root, "classes")); err != nil {
		t.Fatalf("add: %v\n%s", err, r.stderr.String())
	}
	s, err := store.Open(context.Background(), dir, r.d.BundleID(), r.d.Dim())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, errA := s.Get("a")
	b, errB := s.Get("b")
	if errA != nil || errB != nil || string(a.Metadata) != `{"name":"Granny Smith"}` || len(b.Metadata) != 0 {
		t.Errorf("metadata a=%s (%v) b=%s (%v)", a.Metadata, errA, b.Metadata, errB)
	}
	if err := os.WriteFile(names, []byte("7 Granny Smith\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.run("add", "--store", dir, "--names", names, filepath.Join(root, "classes")); err == nil || !strings.Contains(err.Error(), "names.tsv:1") {
		t.Errorf("malformed names file: %v", err)
	}
}
