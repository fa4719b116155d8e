package dataset

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// A class table is the catalogue side of a shop: a CSV file with one row
// per product class, naming its class and its catalogue ("studio") image,
// as GroceryStore's dataset/classes.csv does (columns "Class ID (int)" and
// "Iconic Image Path (str)"). Load reads one as a labelled set, so a
// catalogue needs no hand-made manifest.

// Column headers are matched after normalising: lower case, a trailing
// "(type)" note dropped, '_' and '-' read as spaces. The first name of each
// list that a table has wins, so a table with both "label" and "class id"
// takes "label".
var (
	labelColumns = []string{"label", "class id", "classid", "class", "class label", "product id"}
	pathColumns  = []string{"path", "image path", "image", "image file", "file", "filename", "file name"}
	// pathSuffix also matches a qualified image path column such as
	// GroceryStore's "Iconic Image Path (str)"; two such columns are
	// ambiguous.
	pathSuffix = " image path"
)

// normHeader normalises one column header for matching.
func normHeader(h string) string {
	h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
	if i := strings.LastIndex(h, "("); i > 0 && strings.HasSuffix(h, ")") {
		h = h[:i]
	}
	h = strings.NewReplacer("_", " ", "-", " ").Replace(h)
	return strings.Join(strings.Fields(h), " ")
}

// classColumns finds the label and image-path columns in a CSV header;
// missing names what is missing, for an error that lists the header.
func classColumns(header []string) (label, img int, missing []string, err error) {
	norm := make([]string, len(header))
	for i, h := range header {
		norm[i] = normHeader(h)
	}
	find := func(names []string) int {
		for _, n := range names {
			for i, h := range norm {
				if h == n {
					return i
				}
			}
		}
		return -1
	}
	label, img = find(labelColumns), find(pathColumns)
	if img < 0 {
		var cands []int
		for i, h := range norm {
			if strings.HasSuffix(h, pathSuffix) {
				cands = append(cands, i)
			}
		}
		switch len(cands) {
		case 0:
		case 1:
			img = cands[0]
		default:
			return -1, -1, nil, fmt.Errorf("columns %q and %q both look like the image path: rename one to %q", header[cands[0]], header[cands[1]], "path")
		}
	}
	if label < 0 {
		missing = append(missing, `a class column ("label", "class id" or "class")`)
	}
	if img < 0 {
		missing = append(missing, `an image column ("path", "image", or a header ending in "image path")`)
	}
	return label, img, missing, nil
}

// isClassTable reports whether the regular file src should be read as a
// class table: its name ends in .csv, or its first non-blank line has no
// tab (so it is not a manifest line) and reads as a CSV header with a class
// column and an image column.
func isClassTable(src string) (bool, error) {
	if strings.EqualFold(filepath.Ext(src), ".csv") {
		return true, nil
	}
	f, err := os.Open(src)
	if err != nil {
		return false, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.Contains(line, "\t") || !strings.Contains(line, ",") {
			return false, nil
		}
		header, err := csv.NewReader(strings.NewReader(line)).Read()
		if err != nil {
			return false, nil
		}
		_, _, missing, err := classColumns(header)
		return err == nil && len(missing) == 0, nil
	}
	// A first line too long for a header is a manifest problem, reported
	// by the manifest reader.
	return false, nil
}

// loadClassTable reads a class table. Every row is one catalogue image:
// Label is the class column and Path the image column, resolved against
// the table's directory. The table's directory is its root: a path with a
// leading '/' is relative to it (as GroceryStore writes them), and a path
// that leads out of it with ".." is refused. ID is the cleaned path relative
// to the table's directory, slash-separated. Rows keep file order; a row
// with an empty class or image is an error naming its line.
func loadClassTable(src string, c *confiner) (*Set, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("dataset: %s: empty class table (want a header row with a class column and an image column)", src)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", src, err)
	}
	li, pi, missing, err := classColumns(header)
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", src, err)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("dataset: %s: class table lacks %s; its header is %q", src, strings.Join(missing, " and "), header)
	}
	base := filepath.Dir(src)
	set := &Set{Source: src, Format: ClassTable}
	dups := newDupChecker(src, 0)
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("dataset: %s: %w", src, err)
		}
		line, _ := r.FieldPos(0)
		where := fmt.Sprintf("%s:%d", src, line)
		label, raw := strings.TrimSpace(rec[li]), strings.TrimSpace(rec[pi])
		if label == "" {
			return nil, fmt.Errorf("dataset: %s: empty %q", where, header[li])
		}
		if raw == "" {
			return nil, fmt.Errorf("dataset: %s: class %s has an empty %q", where, label, header[pi])
		}
		id := path.Clean(strings.TrimLeft(filepath.ToSlash(raw), "/"))
		if id == "." || id == ".." || strings.HasPrefix(id, "../") {
			return nil, fmt.Errorf("dataset: %s: image %q leads out of the class table's directory %s", where, raw, base)
		}
		it := Item{ID: id, Path: filepath.Join(base, filepath.FromSlash(id)), Label: label}
		if err := dups.add(it, where, c); err != nil {
			return nil, err
		}
		set.Items = append(set.Items, it)
	}
	set.where = dups.where()
	return set, nil
}
