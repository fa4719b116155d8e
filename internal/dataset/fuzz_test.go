package dataset

import (
	"cmp"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzManifest feeds arbitrary bytes as a TSV manifest. Whatever Load
// accepts must be well formed and must survive being written back out as a
// manifest and read again unchanged; whatever it refuses must be refused
// with an error naming the package and the file.
func FuzzManifest(f *testing.F) {
	// One directory for all inputs, and a new file name for each (rewriting
	// a file in place flushes it on ext4, which costs more than Load).
	dir := filepath.Join(f.TempDir(), "splits")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	n := 0
	write := func(t *testing.T, data []byte) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("m%d.tsv", n))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(p) })
		return p
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src := write(t, data)
		set, err := Load(src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "dataset: ") || !strings.Contains(err.Error(), src) {
				t.Fatalf("unclear error %q", err)
			}
			return
		}
		if set.Format == ClassTable {
			return // the first line read as a class-table header: FuzzClassTable's case
		}
		if set.Format != Manifest || len(set.Items) == 0 {
			t.Fatalf("format %v with %d items", set.Format, len(set.Items))
		}
		if n := strings.Count(string(data), "\n") + 1; len(set.Items) > n {
			t.Fatalf("%d items from %d lines", len(set.Items), n)
		}
		ids, files := map[string]bool{}, map[string]bool{}
		var out strings.Builder
		for _, it := range set.Items {
			if it.ID == "" || it.ID != strings.TrimSpace(it.ID) || it.Label != strings.TrimSpace(it.Label) ||
				strings.ContainsAny(it.ID+it.Label, "\t\n") || strings.HasPrefix(it.ID, "#") {
				t.Fatalf("malformed item %+v", it)
			}
			want := filepath.FromSlash(it.ID)
			if !filepath.IsAbs(want) {
				want = filepath.Join(dir, want)
			}
			if it.Path != want {
				t.Fatalf("item %q: path %q, want %q", it.ID, it.Path, want)
			}
			if ids[it.ID] || files[filepath.Clean(it.Path)] {
				t.Fatalf("item %q: duplicate accepted", it.ID)
			}
			ids[it.ID], files[filepath.Clean(it.Path)] = true, true
			out.WriteString(it.ID)
			if it.Label != "" {
				out.WriteString("\t" + it.Label)
			}
			out.WriteString("\n")
		}
		again, err := Load(write(t, []byte(out.String())))
		if err != nil {
			t.Fatalf("rewritten manifest %q: %v", out.String(), err)
		}
		if !slices.Equal(again.Items, set.Items) {
			t.Fatalf("round trip changed the items:\n%+v\n%+v", set.Items, again.Items)
		}
	})
}

// Limits on the trees FuzzLayout builds, so one input stays cheap.
const (
	fuzzMaxPaths = 24
	fuzzMaxDepth = 5
	fuzzMaxName  = 64
)

// fuzzRel turns a line into slash-separated path components, changing it
// only as far as a file system requires: no NUL, no empty, "." or ".."
// components, and bounded name length and depth.
func fuzzRel(line string) []string {
	var parts []string
	for _, c := range strings.Split(line, "/") {
		c = strings.ReplaceAll(c, "\x00", "")
		if len(c) > fuzzMaxName {
			c = c[:fuzzMaxName]
		}
		if c == "" || c == "." || c == ".." {
			continue
		}
		parts = append(parts, c)
	}
	if len(parts) > fuzzMaxDepth {
		parts = parts[len(parts)-fuzzMaxDepth:]
	}
	return parts
}

// FuzzLayout reads the input as one relative path per line, builds that
// tree (a line "path -> target" makes a symbolic link instead of a file),
// and checks Load against what the layout implies: flat folder or class
// folders with exactly the visible image files, IDs and labels as
// documented, or the documented error when the layout is ambiguous, empty
// or has clashing IDs.
// FuzzClassTable feeds rows under a class-table header: the load either
// fails with an error naming the table, or every image lies inside the
// table's directory, has a class and appears once.
func FuzzClassTable(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "dataset")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("1,/iconic/a.jpg\n2,b/c.jpg\n"))
	f.Add([]byte("1,../x.jpg\n"))
	f.Add([]byte("\"a\nb\",x.jpg\n,y.jpg\n"))
	n := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		n++
		src := filepath.Join(dir, fmt.Sprintf("c%d.csv", n))
		if err := os.WriteFile(src, append([]byte("Class ID (int),Image Path\n"), data...), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(src)
		set, err := Load(src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "dataset: ") || !strings.Contains(err.Error(), src) {
				t.Fatalf("unclear error %q", err)
			}
			return
		}
		ids := map[string]bool{}
		for _, it := range set.Items {
			rel, err := filepath.Rel(dir, it.Path)
			if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || it.Label == "" || ids[it.ID] {
				t.Fatalf("item %+v escapes %s, lacks a class or repeats", it, dir)
			}
			ids[it.ID] = true
		}
	})
}

