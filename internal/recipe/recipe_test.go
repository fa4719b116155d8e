package recipe

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"

	"prodsearch/internal/bundle"
	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/runs"
	"prodsearch/internal/testenv"
	"prodsearch/internal/train"
	"prodsearch/internal/vec"
)

// product draws class c's product: two colours in stripes whose count and
// direction depend on the class.
func product(c int, w, h int, img *image.RGBA, x0, y0 int) {
	a := color.RGBA{uint8(40 + 50*(c%5)), uint8(200 - 30*(c%4)), uint8(60 * (c % 3)), 255}
	b := color.RGBA{uint8(220 - 40*(c%3)), uint8(30 * (c % 6)), uint8(90 + 40*(c%4)), 255}
	stripes := 2 + c%4
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			k := x
			if c%2 == 1 {
				k = y
			}
			col := a
			if k*stripes/max(w, h)%2 == 1 {
				col = b
			}
			img.SetRGBA(x0+x, y0+y, col)
		}
	}
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// shop writes a tiny shop: per class, photos (the product smaller, off
// centre, on a noisy background) and one catalogue image (the product
// filling the frame), as two manifests.
func shop(t *testing.T, dir string, classes, photos int) (data, cat *dataset.Set) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var dm, cm strings.Builder
	for c := 0; c < classes; c++ {
		for i := 0; i < photos; i++ {
			img := image.NewRGBA(image.Rect(0, 0, 96, 96))
			for p := range img.Pix {
				img.Pix[p] = uint8(rng.IntN(256))
			}
			s := 48 + rng.IntN(24)
			product(c, s, s, img, rng.IntN(96-s), rng.IntN(96-s))
			name := fmt.Sprintf("p%d_%d.png", c, i)
			writePNG(t, filepath.Join(dir, name), img)
			fmt.Fprintf(&dm, "%s\t%d\n", name, c)
		}
		img := image.NewRGBA(image.Rect(0, 0, 96, 96))
		product(c, 96, 96, img, 0, 0)
		name := fmt.Sprintf("c%d.png", c)
		writePNG(t, filepath.Join(dir, name), img)
		fmt.Fprintf(&cm, "%s\t%d\n", name, c)
	}
	for name, body := range map[string]string{"train.tsv": dm.String(), "cat.tsv": cm.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := dataset.Load(filepath.Join(dir, "train.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err = dataset.Load(filepath.Join(dir, "cat.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	return data, cat
}

// buildShop builds a half-precision, refit model of the backbones on a
// tiny shop, fine-tuning the last blocks of each backbone that lists them.
func buildShop(t *testing.T, blocks int, backbones ...string) (res *Result, out string, data, cat *dataset.Set, log *bytes.Buffer) {
	t.Helper()
	models, lib := testenv.Models(t)
	tmp := t.TempDir()
	dataDir := filepath.Join(tmp, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, cat = shop(t, dataDir, 8, 5)
	cfg := train.DefaultConfig()
	// No whitening: a 1280-d eigendecomposition would dominate the test.
	cfg.Dim, cfg.Whiten, cfg.Epochs, cfg.BatchP, cfg.BatchK = 16, train.WhitenNone, 3, 4, 2
	cfg.FineTuneBlocks = blocks
	out = filepath.Join(tmp, "model")
	log = &bytes.Buffer{}
	res, err := Build(context.Background(), Config{
		Data: data, Catalogue: cat, Backbones: backbones,
		Train: cfg, ValFrac: 0.5, Keep: runs.Retention{}, Patience: 2, Refit: true, TrainOnCatalogue: true,
		Crops: []float64{0, 0.6}, Scale: 64, Half: true, Out: out,
		Engine:     bundle.Options{ModelDir: models, Library: lib, Threads: 1},
		Files:      describe.FileOptions{Batch: 8},
		Provenance: bundle.Provenance{Command: "test", Data: "train.tsv", Catalogue: "cat.tsv"},
		Log:        log,
	})
	if err != nil {
		t.Fatal(err, "\n", log.String())
	}
	t.Log(log.String())
	// Everything lives under the output directory.
	entries, _ := os.ReadDir(tmp)
	if len(entries) != 2 {
		t.Fatalf("wrote outside --out: %v", entries)
	}
	return res, out, data, cat, log
}

func TestBuildWritesOneModel(t *testing.T) {
	res, out, data, cat, log := buildShop(t, 0, "mnv2_int8", "coral_mnv2")
	m, err := bundle.Load(filepath.Join(out, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.ID() != res.Bundle.ID() || len(m.Members) != 2 || m.Members[0].Ref != "members/mnv2_int8.json" {
		t.Fatalf("model: %d members, ref %q", len(m.Members), m.Members[0].Ref)
	}
	if len(m.Recipes) != 3 {
		t.Fatalf("recipes %+v", m.Recipes)
	}
	for _, r := range m.Recipes {
		if r.Val == nil || r.Plain == nil || r.Val.MAP+1e-9 < r.Plain.MAP {
			t.Errorf("recipe %s scores below plain search on validation: %+v", r.Shape, r)
		}
	}
	p := m.Provenance
	if p == nil || len(p.DataSHA256) != 64 || len(p.ValClasses) != 4 {
		t.Fatalf("provenance %+v", p)
	}
	// The refit trained on every photo and catalogue image: the hash covers
	// them all, and says so.
	h, err := DataHash(&dataset.Set{Items: append(slices.Clone(data.Items), cat.Items...)})
	if err != nil || h != p.DataSHA256 || !p.CatalogueTrained {
		t.Fatalf("data hash %s vs %s (%v), catalogue trained %v", h, p.DataSHA256, err, p.CatalogueTrained)
	}
	for _, name := range []string{"MODEL.md", "members/mnv2_int8.safetensors", "runs/coral_mnv2/run.json", "runs/coral_mnv2-all/run.json"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	// The catalogue images of one-image catalogues were tried at each crop.
	if n := strings.Count(log.String(), "one-image catalogues, catalogue images at centre crop"); n != 2 {
		t.Errorf("%d catalogue-side crops tried, want 2:\n%s", n, log.String())
	}
	// The model holds the refits, trained for the held-out runs' best epochs.
	for i, name := range []string{"mnv2_int8", "coral_mnv2"} {
		held, refit := res.Runs[name], res.Refits[name]
		if refit == nil || refit.Best.Metrics.Epoch != held.Best.Metrics.Epoch || !strings.Contains(m.Members[i].Bundle.Notes, "refit") {
			t.Errorf("%s: refit %+v after held-out best %s; notes %q", name, refit, held.Best.Ref(), m.Members[i].Bundle.Notes)
		}
	}
	card, _ := os.ReadFile(filepath.Join(out, "MODEL.md"))
	if !strings.Contains(string(card), "and the catalogue images of `cat.tsv`") {
		t.Errorf("the model card does not say it trained on the catalogue images:\n%s", card)
	}
	if !strings.Contains(string(card), "(chosen)") || !strings.Contains(string(card), "photo→catalogue") || !strings.Contains(string(card), "refit checkpoint") {
		t.Errorf("model card:\n%s", card)
	}
	// The settings each member trained with are the ones chosen.
	for i, mb := range m.Members {
		want := res.Chosen[[]string{"mnv2_int8", "coral_mnv2"}[i]]
		if settingsName(mb.Bundle.Describe) != settingsName(want) {
			t.Errorf("member %d describes with %v, chosen %v", i, mb.Bundle.Describe, want)
		}
	}
}

// TestBuildRefitsFineTunedMembers builds with the last block fine-tuned:
// the int8 member, which lists no trainable block, joins with a head only;
// the float member's refit is fine-tuned too, its tail is stored as float16
// and its ONNX file, named after it, is rebuilt from the base model when
// missing (as in a fresh clone of a shipped model).
func TestBuildRefitsFineTunedMembers(t *testing.T) {
	res, out, _, _, log := buildShop(t, 1, "mnv2_int8", "coral_mnv2")
	if !strings.Contains(log.String(), "mnv2_int8 lists no trainable blocks") || !strings.Contains(log.String(), "refit: fine-tuning 1 block(s) of coral_mnv2") {
		t.Errorf("log:\n%s", log)
	}
	held, refit := res.Runs["coral_mnv2"], res.Refits["coral_mnv2"]
	if refit == nil || refit.Best.Metrics.Epoch != held.Best.Metrics.Epoch {
		t.Fatalf("refit %+v after held-out best %s", refit, held.Best.Ref())
	}
	card, _ := os.ReadFile(filepath.Join(out, "MODEL.md"))
	if !strings.Contains(string(card), "fine-tuned with the head for coral_mnv2;") || !strings.Contains(string(card), "| coral_mnv2 | 0.") || strings.Contains(string(card), "| 0.0000 |") {
		t.Errorf("model card:\n%s", card)
	}
	onnx := filepath.Join(out, "members", "coral_mnv2.onnx")
	first, err := os.ReadFile(onnx)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(onnx); err != nil {
		t.Fatal(err)
	}
	m, err := bundle.Load(filepath.Join(out, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Members[0].Bundle.FineTuned != nil {
		t.Error("the int8 member is fine-tuned")
	}
	ft := m.Members[1].Bundle.FineTuned
	if ft == nil || ft.File != "coral_mnv2.onnx" {
		t.Fatalf("coral_mnv2 fine-tuned: %+v", ft)
	}
	for _, tt := range ft.Tensors {
		for _, v := range tt.Data {
			if vec.FromHalf(vec.Half(v)) != v {
				t.Fatalf("tail tensor %s holds %v, not a float16 value", tt.Name, v)
			}
		}
	}
	data, err := os.ReadFile(filepath.Join(out, "members", "coral_mnv2.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Deserialize(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range ft.Tensors {
		if tv, ok := st.Tensor("finetuned." + tt.Name); !ok || tv.DType() != safetensors.F16 {
			t.Errorf("tail tensor %s stored as %v (present %v), want F16", tt.Name, tv.DType(), ok)
		}
	}
	models, lib := testenv.Models(t)
	eng, err := bundle.Open(m, bundle.Options{ModelDir: models, Library: lib, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	eng.Close()
	again, err := os.ReadFile(onnx)
	if err != nil || !bytes.Equal(again, first) {
		t.Fatalf("rebuilt %s differs from the one the build wrote (%v)", onnx, err)
	}
}

// TestBuildOneFineTunedMember: a one-member model is that member, so its
// ONNX file lies beside model.json too.
func TestBuildOneFineTunedMember(t *testing.T) {
	_, out, _, _, _ := buildShop(t, 1, "coral_mnv2")
	m, err := bundle.Load(filepath.Join(out, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.FineTuned == nil {
		t.Fatal("the model is not fine-tuned")
	}
	want, err := os.ReadFile(filepath.Join(out, "members", m.FineTuned.File))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, m.FineTuned.File))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s beside model.json: %v", m.FineTuned.File, err)
	}
}

func TestTasksWithoutCatalogue(t *testing.T) {
	var photos []dataset.Item
	for c := 0; c < 3; c++ {
		for i := 0; i < 6; i++ {
			photos = append(photos, dataset.Item{ID: fmt.Sprintf("%d/%d", c, i), Path: fmt.Sprintf("%d/%d", c, i), Label: fmt.Sprint(c)})
		}
	}
	tasks := Tasks(photos, nil)
	want := map[string][2]int{ // queries, references
		"photos":          {6, 12},
		"photo→catalogue": {15, 3},
		"few":             {9, 9},
	}
	if len(tasks) != len(want) {
		t.Fatalf("%d tasks", len(tasks))
	}
	for _, tk := range tasks {
		w := want[tk.Name]
		if len(tk.Qs) != w[0] || len(tk.Rs) != w[1] {
			t.Errorf("%s: %d queries, %d references, want %v", tk.Name, len(tk.Qs), len(tk.Rs), w)
		}
		seen := map[string]bool{}
		for _, it := range tk.Rs {
			seen[it.ID] = true
		}
		for _, it := range tk.Qs {
			if seen[it.ID] {
				t.Errorf("%s: %s is both query and reference", tk.Name, it.ID)
			}
		}
	}
}

func TestTrainingSetsKeepValidationCatalogueForTheRefit(t *testing.T) {
	item := func(id, label string) dataset.Item { return dataset.Item{ID: id, Path: id, Label: label} }
	photos := &dataset.Set{Source: "train.tsv", Items: []dataset.Item{item("p1", "a"), item("p2", "b")}}
	trainCat, valCat := []dataset.Item{item("ca", "a")}, []dataset.Item{item("cb", "b")}
	ids := func(s *dataset.Set) string {
		var out []string
		for _, it := range s.Items {
			out = append(out, it.ID)
		}
		return strings.Join(out, ",")
	}
	held, refit := trainingSets(photos, trainCat, valCat, false)
	if held != photos || refit != photos {
		t.Fatalf("without catalogue training: held %s, refit %s", ids(held), ids(refit))
	}
	held, refit = trainingSets(photos, trainCat, valCat, true)
	if got := ids(held); got != "p1,p2,ca" {
		t.Errorf("held-out runs train on %s: a validation catalogue image is a validation reference", got)
	}
	if got := ids(refit); got != "p1,p2,ca,cb" {
		t.Errorf("refit trains on %s, want every photo and catalogue image", got)
	}
	if ids(photos) != "p1,p2" || held.Source != "train.tsv" {
		t.Errorf("the photos' set changed: %s (source %q)", ids(photos), held.Source)
	}
}
