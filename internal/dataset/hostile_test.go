package dataset_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/describe/describetest"
	"prodsearch/internal/imageio/imagetest"
)

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
}

// tree builds a data root holding a split manifest that reaches its images
// through "..", as GroceryStore's do, and an outside directory with a
// secret, plus links that stay inside, leave, dangle and loop.
func tree(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	imagetest.WriteFile(t, filepath.Join(outside, "secret.jpg"), []byte("secret"))
	imagetest.WriteFile(t, filepath.Join(root, "dataset", "Apple", "a.jpg"), []byte("a"))
	imagetest.WriteFile(t, filepath.Join(root, "dataset", "Apple", "b.jpg"), []byte("b"))
	symlink(t, "a.jpg", filepath.Join(root, "dataset", "Apple", "alias.jpg"))
	symlink(t, filepath.Join(outside, "secret.jpg"), filepath.Join(root, "dataset", "Apple", "escape.jpg"))
	symlink(t, outside, filepath.Join(root, "dataset", "Linked"))
	symlink(t, "nowhere.jpg", filepath.Join(root, "dataset", "Apple", "dangling.jpg"))
	symlink(t, "loop-b.jpg", filepath.Join(root, "dataset", "Apple", "loop-a.jpg"))
	symlink(t, "loop-a.jpg", filepath.Join(root, "dataset", "Apple", "loop-b.jpg"))
	return root, outside
}

// TestDataRootConfinement checks --data-root's rule line by line: `..`
// that stays inside is fine (the default GroceryStore layout), anything
// whose resolved path leaves the root is refused naming the manifest line,
// and without the option every line loads as before.
func TestDataRootConfinement(t *testing.T) {
	root, outside := tree(t)
	manifest := filepath.Join(root, "splits", "m.tsv")
	cases := []struct {
		name, line string
		msg        string // "" = accepted under the root
	}{
		{"dot-dot inside", "../dataset/Apple/a.jpg\tApple", ""},
		{"link inside", "../dataset/Apple/alias.jpg\tApple", ""},
		{"missing file inside", "../dataset/Apple/not-yet.jpg\tApple", ""},
		{"dot-dot outside", "../../outside/secret.jpg\tApple", "resolves to " + filepath.Join(outside, "secret.jpg") + ", outside the data root"},
		{"absolute outside", filepath.Join(outside, "secret.jpg") + "\tApple", "outside the data root"},
		{"link to a file outside", "../dataset/Apple/escape.jpg\tApple", "leads through a symbolic link to " + filepath.Join(outside, "secret.jpg")},
		{"link to a folder outside", "../dataset/Linked/secret.jpg\tApple", "leads through a symbolic link to"},
		{"dangling link", "../dataset/Apple/dangling.jpg\tApple", "symbolic link leads nowhere"},
		{"link loop", "../dataset/Apple/loop-a.jpg\tApple", "symbolic link leads nowhere"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The line under test comes second, after a good one.
			imagetest.WriteFile(t, manifest, []byte("../dataset/Apple/b.jpg\tApple\n"+c.line+"\n"))
			if _, err := dataset.Load(manifest); err != nil {
				t.Fatalf("without a data root: %v", err)
			}
			set, err := dataset.LoadWith(manifest, dataset.Options{Root: root})
			if c.msg == "" {
				if err != nil || len(set.Items) != 2 {
					t.Fatalf("refused under the root: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "m.tsv:2") || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want one naming m.tsv:2 and saying %q", err, c.msg)
			}
			t.Logf("refused: %v", err)
		})
	}
	// A root given through a symbolic link confines to where it leads.
	viaLink := filepath.Join(t.TempDir(), "root-link")
	symlink(t, root, viaLink)
	imagetest.WriteFile(t, manifest, []byte("../dataset/Apple/a.jpg\tApple\n"))
	if _, err := dataset.LoadWith(manifest, dataset.Options{Root: viaLink}); err != nil {
		t.Errorf("root through a link: %v", err)
	}
	if _, err := dataset.LoadWith(manifest, dataset.Options{Root: filepath.Join(root, "nope")}); err == nil || !strings.Contains(err.Error(), "data root") {
		t.Errorf("missing root: %v", err)
	}
	// Class folders: a link out of the root is refused naming the file.
	folders := filepath.Join(root, "folders")
	imagetest.WriteFile(t, filepath.Join(folders, "Pear", "p.jpg"), []byte("p"))
	symlink(t, filepath.Join(outside, "secret.jpg"), filepath.Join(folders, "Pear", "q.jpg"))
	if _, err := dataset.Load(folders); err != nil {
		t.Fatalf("class folders without a data root: %v", err)
	}
	_, err := dataset.LoadWith(folders, dataset.Options{Root: root})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(folders, "Pear", "q.jpg")+" leads through a symbolic link") {
		t.Fatalf("class folders with an escaping link: %v", err)
	}
	t.Logf("class folders refused: %v", err)
	if err := dataset.Confine(root, filepath.Join(root, "dataset", "Apple", "a.jpg")); err != nil {
		t.Errorf("Confine inside: %v", err)
	}
	if err := dataset.Confine(root, filepath.Join(root, "..", "outside", "secret.jpg")); err == nil {
		t.Error("Confine accepted a path outside")
	}
}

