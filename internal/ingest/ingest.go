// Package ingest fills a catalogue store from image files: it collects
// images from folders, manifests and single files, decodes and describes
// them in parallel, and commits them in batches. `prodsearch index add` and
// the load test both call it, so a catalogue is built one way.
package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"prodsearch/internal/dataset"
	"prodsearch/internal/imageio"
	"prodsearch/internal/progress"
	"prodsearch/internal/store"
)

// ID schemes for Collect.
const (
	// IDsName is the file name without directory or extension, what
	// ranking files use; it needs unique names across the input.
	IDsName = "name"
	// IDsPath is the dataset's ID: the path as written in a manifest, or
	// the path relative to a class-folder root; unique when names repeat.
	IDsPath = "path"
)

// Source is one image to add.
type Source struct {
	ID, Path, Label string
}

// Collect expands folders, manifests and single image files into sources,
// and refuses two files that would get the same ID. label is given to images
// that carry none; ids is IDsName or IDsPath; root, when set, refuses images
// outside it (dataset.Confine).
func Collect(args []string, label, ids, root string) ([]Source, error) {
	if ids != IDsName && ids != IDsPath {
		return nil, fmt.Errorf("ids %q: want %s or %s", ids, IDsName, IDsPath)
	}
	var out []Source
	from := map[string]string{}
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		var items []dataset.Item
		if fi.Mode().IsRegular() && dataset.IsImage(a) {
			if root != "" {
				if err := dataset.Confine(root, a); err != nil {
					return nil, err
				}
			}
			items = []dataset.Item{{ID: a, Path: a}}
		} else {
			set, err := dataset.LoadWith(a, dataset.Options{Root: root})
			if err != nil {
				return nil, err
			}
			items = set.Items
		}
		for _, it := range items {
			s := Source{ID: store.RefID(it.Path), Path: it.Path, Label: it.Label}
			if ids == IDsPath {
				s.ID = it.ID
			}
			if s.Label == "" {
				s.Label = label
			}
			if err := store.ValidateID(s.ID); err != nil {
				return nil, fmt.Errorf("%s: %w", it.Path, err)
			}
			if prev, dup := from[s.ID]; dup {
				hint := "rename one or add them to separate stores"
				if ids == IDsName {
					hint = "use --ids path to name items by their path"
				}
				return nil, fmt.Errorf("%s and %s would both get ID %q; %s", prev, it.Path, s.ID, hint)
			}
			from[s.ID] = it.Path
			out = append(out, s)
		}
	}
	return out, nil
}

// Options tune Add.
type Options struct {
	Batch    int  // items per transaction (at least 1)
	Workers  int  // images decoded and described at once (at least 1)
	Replace  bool // overwrite items already stored
	NoImages bool // store descriptors only, not the photos
	// Names maps labels to product names: an item with a listed label is
	// stored with metadata {"name": ...}, which the API and page show.
	Names map[string]string
}

// ReadNames reads a label<TAB>product name file (blank lines and #
// comments skipped) for Options.Names.
func ReadNames(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		l, n, ok := strings.Cut(line, "\t")
		if !ok || l == "" || strings.TrimSpace(n) == "" {
			return nil, fmt.Errorf("%s:%d: want label<TAB>name, got %q", path, i+1, line)
		}
		names[l] = strings.TrimSpace(n)
	}
	return names, nil
}

// Stats count what Add did.
type Stats struct {
	Added, Failed int
	Elapsed       time.Duration
}

type described struct {
	entry store.Entry
	path  string
	err   error
}

// Add decodes and describes srcs in parallel, outside any store lock, and
// commits them in batches from one goroutine, so only whole committed
// batches count as added. An image that cannot be read or described is
// listed on log and counted in Failed; the others are still added. On a
// terminal log shows progress; elsewhere (logs, CI, supervisors) each
// durable batch gets a receipt of its IDs, so after a crash they are known
// to be stored.
func Add(ctx context.Context, s *store.Store, d store.Describer, srcs []Source, opt Options, log io.Writer) (Stats, error) {
	if opt.Batch < 1 || opt.Workers < 1 {
		return Stats{}, fmt.Errorf("ingest: batch %d and workers %d must be at least 1", opt.Batch, opt.Workers)
	}
	start := time.Now()
	var st Stats
	bar := progress.New(log, "index add")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan Source)
	results := make(chan described, opt.Workers)
	lim := imageio.DefaultLimits()
	go func() {
		defer close(jobs)
		for _, src := range srcs {
			select {
			case jobs <- src:
			case <-ctx.Done():
				return
			}
		}
	}()
	done := make(chan struct{})
	for range opt.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for src := range jobs {
				e, err := describeFile(ctx, d, src, lim, opt.NoImages)
				if n, ok := opt.Names[src.Label]; ok && err == nil {
					e.Metadata, _ = json.Marshal(map[string]string{"name": n})
				}
				results <- described{entry: e, path: src.Path, err: err}
			}
		}()
	}
	go func() {
		for range opt.Workers {
			<-done
		}
		close(results)
	}()

	var pending []store.Entry
	var commitErr error
	commit := func() {
		if len(pending) == 0 || commitErr != nil {
			return
		}
		// A commit in progress finishes even when ctx is cancelled: the
		// batch is already described and the cost is one fsync.
		if err := s.Add(context.WithoutCancel(ctx), pending, store.AddOptions{Replace: opt.Replace}); err != nil {
			commitErr = err
			cancel()
			return
		}
		st.Added += len(pending)
		if bar == nil {
			// IDs are quoted because they may contain spaces.
			var ids strings.Builder
			for _, e := range pending {
				ids.WriteString(" " + strconv.Quote(e.ID))
			}
			fmt.Fprintf(log, "committed %d items (%d in all):%s\n", len(pending), st.Added, ids.String())
		}
		pending = pending[:0]
	}
	seen := 0
	for r := range results {
		seen++
		if r.err != nil {
			if ctx.Err() == nil {
				st.Failed++
				fmt.Fprintf(log, "\rskip %s: %v\n", r.path, r.err)
			}
		} else {
			pending = append(pending, r.entry)
			if len(pending) >= opt.Batch {
				commit()
			}
		}
		bar.Update(seen, len(srcs))
	}
	commit()
	st.Elapsed = time.Since(start)
	if commitErr != nil {
		return st, commitErr
	}
	return st, ctx.Err()
}

func describeFile(ctx context.Context, d store.Describer, src Source, lim imageio.Limits, noImage bool) (store.Entry, error) {
	data, err := imageio.ReadBytes(src.Path, lim.MaxBytes)
	if err != nil {
		return store.Entry{}, err
	}
	img, err := imageio.DecodeAtLeast(data, lim, store.MinDecodeShort(d))
	if err != nil {
		return store.Entry{}, err
	}
	vec, err := d.Describe(ctx, img)
	if err != nil {
		return store.Entry{}, fmt.Errorf("describe: %w", err)
	}
	e := store.Entry{ID: src.ID, Label: src.Label, FileName: filepath.Base(src.Path), Vector: vec}
	if !noImage {
		e.Image = data
	}
	return e, nil
}
