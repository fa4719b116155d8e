package main

import (
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"prodsearch/internal/store/storetest"
)

// TestIndexAddDataRoot checks `index add --data-root`: a manifest reaching
// its images through `..` inside the root is added; a line, a folder file
// or a single file that escapes (through `..` or a symbolic link) fails the
// command before anything is described, naming it; without the flag the
// same inputs are added as before.
func TestIndexAddDataRoot(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	writePNG(t, filepath.Join(root, "dataset", "red", "r1.png"), color.RGBA{250, 10, 10, 255})
	writePNG(t, filepath.Join(outside, "secret.png"), color.RGBA{10, 250, 10, 255})
	if err := os.MkdirAll(filepath.Join(root, "splits"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.png"), filepath.Join(root, "dataset", "red", "s1.png")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	good := filepath.Join(root, "splits", "good.tsv")
	dotdot := filepath.Join(root, "splits", "dotdot.tsv")
	linked := filepath.Join(root, "splits", "linked.tsv")
	for p, text := range map[string]string{
		good:   "../dataset/red/r1.png\tred\n",
		dotdot: "../dataset/red/r1.png\tred\n../../outside/secret.png\tgreen\n",
		linked: "../dataset/red/r1.png\tred\n../dataset/red/s1.png\tgreen\n",
	} {
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"manifest line with ..", []string{dotdot}, "dotdot.tsv:2: ../../outside/secret.png resolves to"},
		{"manifest line through a link", []string{linked}, "linked.tsv:2: ../dataset/red/s1.png leads through a symbolic link to"},
		{"class folder with a link", []string{filepath.Join(root, "dataset")}, "s1.png leads through a symbolic link to"},
		{"single file outside", []string{filepath.Join(outside, "secret.png")}, "secret.png is outside the data root"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &runner{t: t, d: storetest.NewColourDescriber(16)}
			dir := filepath.Join(t.TempDir(), "store")
			err := r.run(append([]string{"add", "--store", dir, "--data-root", root}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "outside the data root "+root) {
				t.Fatalf("err = %v, want one saying %q", err, c.msg)
			}
			if len(r.asked) != 0 {
				t.Errorf("a describer was opened before the paths were checked")
			}
			t.Logf("refused: %v", err)
			// Without the flag the default follows the paths, as before.
			if err := r.run(append([]string{"add", "--store", dir}, c.args...)...); err != nil {
				t.Errorf("without --data-root: %v\n%s", err, r.stderr.String())
			}
		})
	}
	r := &runner{t: t, d: storetest.NewColourDescriber(16)}
	if err := r.run("add", "--store", filepath.Join(base, "store"), "--data-root", root, good); err != nil || !strings.Contains(r.stdout.String(), "added 1") {
		t.Errorf("manifest inside the root: %v %q", err, r.stdout.String())
	}
}

// TestIndexAddBrokenFiles checks that unreadable entries of a folder (a
// dangling link, a link loop, a text file named .jpg, an empty file) are
// skipped one by one with the reason, the good images are added, and the
// command then fails saying how many could not be added.
func TestIndexAddBrokenFiles(t *testing.T) {
	data := t.TempDir()
	writePNG(t, filepath.Join(data, "a.png"), color.RGBA{250, 10, 10, 255})
	writePNG(t, filepath.Join(data, "b.png"), color.RGBA{10, 10, 250, 255})
	for name, target := range map[string]string{"dangling.jpg": "gone.jpg", "loop1.jpg": "loop2.jpg", "loop2.jpg": "loop1.jpg"} {
		if err := os.Symlink(target, filepath.Join(data, name)); err != nil {
			t.Skipf("symlinks unavailable: %v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(data, "notes.jpg"), []byte("name,price\napple,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "empty.jpg"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := &runner{t: t, d: storetest.NewColourDescriber(16)}
	err := r.run("add", "--store", filepath.Join(t.TempDir(), "store"), data)
	if err == nil || !strings.Contains(err.Error(), "5 of 7 images could not be added") || !strings.Contains(r.stdout.String(), "added 2, failed 5") {
		t.Fatalf("err %v\nstdout %s\nstderr %s", err, r.stdout.String(), r.stderr.String())
	}
	for _, want := range []string{
		"dangling.jpg: imageio: stat " + filepath.Join(data, "dangling.jpg") + ": no such file or directory",
		"loop1.jpg: too many levels of symbolic links",
		"notes.jpg: imageio: unsupported image format: unrecognised signature",
		"empty.jpg: imageio: empty input",
	} {
		if !strings.Contains(r.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr.String())
		}
	}
	for _, line := range strings.Split(r.stderr.String(), "\n") {
		if strings.Contains(line, "skip ") {
			t.Logf("%s", strings.TrimSpace(strings.TrimPrefix(line, "\r")))
		}
	}
	t.Logf("%s -> %v", strings.TrimSpace(r.stdout.String()), err)
}
