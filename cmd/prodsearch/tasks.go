package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"prodsearch/internal/bundle"
	"prodsearch/internal/dataset"
	"prodsearch/internal/runs"
	"prodsearch/internal/train"
)

// cmdTasks writes the manifests of the shop's search — phone photos against
// one catalogue image per product — for the validation classes held out
// from the training data and for the test photos, so both sides are run
// with `prodsearch run` and no manifest is made by hand.
func cmdTasks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tasks", "--catalogue CAT --out DIR [--data TRAIN] [--test PHOTOS]...", stderr)
	catalogue := fs.String("catalogue", "", "catalogue images with their classes: a class table (CSV with a class column and an image column, e.g. GroceryStore's dataset/classes.csv) or "+setHelp)
	data := fs.String("data", "", "labelled training `photos`: the validation side uses the photos of the classes train holds out from them")
	var tests []string
	fs.Func("test", "labelled test `photos` (repeatable): the test side uses them as queries", func(s string) error {
		tests = append(tests, s)
		return nil
	})
	out := fs.String("out", "", "`folder` to write the manifests into (created if needed)")
	dataRoot := fs.String("data-root", "", dataRootHelp)
	valRun := fs.String("val-run", "", "use the classes this `run` held out (default: those train would hold out with --val-frac and --seed)")
	valFrac := fs.Float64("val-frac", runs.DefaultValFrac, "fraction of the --data classes held out, as train --val-frac")
	seed := fs.Int64("seed", train.DefaultConfig().Seed, "hold-out seed, as train --seed")
	runsDir := fs.String("runs-dir", "", "runs directory for --val-run (default $PRODSEARCH_RUNS, else ./runs)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *catalogue == "" || *out == "" || (*data == "" && len(tests) == 0) {
		fs.Usage()
		return errors.New("--catalogue, --out and at least one of --data and --test are required")
	}
	cat, err := loadSet(*catalogue, *dataRoot)
	if err != nil {
		return fmt.Errorf("--catalogue: %w", err)
	}
	if err := cat.CheckLabels(); err != nil {
		return fmt.Errorf("--catalogue: %w", err)
	}
	type side struct {
		name, what string
		task       dataset.Task
	}
	var sides []side
	if *data != "" {
		set, err := loadSet(*data, *dataRoot)
		if err != nil {
			return fmt.Errorf("--data: %w", err)
		}
		val, how := runs.HeldOutClasses(set, *valFrac, *seed), fmt.Sprintf("held out by train --val-frac %g --seed %d", *valFrac, *seed)
		if *valRun != "" {
			if val, err = runs.ValClasses(runs.Dir(*runsDir), *valRun); err != nil {
				return fmt.Errorf("--val-run: %w", err)
			}
			how = "held out by run " + *valRun
		}
		if len(val) == 0 {
			return errors.New("--data: no validation classes (a run or --val-frac that holds none out)")
		}
		var photos []dataset.Item
		for _, it := range set.Items {
			if it.Label != "" {
				photos = append(photos, it)
			}
		}
		t, err := dataset.CatalogueTask(photos, cat, func(l string) bool { return val[l] })
		if err != nil {
			return fmt.Errorf("validation side: %w", err)
		}
		sides = append(sides, side{"val", "validation classes " + how, t})
	}
	if len(tests) > 0 {
		var photos []dataset.Item
		for _, src := range tests {
			set, err := loadSet(src, *dataRoot)
			if err != nil {
				return fmt.Errorf("--test: %w", err)
			}
			if err := set.CheckLabels(); err != nil {
				return fmt.Errorf("--test: %w", err)
			}
			photos = append(photos, set.Items...)
		}
		t, err := dataset.CatalogueTask(photos, cat, nil)
		if err != nil {
			return fmt.Errorf("test side: %w", err)
		}
		sides = append(sides, side{"test", "test photos of " + strings.Join(tests, " + "), t})
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, s := range sides {
		q, r := filepath.Join(*out, s.name+"-queries.tsv"), filepath.Join(*out, s.name+"-references.tsv")
		for _, f := range []struct {
			path  string
			items []dataset.Item
		}{{q, s.task.Queries}, {r, s.task.References}} {
			text, err := dataset.ManifestText(*out, f.items)
			if err != nil {
				return err
			}
			if err := bundle.WriteFileAtomic(f.path, text); err != nil {
				return fmt.Errorf("writing %s: %w", f.path, err)
			}
		}
		fmt.Fprintf(stdout, "%s: %d photos of %d classes (%s) against %d catalogue images\n  prodsearch run --queries %s --references %s\n",
			s.name, len(s.task.Queries), s.task.Classes(), s.what, len(s.task.References), q, r)
	}
	return nil
}
