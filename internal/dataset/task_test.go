package dataset

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestCatalogueTask(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "dataset", "classes.csv")
	writeFile(t, table, "label,path\n1,/iconic/1.jpg\n2,/iconic/2.jpg\n3,/iconic/3.jpg\n")
	cat, err := Load(table)
	if err != nil {
		t.Fatal(err)
	}
	photos := []Item{{ID: "p1", Path: "p1.jpg", Label: "1"}, {ID: "p3", Path: "p3.jpg", Label: "3"}, {ID: "p1b", Path: "p1b.jpg", Label: "1"}}
	task, err := CatalogueTask(photos, cat, func(l string) bool { return l != "3" })
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{task.Queries[0].ID, task.Queries[1].ID}; len(task.Queries) != 2 || !reflect.DeepEqual(got, []string{"p1", "p1b"}) {
		t.Errorf("queries %+v, want p1 and p1b", task.Queries)
	}
	// Only the kept classes' catalogue images: class 2 has no photo.
	if len(task.References) != 1 || task.References[0].Label != "1" || task.Classes() != 1 {
		t.Errorf("references %+v, want the catalogue image of class 1 only", task.References)
	}
	all, err := CatalogueTask(photos, cat, nil)
	if err != nil || len(all.Queries) != 3 || len(all.References) != 2 || all.Classes() != 2 {
		t.Errorf("keep all: %+v, %v", all, err)
	}

	_, err = CatalogueTask(append(photos, Item{ID: "p9", Label: "9"}, Item{ID: "pa", Label: "apple"}), cat, nil)
	wantErr(t, err, "classes.csv has no catalogue image for 2 of the photos' 4 classes: 9, apple")
	_, err = CatalogueTask([]Item{{ID: "u", Path: "u.jpg"}}, cat, nil)
	wantErr(t, err, "photo u has no label")
	_, err = CatalogueTask(photos, cat, func(string) bool { return false })
	wantErr(t, err, "no photo belongs")
}

func TestManifestTextRoundTrip(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "data", "dataset", "classes.csv")
	writeFile(t, table, "label,path\n1,/iconic/a b.jpg\n2,/iconic/c.jpg\n")
	cat, err := Load(table)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tasks")
	text, err := ManifestText(out, cat.Items)
	if err != nil {
		t.Fatal(err)
	}
	if want := "../data/dataset/iconic/a b.jpg\t1\n../data/dataset/iconic/c.jpg\t2\n"; string(text) != want {
		t.Errorf("manifest =\n%s\nwant\n%s", text, want)
	}
	writeFile(t, filepath.Join(out, "refs.tsv"), string(text))
	back, err := Load(filepath.Join(out, "refs.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range back.Items {
		a, _ := filepath.Abs(it.Path)
		b, _ := filepath.Abs(cat.Items[i].Path)
		if a != b || it.Label != cat.Items[i].Label {
			t.Errorf("item %d reads back as %s (%s), want %s (%s)", i, a, it.Label, b, cat.Items[i].Label)
		}
	}
	_, err = ManifestText(out, []Item{{ID: "x", Path: "a\tb.jpg", Label: "1"}})
	wantErr(t, err, "cannot be written")
	_, err = ManifestText(out, []Item{{ID: "x", Path: "a.jpg", Label: "1\n2"}})
	wantErr(t, err, "cannot be written")
	if _, err := os.Stat(filepath.Join(out, "refs.tsv")); err != nil {
		t.Error(err)
	}
}

func TestLabelSetAndWithLabels(t *testing.T) {
	items := []Item{{ID: "1", Label: "a"}, {ID: "2", Label: "b"}, {ID: "3", Label: "a"}, {ID: "4", Label: "c"}}
	if s := LabelSet(items); len(s) != 3 || !s["a"] || !s["c"] {
		t.Fatalf("LabelSet = %v", s)
	}
	got := WithLabels(items, map[string]bool{"a": true, "c": true})
	if len(got) != 3 || got[0].ID != "1" || got[1].ID != "3" || got[2].ID != "4" {
		t.Fatalf("WithLabels = %v", got)
	}
	if (Task{Queries: items}).Classes() != 3 {
		t.Fatal("Task.Classes")
	}
}
