package dataset

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Task is one retrieval task: every query ranked against the references.
type Task struct {
	Queries, References []Item
}

// Classes counts the distinct query labels.
func (t Task) Classes() int { return len(LabelSet(t.Queries)) }

// LabelSet is the set of the items' labels: the classes they show.
func LabelSet(items []Item) map[string]bool {
	m := map[string]bool{}
	for _, it := range items {
		m[it.Label] = true
	}
	return m
}

// WithLabels returns, in order, the items whose label is in keep: a split's
// photos restricted to some classes (the validation ones, say).
func WithLabels(items []Item, keep map[string]bool) []Item {
	var out []Item
	for _, it := range items {
		if keep[it.Label] {
			out = append(out, it)
		}
	}
	return out
}

// CatalogueTask builds the shop's search as a task: the photos whose class
// keep accepts (nil keeps all) are the queries, and the catalogue images of
// those classes are the references, so each query has exactly its
// product's catalogue images as relevant references.
//
// It is an error for a kept photo to have no label, for a kept class to
// have no catalogue image (its photos could not be scored; the classes are
// named, which also shows two sets labelled in different schemes), and for
// no photo to be kept. Queries keep the photos' order, references the
// catalogue's.
func CatalogueTask(photos []Item, catalogue *Set, keep func(label string) bool) (Task, error) {
	var t Task
	classes := map[string]bool{}
	for _, it := range photos {
		if it.Label == "" {
			return Task{}, fmt.Errorf("dataset: photo %s has no label", it.ID)
		}
		if keep == nil || keep(it.Label) {
			t.Queries = append(t.Queries, it)
			classes[it.Label] = true
		}
	}
	if len(t.Queries) == 0 {
		return Task{}, fmt.Errorf("dataset: no photo belongs to the chosen classes")
	}
	have := map[string]bool{}
	for _, it := range catalogue.Items {
		if classes[it.Label] {
			t.References = append(t.References, it)
			have[it.Label] = true
		}
	}
	var lacking []string
	for c := range classes {
		if !have[c] {
			lacking = append(lacking, c)
		}
	}
	if len(lacking) > 0 {
		slices.Sort(lacking)
		shown := strings.Join(lacking[:min(len(lacking), 10)], ", ")
		if len(lacking) > 10 {
			shown += ", ..."
		}
		return Task{}, fmt.Errorf("dataset: %s has no catalogue image for %d of the photos' %d classes: %s (are both labelled the same way?)",
			catalogue.Source, len(lacking), len(classes), shown)
	}
	return t, nil
}

// ManifestText renders items as a TSV manifest to be saved in dir: each
// path is written relative to dir (absolute when it cannot be), so Load
// reads back the same files with the same labels wherever dir is. A path or
// label with a tab or line break cannot be written and is an error.
func ManifestText(dir string, items []Item) ([]byte, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	var b strings.Builder
	for _, it := range items {
		p, err := filepath.Abs(it.Path)
		if err != nil {
			return nil, fmt.Errorf("dataset: %s: %w", it.ID, err)
		}
		if rel, err := filepath.Rel(absDir, p); err == nil {
			p = rel
		}
		p = filepath.ToSlash(p)
		if strings.ContainsAny(p+it.Label, "\t\r\n") || p != strings.TrimSpace(p) || it.Label != strings.TrimSpace(it.Label) || strings.HasPrefix(p, "#") {
			return nil, fmt.Errorf("dataset: %s: path %q or label %q cannot be written to a manifest line", it.ID, p, it.Label)
		}
		b.WriteString(p)
		if it.Label != "" {
			b.WriteString("\t" + it.Label)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String()), nil
}
