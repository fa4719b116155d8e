package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"prodsearch/internal/dataset"
	"prodsearch/internal/runs"
	"prodsearch/internal/train"
)

// TestTasksCommand builds both sides of the photo -> catalogue task from a
// class table, a training manifest and test manifests, and reads them back.
func TestTasksCommand(t *testing.T) {
	dir := t.TempDir()
	// Eight training classes (0-7) with three photos each, two test classes
	// (8, 9); the catalogue has one image per class.
	var tr, te, table strings.Builder
	table.WriteString("Class Name (str),Class ID (int),Iconic Image Path (str)\n")
	for c := range 10 {
		fmt.Fprintf(&table, "c%d,%d,/iconic/%d.jpg\n", c, c, c)
		for i := range 3 {
			line := fmt.Sprintf("../dataset/photos/%d/%d.jpg\t%d\n", c, i, c)
			if c < 8 {
				tr.WriteString(line)
			} else {
				te.WriteString(line)
			}
		}
	}
	write(t, filepath.Join(dir, "dataset", "classes.csv"), table.String())
	write(t, filepath.Join(dir, "splits", "train.tsv"), tr.String())
	write(t, filepath.Join(dir, "splits", "test.tsv"), te.String())
	out := filepath.Join(dir, "tasks")
	stdout, _, err := runCLI(t, "tasks", "--catalogue", filepath.Join(dir, "dataset", "classes.csv"),
		"--data", filepath.Join(dir, "splits", "train.tsv"), "--test", filepath.Join(dir, "splits", "test.tsv"), "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "val: 6 photos of 2 classes") || !strings.Contains(stdout, "test: 6 photos of 2 classes") {
		t.Errorf("summary:\n%s", stdout)
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"test-queries.tsv", "test-references.tsv", "val-queries.tsv", "val-references.tsv"}; !slices.Equal(names, want) {
		t.Errorf("wrote %v, want exactly %v (no temporary files)", names, want)
	}
	// The validation classes are the ones train holds out by default.
	trainSet, err := dataset.Load(filepath.Join(dir, "splits", "train.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	held := runs.HeldOutClasses(trainSet, runs.DefaultValFrac, train.DefaultConfig().Seed)
	vq, err := dataset.Load(filepath.Join(out, "val-queries.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	vr, err := dataset.Load(filepath.Join(out, "val-references.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range append(vq.Items, vr.Items...) {
		if !held[it.Label] {
			t.Errorf("%s (class %s) is not a held-out class %v", it.ID, it.Label, held)
		}
	}
	if len(vr.Items) != 2 || !strings.HasSuffix(vr.Items[0].Path, filepath.Join("dataset", "iconic", vr.Items[0].Label+".jpg")) {
		t.Errorf("validation references %+v", vr.Items)
	}
	tr2, err := dataset.Load(filepath.Join(out, "test-references.tsv"))
	if err != nil || len(tr2.Items) != 2 || tr2.Items[0].Label != "8" || tr2.Items[1].Label != "9" {
		t.Errorf("test references %+v, %v", tr2, err)
	}
	want, _ := filepath.Abs(filepath.Join(dir, "dataset", "photos", "8", "0.jpg"))
	tq, err := dataset.Load(filepath.Join(out, "test-queries.tsv"))
	if got, _ := filepath.Abs(tq.Items[0].Path); err != nil || got != want {
		t.Errorf("test query 0 at %s, want %s (%v)", got, want, err)
	}

	// Bad input: clear errors, nothing written.
	write(t, filepath.Join(dir, "bad", "nocols.csv"), "name,path\nx,a.jpg\n")
	write(t, filepath.Join(dir, "bad", "other.tsv"), "../dataset/photos/x.jpg\t42\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--catalogue", filepath.Join(dir, "bad", "nocols.csv"), "--test", filepath.Join(dir, "splits", "test.tsv")}, "lacks a class column"},
		{[]string{"--catalogue", filepath.Join(dir, "dataset", "classes.csv"), "--test", filepath.Join(dir, "bad", "other.tsv")}, "no catalogue image for 1 of the photos' 1 classes: 42"},
		{[]string{"--catalogue", filepath.Join(dir, "dataset", "classes.csv")}, "at least one of --data and --test"},
		{[]string{"--catalogue", filepath.Join(dir, "dataset", "classes.csv"), "--data", filepath.Join(dir, "splits", "train.tsv"), "--val-run", "nope"}, "--val-run"},
	} {
		badOut := filepath.Join(dir, "bad-out")
		_, _, err := runCLI(t, append([]string{"tasks", "--out", badOut}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
		if _, serr := os.Stat(badOut); serr == nil {
			t.Errorf("%v: wrote %s despite the error", c.args, badOut)
		}
	}
}
