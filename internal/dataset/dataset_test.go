package dataset

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"prodsearch/internal/imageio/imagetest"
)

// touch creates each slash-separated path under root as an empty file.
func touch(t *testing.T, root string, rels ...string) {
	t.Helper()
	for _, rel := range rels {
		imagetest.WriteFile(t, filepath.Join(root, filepath.FromSlash(rel)), nil)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	imagetest.WriteFile(t, p, []byte(content))
}

func wantErr(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

func TestLoadManifest(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "elsewhere", "z.jpg")
	manifest := filepath.Join(dir, "splits", "q.tsv")
	writeFile(t, manifest, strings.Join([]string{
		"# comment",
		"../data/b/x.jpg\t2",
		"",
		"   ",
		"../data/a/x.jpg\t1\r", // CRLF line ending; same base name as above
		"../data/c/y.png",      // no label column
		"../data/c/w.png\t",    // empty label column
		abs + "\t 7 ",
		"  # indented comment",
	}, "\n"))

	set, err := Load(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if set.Format != Manifest || set.Source != manifest {
		t.Errorf("Format, Source = %v, %q", set.Format, set.Source)
	}
	data := filepath.Join(dir, "data")
	want := []Item{ // manifest order, IDs exactly as written
		{ID: "../data/b/x.jpg", Path: filepath.Join(data, "b", "x.jpg"), Label: "2"},
		{ID: "../data/a/x.jpg", Path: filepath.Join(data, "a", "x.jpg"), Label: "1"},
		{ID: "../data/c/y.png", Path: filepath.Join(data, "c", "y.png")},
		{ID: "../data/c/w.png", Path: filepath.Join(data, "c", "w.png")},
		{ID: abs, Path: abs, Label: "7"},
	}
	if !reflect.DeepEqual(set.Items, want) {
		t.Errorf("Items =\n%+v\nwant\n%+v", set.Items, want)
	}
	wantLabels := map[string]string{"../data/b/x.jpg": "2", "../data/a/x.jpg": "1", abs: "7"}
	if got := set.Labels(); !reflect.DeepEqual(got, wantLabels) {
		t.Errorf("Labels() = %v, want %v", got, wantLabels)
	}
}

func TestLoadManifestRelativeToCwd(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "m", "list.txt"), "img/a.jpg\tcat\n")
	t.Chdir(dir)
	set, err := Load(filepath.Join("m", "list.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := set.Items[0].Path, filepath.Join("m", "img", "a.jpg"); got != want {
		t.Errorf("Path = %q, want %q (relative to cwd)", got, want)
	}
}

func TestLoadManifestErrors(t *testing.T) {
	cases := []struct {
		name    string
		content string
		subs    []string
	}{
		{"too many columns", "a.jpg\t1\n\nb.jpg\t2\textra\n", []string{"m.tsv:3", "3 tab-separated columns"}},
		{"empty path", "a.jpg\t1\n\t2\n", []string{"m.tsv:2", "empty path"}},
		{"duplicate ID", "a.jpg\t1\nb.jpg\t1\na.jpg\t2\n", []string{`duplicate ID "a.jpg"`, "m.tsv:1", "m.tsv:3"}},
		{"same file twice", "x/a.jpg\t1\n./x/../x/a.jpg\t1\n", []string{"listed twice", `"x/a.jpg"`, `"./x/../x/a.jpg"`, "m.tsv:1", "m.tsv:2"}},
		{"empty", "# nothing\n\n", []string{"no images"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := filepath.Join(t.TempDir(), "m.tsv")
			writeFile(t, m, c.content)
			_, err := Load(m)
			wantErr(t, err, c.subs...)
			t.Logf("refused: %v", err)
		})
	}
}

func TestLoadClassFolders(t *testing.T) {
	root := t.TempDir()
	touch(t, root,
		"Fruit/Apple/Granny-Smith/001.jpg",
		"Fruit/Apple/Granny-Smith/002.JPEG",
		"Fruit/Apple/Red/001.jpg", // same base name, other class
		"Fruit/Apple/loose.png",   // image in a non-leaf dir: labelled by its own dir
		"Milk/a.webp",
		"Milk/notes.txt",    // not an image
		"Milk/.hidden.jpg",  // hidden file
		".cache/Milk/b.jpg", // hidden dir
		"Empty/readme.md",   // no images at all
		"Milk/b.gif",
	)
	set, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if set.Format != ClassFolders {
		t.Errorf("Format = %v, want %v", set.Format, ClassFolders)
	}
	var got [][2]string
	for _, it := range set.Items {
		got = append(got, [2]string{it.ID, it.Label})
		if want := filepath.Join(root, filepath.FromSlash(it.ID)); it.Path != want {
			t.Errorf("Path = %q, want %q", it.Path, want)
		}
	}
	want := [][2]string{
		{"Fruit/Apple/Granny-Smith/001.jpg", "Fruit/Apple/Granny-Smith"},
		{"Fruit/Apple/Granny-Smith/002.JPEG", "Fruit/Apple/Granny-Smith"},
		{"Fruit/Apple/Red/001.jpg", "Fruit/Apple/Red"},
		{"Fruit/Apple/loose.png", "Fruit/Apple"},
		{"Milk/a.webp", "Milk"},
		{"Milk/b.gif", "Milk"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("items (ID, label) =\n%v\nwant\n%v", got, want)
	}
	if n := len(set.Labels()); n != len(want) {
		t.Errorf("len(Labels()) = %d, want %d", n, len(want))
	}
}

func TestLoadFlatFolder(t *testing.T) {
	root := t.TempDir()
	query := filepath.Join(root, "test", "test_data", "query")
	touch(t, query, "b_2.jpg", "a_1.JPG", "c.png", ".DS_Store", "list.txt", "sub/readme")
	set, err := Load(query)
	if err != nil {
		t.Fatal(err)
	}
	if set.Format != FlatFolder {
		t.Errorf("Format = %v, want %v", set.Format, FlatFolder)
	}
	want := []Item{
		{ID: "a_1", Path: filepath.Join(query, "a_1.JPG")},
		{ID: "b_2", Path: filepath.Join(query, "b_2.jpg")},
		{ID: "c", Path: filepath.Join(query, "c.png")},
	}
	if !reflect.DeepEqual(set.Items, want) {
		t.Errorf("Items =\n%+v\nwant\n%+v", set.Items, want)
	}
	if n := len(set.Labels()); n != 0 {
		t.Errorf("flat folder has %d labels, want 0", n)
	}
}

func TestLoadDirErrors(t *testing.T) {
	t.Run("duplicate stem", func(t *testing.T) {
		root := t.TempDir()
		touch(t, root, "a.jpg", "a.png", "b.jpg")
		_, err := Load(root)
		wantErr(t, err, `duplicate ID "a"`, filepath.Join(root, "a.jpg"), filepath.Join(root, "a.png"))
	})
	t.Run("ambiguous", func(t *testing.T) {
		root := t.TempDir()
		touch(t, root, "a.jpg", "cls/b.jpg")
		_, err := Load(root)
		wantErr(t, err, "ambiguous", "a.jpg", "cls/b.jpg")
	})
	t.Run("no images", func(t *testing.T) {
		root := t.TempDir()
		touch(t, root, "x/readme.txt")
		_, err := Load(root)
		wantErr(t, err, "no images")
	})
	t.Run("missing", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
}

func TestFormatString(t *testing.T) {
	for f, want := range map[Format]string{Manifest: "manifest", ClassFolders: "class-folders", FlatFolder: "flat-folder", 0: "Format(0)"} {
		if got := f.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(f), got, want)
		}
	}
}

// TestGroceryStoreSplits checks the shared real splits load and point at
// existing images; it skips where the data is not mounted, except in CI.
func TestGroceryStoreSplits(t *testing.T) {
	const splits = "/work/shared/data/grocerystore/splits"
	if _, err := os.Stat(splits); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but GroceryStore splits are unavailable: %v", err)
		}
		t.Skipf("GroceryStore splits not available at %s: %v", splits, err)
	}
	for _, c := range []struct {
		file string
		n    int
	}{{"query.tsv", 80}, {"reference.tsv", 2626}} {
		set, err := Load(filepath.Join(splits, c.file))
		if err != nil {
			t.Fatal(err)
		}
		if len(set.Items) != c.n {
			t.Errorf("%s: %d items, want %d", c.file, len(set.Items), c.n)
		}
		if n := len(set.Labels()); n != c.n {
			t.Errorf("%s: %d labeled items, want %d", c.file, n, c.n)
		}
		missing := 0
		for _, it := range set.Items {
			if _, err := os.Stat(it.Path); err != nil {
				if missing++; missing <= 5 {
					t.Errorf("%s: %s: %v", c.file, it.ID, err)
				}
			}
		}
		if missing > 5 {
			t.Errorf("%s: %d paths missing in all", c.file, missing)
		}
	}
}
