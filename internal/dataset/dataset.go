// Package dataset turns the on-disk forms a retrieval split comes in (a TSV
// manifest, a CSV class table of catalogue images, class folders, the
// hackathon's flat folder) into one list of items, so every command sees the same IDs, paths and labels and an
// ambiguous or duplicated input fails loudly instead of skewing a score.
package dataset

import (
	"bufio"
	"cmp"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Format records which on-disk form a Set was read from, because the form
// decides what an ID means (manifest path, relative path or bare file stem).
type Format int

// The forms Load recognises.
const (
	// Manifest is a TSV file of `path<TAB>label` lines.
	Manifest Format = iota + 1
	// ClassFolders is a directory tree whose leaf folders name the classes.
	ClassFolders
	// FlatFolder is a directory holding unlabeled images directly, as in the
	// hackathon's test/test_data/query and .../reference.
	FlatFolder
	// ClassTable is a CSV file with one catalogue image per row: a class
	// column and an image-path column, found by header.
	ClassTable
)

// String names the format for logs and reports.
func (f Format) String() string {
	switch f {
	case Manifest:
		return "manifest"
	case ClassFolders:
		return "class-folders"
	case FlatFolder:
		return "flat-folder"
	case ClassTable:
		return "class-table"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Item is one image. ID is what rankings and label maps refer to; Path is
// ready to open from the current directory; Label is "" when unlabeled.
type Item struct {
	ID    string
	Path  string
	Label string
}

// Set is everything Load found in one source, in a deterministic order.
type Set struct {
	Source string
	Format Format
	Items  []Item

	where map[string]string // ID -> "file:line" or path, for messages
}

// Labels maps each labeled item's ID to its label, the shape the evaluator
// takes. Unlabeled items are left out, so a set that cannot be scored shows
// up as unknown IDs rather than as a class named "".
func (s *Set) Labels() map[string]string {
	m := make(map[string]string, len(s.Items))
	for _, it := range s.Items {
		if it.Label != "" {
			m[it.ID] = it.Label
		}
	}
	return m
}

// CheckLabels returns an error unless every item has a label, naming the
// first unlabeled ones by manifest line or file. Scoring needs it: a line
// that lost its label column would otherwise drop out of the score, or
// surface later as an "unknown query".
func (s *Set) CheckLabels() error {
	var missing []string
	n := 0
	for _, it := range s.Items {
		if it.Label != "" {
			continue
		}
		if n++; len(missing) < 3 {
			if w := s.where[it.ID]; w != "" && w != it.Path {
				missing = append(missing, fmt.Sprintf("%s (%s)", w, it.ID))
			} else {
				missing = append(missing, it.ID)
			}
		}
	}
	if n == 0 {
		return nil
	}
	more := ""
	if n > len(missing) {
		more = ", ..."
	}
	return fmt.Errorf("dataset: %s: %d of %d items have no label: %s%s", s.Source, n, len(s.Items), strings.Join(missing, ", "), more)
}

// IsImage reports whether name has an image extension Load accepts
// (.jpg .jpeg .png .gif .webp .heic .heif .avif .tif .tiff, any case), so
// other tools agree with Load on what counts as an image.
func IsImage(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic", ".heif", ".avif", ".tif", ".tiff":
		return true
	}
	return false
}

// Load reads src, choosing the form from what it is:
//
//   - a regular file named *.csv, or whose first line is a comma-separated
//     header with a class column and an image column, is a class table
//     (see loadClassTable): every row one labelled catalogue image.
//   - any other regular file is a TSV manifest: `path<TAB>label` per line, label
//     column optional (absent or empty means unlabeled), blank lines and lines
//     starting with '#' skipped, a trailing '\r' ignored, and spaces around
//     each field trimmed. Relative paths are resolved against the manifest's
//     directory. ID is the path exactly as written, because base names repeat
//     across classes in real data. Items keep manifest order. The images are
//     not opened or checked for existence.
//   - a directory with image files in subdirectories (and none directly
//     inside) is class folders: ID is the slash-separated path relative to
//     src, and Label is the directory holding the image, relative to src.
//   - a directory with image files directly inside (and none in
//     subdirectories) is a flat folder: ID is the file name without
//     directory or extension, as the challenge required, and Label is "".
//
// In directories, hidden files and directories are skipped, symbolic links
// to directories are not followed, links that lead nowhere (dangling, or a
// loop) are kept so that reading them reports the broken image, and items
// are sorted by ID. Images both
// at the top level and in subdirectories is an error, since neither reading
// would be what was meant. Two items with the same ID, or two IDs naming the
// same file, is an error naming both; so is a set with no items.
func Load(src string) (*Set, error) { return LoadWith(src, Options{}) }

// Options change how LoadWith reads a set; the zero value is Load.
type Options struct {
	// Root, when set, confines the set to a directory tree: every item's
	// path, once `..` and symbolic links are resolved, must lie inside
	// Root, or the load fails naming the manifest line (or file) that
	// escapes, or whose link leads nowhere. Without Root, paths are
	// followed wherever they lead, as GroceryStore's split manifests
	// (../dataset/...) need. The check is made when the set is loaded.
	Root string
}

// LoadWith is Load with options.
func LoadWith(src string, opt Options) (*Set, error) {
	var c *confiner
	if opt.Root != "" {
		var err error
		if c, err = newConfiner(opt.Root); err != nil {
			return nil, err
		}
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	var set *Set
	if fi.IsDir() {
		set, err = loadDir(src, c)
	} else if table, terr := isClassTable(src); terr != nil {
		return nil, terr
	} else if table {
		set, err = loadClassTable(src, c)
	} else {
		set, err = loadManifest(src, c)
	}
	if err != nil {
		return nil, err
	}
	if len(set.Items) == 0 {
		return nil, fmt.Errorf("dataset: %s: no images found", src)
	}
	return set, nil
}

// origin says where an item came from, for duplicate errors.
type origin struct {
	id   string
	from string // "file:line" for manifests, the path for directories
}

// dupChecker rejects a second item with an already-seen ID or file.
type dupChecker struct {
	src    string
	byID   map[string]origin
	byPath map[string]origin
}

func newDupChecker(src string, n int) *dupChecker {
	return &dupChecker{src: src, byID: make(map[string]origin, n), byPath: make(map[string]origin, n)}
}

// add records it, refusing a duplicate and, under a data root, a path
// that escapes it.
func (d *dupChecker) add(it Item, from string, c *confiner) error {
	if c != nil {
		if from == it.Path { // a folder's file: the error names it
			if err := c.check(it.Path, it.Path); err != nil {
				return fmt.Errorf("dataset: %w", err)
			}
		} else if err := c.check(it.Path, it.ID); err != nil {
			return fmt.Errorf("dataset: %s: %w", from, err)
		}
	}
	if prev, ok := d.byID[it.ID]; ok {
		return fmt.Errorf("dataset: %s: duplicate ID %q: %s and %s", d.src, it.ID, prev.from, from)
	}
	d.byID[it.ID] = origin{it.ID, from}
	key := filepath.Clean(it.Path)
	if prev, ok := d.byPath[key]; ok {
		return fmt.Errorf("dataset: %s: file %s listed twice, as %q (%s) and %q (%s)", d.src, key, prev.id, prev.from, it.ID, from)
	}
	d.byPath[key] = origin{it.ID, from}
	return nil
}

// where maps each ID to where it came from.
func (d *dupChecker) where() map[string]string {
	m := make(map[string]string, len(d.byID))
	for id, o := range d.byID {
		m[id] = o.from
	}
	return m
}

func loadManifest(src string, c *confiner) (*Set, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()

	base := filepath.Dir(src)
	set := &Set{Source: src, Format: Manifest}
	dups := newDupChecker(src, 0)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", src, n)
		fields := strings.Split(line, "\t")
		if len(fields) > 2 {
			return nil, fmt.Errorf("dataset: %s: %d tab-separated columns, want path and optional label", where, len(fields))
		}
		id := strings.TrimSpace(fields[0])
		if id == "" {
			return nil, fmt.Errorf("dataset: %s: empty path", where)
		}
		label := ""
		if len(fields) == 2 {
			label = strings.TrimSpace(fields[1])
		}
		p := filepath.FromSlash(id)
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		it := Item{ID: id, Path: p, Label: label}
		if err := dups.add(it, where, c); err != nil {
			return nil, err
		}
		set.Items = append(set.Items, it)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dataset: reading %s: %w", src, err)
	}
	set.where = dups.where()
	return set, nil
}

func loadDir(src string, c *confiner) (*Set, error) {
	var top, nested []string // slash-separated paths relative to src
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == src {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !IsImage(d.Name()) {
			return nil
		}
		if !d.Type().IsRegular() {
			// A symlink or other special file: keep it if it leads to a
			// regular file, so a link to a directory named x.jpg is not an
			// image, or if it leads nowhere (dangling, or a loop), so the
			// broken image is reported when read instead of silently missing.
			fi, err := os.Stat(p)
			if err == nil && !fi.Mode().IsRegular() {
				return nil
			}
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.Contains(rel, "/") {
			nested = append(nested, rel)
		} else {
			top = append(top, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dataset: walking %s: %w", src, err)
	}
	switch {
	case len(top) > 0 && len(nested) > 0:
		return nil, fmt.Errorf("dataset: %s: ambiguous layout: images both directly inside (e.g. %s) and in subdirectories (e.g. %s)",
			src, top[0], nested[0])
	case len(top) > 0:
		return buildSet(src, FlatFolder, top, c, func(rel string) (string, string) {
			return strings.TrimSuffix(rel, path.Ext(rel)), ""
		})
	default:
		return buildSet(src, ClassFolders, nested, c, func(rel string) (string, string) {
			return rel, path.Dir(rel)
		})
	}
}

// buildSet names each relative path with idLabel, rejects duplicates and
// sorts by ID so the order does not depend on the file system.
func buildSet(src string, f Format, rels []string, c *confiner, idLabel func(rel string) (id, label string)) (*Set, error) {
	set := &Set{Source: src, Format: f, Items: make([]Item, 0, len(rels))}
	dups := newDupChecker(src, len(rels))
	for _, rel := range rels {
		id, label := idLabel(rel)
		p := filepath.Join(src, filepath.FromSlash(rel))
		it := Item{ID: id, Path: p, Label: label}
		if err := dups.add(it, p, c); err != nil {
			return nil, err
		}
		set.Items = append(set.Items, it)
	}
	set.where = dups.where()
	slices.SortFunc(set.Items, func(a, b Item) int { return cmp.Compare(a.ID, b.ID) })
	return set, nil
}