func FuzzLayout(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		lines := strings.Split(string(data), "\n")
		if len(lines) > fuzzMaxPaths {
			lines = lines[:fuzzMaxPaths]
		}
		type link struct {
			rel    []string
			target string
		}
		var links []link
		var created []string // slash-separated, regular files and links to them
		for _, line := range lines {
			if l, target, ok := strings.Cut(line, " -> "); ok {
				if rel := fuzzRel(l); len(rel) > 0 {
					links = append(links, link{rel, strings.ReplaceAll(target, "\x00", "")})
				}
				continue
			}
			rel := fuzzRel(line)
			if len(rel) == 0 {
				continue
			}
			p := filepath.Join(root, filepath.Join(rel...))
			// A path clashing with an earlier one (a file where a directory
			// is needed, or the reverse, or a repeat) is left out.
			if os.MkdirAll(filepath.Dir(p), 0o755) != nil {
				continue
			}
			fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				continue
			}
			fh.WriteString("not decoded")
			fh.Close()
			created = append(created, strings.Join(rel, "/"))
		}
		// Links come last and only inside real directories, so no file
		// above was written through a link.
		var made []string
	links:
		for _, l := range links {
			dir := root
			for _, c := range l.rel[:len(l.rel)-1] {
				dir = filepath.Join(dir, c)
				if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
					continue links
				}
			}
			if os.Symlink(l.target, filepath.Join(dir, l.rel[len(l.rel)-1])) == nil {
				made = append(made, strings.Join(l.rel, "/"))
			}
		}
		// Judged once all exist, since a later link can give an earlier one
		// somewhere to lead. Kept: links to regular files, and links leading
		// nowhere (dangling, loops), which fail when read.
		for _, rel := range made {
			if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err != nil || fi.Mode().IsRegular() {
				created = append(created, rel)
			}
		}

		var top, nested []string
		for _, rel := range created {
			hidden := slices.ContainsFunc(strings.Split(rel, "/"), func(c string) bool { return strings.HasPrefix(c, ".") })
			if !IsImage(rel) {
				hidden = true
			}
			switch {
			case hidden:
			case strings.Contains(rel, "/"):
				nested = append(nested, rel)
			default:
				top = append(top, rel)
			}
		}
		var want []Item
		wantFormat := ClassFolders
		for _, rel := range nested {
			want = append(want, Item{ID: rel, Path: filepath.Join(root, filepath.FromSlash(rel)), Label: path.Dir(rel)})
		}
		dupStem := false
		if len(top) > 0 {
			wantFormat = FlatFolder
			seen := map[string]bool{}
			for _, rel := range top {
				id := strings.TrimSuffix(rel, path.Ext(rel))
				dupStem = dupStem || seen[id]
				seen[id] = true
				want = append(want, Item{ID: id, Path: filepath.Join(root, rel)})
			}
		}
		slices.SortFunc(want, func(a, b Item) int { return cmp.Compare(a.ID, b.ID) })

		set, err := Load(root)
		wantErr := ""
		switch {
		case len(top) > 0 && len(nested) > 0:
			wantErr = "ambiguous layout"
		case len(want) == 0:
			wantErr = "no images found"
		case dupStem:
			wantErr = "duplicate ID"
		}
		if wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), "dataset: ") || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("tree %q: got %v, want an error about %s", created, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("tree %q: %v", created, err)
		}
		if set.Format != wantFormat || set.Source != root {
			t.Fatalf("tree %q: format %v source %q, want %v", created, set.Format, set.Source, wantFormat)
		}
		if !slices.Equal(set.Items, want) {
			t.Fatalf("tree %q:\n got %+v\nwant %+v", created, set.Items, want)
		}
		for _, it := range set.Items {
			if rel, err := filepath.Rel(root, it.Path); err != nil || !filepath.IsLocal(rel) {
				t.Fatalf("item %q: path %q outside the tree", it.ID, it.Path)
			}
		}
	})
}
