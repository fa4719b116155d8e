package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"prodsearch/internal/bundle"
	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/progress"
	"prodsearch/internal/runs"
	"prodsearch/internal/tune"
)

func cmdEnsemble(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ensemble", "--out FILE MEMBER[=WEIGHT] MEMBER[=WEIGHT]...", stderr)
	out := fs.String("out", "", "bundle file to write")
	runsDir := fs.String("runs-dir", "", "runs directory for RUN/CHECKPOINT members")
	name := fs.String("name", "ensemble", "bundle name")
	if err := parseAny(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() < 2 {
		fs.Usage()
		return errors.New("--out and at least two members (builtin backbone, bundle file or RUN/CHECKPOINT) are required")
	}
	ens := bundle.Bundle{Version: bundle.FormatVersion, Name: *name}
	for _, arg := range fs.Args() {
		ref, w := arg, 1.0
		if i := strings.LastIndex(arg, "="); i > 0 {
			var err error
			if w, err = strconv.ParseFloat(arg[i+1:], 64); err != nil {
				return fmt.Errorf("member %q: weight: %w", arg, err)
			}
			ref = arg[:i]
		}
		b, err := memberBundle(ref, *runsDir)
		if err != nil {
			return err
		}
		ens.Members = append(ens.Members, bundle.Member{Bundle: b, Weight: w})
	}
	if err := ens.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d members, %d-d, ID %s\n", *out, len(ens.Members), ens.Dim(), ens.ID())
	return nil
}

// memberBundle accepts a builtin backbone name (frozen default settings), a
// bundle file or a checkpoint.
func memberBundle(ref, runsDir string) (bundle.Bundle, error) {
	if b, err := bundle.Default(ref); err == nil {
		return b, nil
	}
	return resolveBundleRef(ref, runsDir)
}

func cmdTune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tune", "--bundle B --data TRAIN --out FILE", stderr)
	ef := addEngineFlags(fs)
	data := fs.String("data", "", "labelled training-side images: "+setHelp)
	dataRoot := fs.String("data-root", "", dataRootHelp)
	valRun := fs.String("val-run", "", "use only the classes this run held out for validation (default: the run of --bundle RUN/CHECKPOINT, else every class of --data)")
	perClass := fs.Int("queries-per-class", 2, "validation queries per class; the rest are references (as in the test split)")
	queries := fs.String("queries", "", "a second validation task: these queries (e.g. catalogue images of the training classes) against every --data image of the validation classes; choices maximise the mean mAP of both tasks")
	out := fs.String("out", "", "write the bundle with the chosen weights and re-ranking here")
	top := fs.Int("show", 10, "trials to print")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *data == "" {
		fs.Usage()
		return errors.New("--data is required (with --bundle, or --backbone and describe flags)")
	}
	b, err := ef.resolveBundle()
	if err != nil {
		return err
	}
	set, err := loadSet(*data, *dataRoot)
	if err != nil {
		return err
	}
	run := *valRun
	if run == "" && !strings.HasSuffix(ef.bundle, ".json") {
		if cp, err := runs.Resolve(runs.Dir(ef.runsDir), ef.bundle); err == nil {
			run = cp.Run
		}
	}
	items, err := validationItems(set, runs.Dir(ef.runsDir), run)
	if err != nil {
		return err
	}
	// Task 0 mirrors the test split on the validation classes; --queries adds
	// a second task (those queries against every validation image), and
	// choices then maximise the mean mAP of the two.
	type task struct {
		name   string
		qs, rs []dataset.Item
	}
	qs, rs := tune.Split(items, *perClass)
	tasks := []task{{"photo queries", qs, rs}}
	if *queries != "" {
		qset, err := loadSet(*queries, *dataRoot)
		if err != nil {
			return fmt.Errorf("--queries: %w", err)
		}
		extra := dataset.WithLabels(qset.Items, dataset.LabelSet(items))
		if len(extra) == 0 {
			return errors.New("--queries: no query belongs to a validation class")
		}
		tasks = append(tasks, task{filepath.Base(*queries), extra, items})
	}
	for _, t := range tasks {
		fmt.Fprintf(stdout, "tuning on %s: %d queries, %d references of %d validation classes (%s)\n", t.name, len(t.qs), len(t.rs), len(dataset.LabelSet(items)), valSource(run))
	}
	opt, err := ef.fileOptions()
	if err != nil {
		return err
	}
	members := []bundle.Bundle{b}
	if b.IsEnsemble() {
		members = nil
		for _, m := range b.Members {
			members = append(members, m.Bundle)
		}
	}
	sets := make([][]*tune.Problem, len(tasks)) // [task][member]
	for ti, t := range tasks {
		for _, m := range members {
			p, err := describeProblem(ctx, m, ef.engineOptions(), opt, t.qs, t.rs, stderr)
			if err != nil {
				return err
			}
			sets[ti] = append(sets[ti], p)
		}
	}
	w := []float64{1}
	if b.IsEnsemble() {
		var trials []tune.Trial
		if w, trials, err = tune.Weights(ctx, sets...); err != nil {
			return err
		}
		for i := range b.Members {
			b.Members[i].Weight = w[i]
		}
		fmt.Fprintf(stdout, "ensemble weights %v (%d tried; equal weights: mAP %.4f, chosen: mAP %.4f)\n", w, len(trials), trials[0].Scores.MAP, bestOf(trials))
	}
	trials, err := tune.RerankTasks(ctx, sets, w)
	if err != nil {
		return err
	}
	var plain tune.Trial
	for _, t := range trials {
		if t.Params == nil {
			plain = t
		}
	}
	label := "re-ranking (validation classes)"
	if len(tasks) > 1 {
		label = "re-ranking (mean of the validation tasks)"
	}
	fmt.Fprintf(stdout, "%-48s %8s %7s\n", label, "mAP", "R@1")
	for i, t := range trials {
		if i < *top || t.Params == nil {
			fmt.Fprintf(stdout, "%-48s %8.4f %7.3f\n", t.Name, t.Scores.MAP, t.Scores.R1)
		}
	}
	best := trials[0]
	b.Rerank = best.Params
	fmt.Fprintf(stdout, "chosen: %s (val mAP %.4f vs %.4f without re-ranking)\n", best.Name, best.Scores.MAP, plain.Scores.MAP)
	if *out == "" {
		return nil
	}
	b.Notes = strings.TrimSpace(b.Notes + fmt.Sprintf(" tuned on %s (%s): %s", filepath.Base(*data), valSource(run), best.Name))
	if err := b.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

func bestOf(trials []tune.Trial) float64 {
	m := 0.0
	for _, t := range trials {
		m = max(m, t.Scores.MAP)
	}
	return m
}

func valSource(run string) string {
	if run == "" {
		return "all classes: the bundle was not trained on them"
	}
	return "classes held out by run " + run
}

// validationItems returns the labelled items of the validation classes.
func validationItems(set *dataset.Set, runsDir, run string) ([]dataset.Item, error) {
	keep := func(string) bool { return true }
	if run != "" {
		val, err := runs.ValClasses(runsDir, run)
		if err != nil {
			return nil, fmt.Errorf("--val-run: %w", err)
		}
		keep = func(l string) bool { return val[l] }
	}
	var items []dataset.Item
	for _, it := range set.Items {
		if it.Label != "" && keep(it.Label) {
			items = append(items, it)
		}
	}
	if len(dataset.LabelSet(items)) < 2 {
		return nil, errors.New("tune: fewer than two labelled validation classes")
	}
	return items, nil
}

// describeProblem describes a validation task with one bundle.
func describeProblem(ctx context.Context, b bundle.Bundle, eo bundle.Options, opt describe.FileOptions, qs, rs []dataset.Item, stderr io.Writer) (*tune.Problem, error) {
	eng, err := bundle.Open(b, eo)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	opt.Progress = progress.New(stderr, "describe validation images ("+b.Name+")").Update
	return tune.Describe(ctx, eng, qs, rs, opt, stderr)
}