// TestBrokenLinksPerItem checks that, without a data root, dangling links
// and link loops in a manifest or a class folder load as items and then
// fail one by one with the system's error when described, promptly, while
// the good images are described.
func TestBrokenLinksPerItem(t *testing.T) {
	root := t.TempDir()
	cls := filepath.Join(root, "Fruit")
	imagetest.WriteFile(t, filepath.Join(cls, "good.png"), imagetest.PNG(t, imagetest.Quadrants(32, 24)))
	symlink(t, "nowhere.jpg", filepath.Join(cls, "dangling.jpg"))
	symlink(t, "loop-b.jpg", filepath.Join(cls, "loop-a.jpg"))
	symlink(t, "loop-a.jpg", filepath.Join(cls, "loop-b.jpg"))
	symlink(t, ".", filepath.Join(cls, "self.jpg")) // a link to a folder is no image
	manifest := filepath.Join(root, "m.tsv")
	imagetest.WriteFile(t, manifest, []byte("Fruit/good.png\tFruit\nFruit/dangling.jpg\tFruit\nFruit/loop-a.jpg\tFruit\n"))

	d, err := describetest.New(describe.DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{manifest, root} {
		set, err := dataset.Load(src)
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, it := range set.Items {
			paths = append(paths, it.Path)
		}
		if len(paths) < 3 {
			t.Fatalf("%s: items %v: the broken links were dropped", src, paths)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		vecs, fails, _, err := d.DescribeFiles(ctx, paths, describe.FileOptions{})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v after %v", src, err, time.Since(start))
		}
		described := 0
		for _, v := range vecs {
			if v != nil {
				described++
			}
		}
		if len(fails) != len(paths)-1 || described != 1 {
			t.Fatalf("%s: %d described, %d failures for %d paths: %v", src, described, len(fails), len(paths), fails)
		}
		for _, f := range fails {
			msg := f.Error()
			if !strings.Contains(msg, "no such file") && !strings.Contains(msg, "too many levels of symbolic links") {
				t.Errorf("unclear failure: %s", msg)
			}
			t.Logf("%s: failed alone in %v: %s", filepath.Base(src), time.Since(start).Round(time.Millisecond), msg)
		}
	}
}

// TestMissingLabels checks that a labelled set with a line that lost its
// label is caught, naming the line, where labels are required.
func TestMissingLabels(t *testing.T) {
	m := filepath.Join(t.TempDir(), "q.tsv")
	imagetest.WriteFile(t, m, []byte("a.jpg\tApple\n# comment\nb.jpg\nc.jpg\t\nd.jpg\tPear\n"))
	set, err := dataset.Load(m)
	if err != nil {
		t.Fatal(err)
	}
	err = set.CheckLabels()
	if err == nil || !strings.Contains(err.Error(), "2 of 4 items have no label") ||
		!strings.Contains(err.Error(), "q.tsv:3 (b.jpg)") || !strings.Contains(err.Error(), "q.tsv:4 (c.jpg)") {
		t.Fatalf("CheckLabels: %v", err)
	}
	t.Logf("refused: %v", err)
	imagetest.WriteFile(t, m, []byte("a.jpg\tApple\n"))
	if set, err := dataset.Load(m); err != nil || set.CheckLabels() != nil {
		t.Errorf("fully labelled: %v", err)
	}
}
