package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"prodsearch/internal/bundle"
	"prodsearch/internal/dataset"
	"prodsearch/internal/eval"
	"prodsearch/internal/progress"
	"prodsearch/internal/rerank"
	"prodsearch/internal/retrieval"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// compareTask is one labelled retrieval task of the comparison.
type compareTask struct {
	name   string
	qs, rs *dataset.Set
}

// compareModel is one model of the comparison.
type compareModel struct {
	name string
	b    bundle.Bundle
}

func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compare", "--task NAME=QUERIES:REFERENCES ... [--model NAME=MODEL ...]", stderr)
	ef := &engineFlags{fs: fs}
	ef.addRuntimeFlags(fs)
	ef.batch = 16
	var tasks, models listFlag
	fs.Var(&tasks, "task", "a labelled task NAME=QUERIES:REFERENCES (each side as --queries takes it; A+B joins sets); repeat for more")
	fs.Var(&models, "model", "a model NAME=MODEL: a bundle file, RUN/CHECKPOINT, a builtin backbone name (frozen, default settings) or 'shipped'; repeat for more (default: the frozen coral_mnv1 and the shipped model)")
	dataRoot := fs.String("data-root", "", dataRootHelp)
	top := fs.Int("top", 1000, "references per query in each ranking (0 = all)")
	plain := fs.Bool("plain", false, "also score every model without re-ranking, to show what its recipes gain")
	maxDiff := fs.Float64("max-diff", 0, "with two models: fail when their mAP, MRR or R@1 differ by more than this on any task, or their stored validation figures do (0 = no check)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(tasks) == 0 {
		fs.Usage()
		return errors.New("at least one --task is required")
	}
	if *maxDiff < 0 || (*maxDiff > 0 && len(models) != 2) {
		return errors.New("--max-diff needs a positive difference and exactly two --model")
	}
	var ts []compareTask
	for _, t := range tasks {
		name, sides, ok := strings.Cut(t, "=")
		q, r, ok2 := strings.Cut(sides, ":")
		if !ok || !ok2 || name == "" || q == "" || r == "" {
			return fmt.Errorf("--task %q: want NAME=QUERIES:REFERENCES", t)
		}
		qs, err := loadSet(q, *dataRoot)
		if err != nil {
			return fmt.Errorf("task %s: queries: %w", name, err)
		}
		rs, err := loadSet(r, *dataRoot)
		if err != nil {
			return fmt.Errorf("task %s: references: %w", name, err)
		}
		if err := checkLabels(qs, rs); err != nil {
			return fmt.Errorf("task %s: %w", name, err)
		}
		ts = append(ts, compareTask{name, qs, rs})
	}
	if len(models) == 0 {
		models = listFlag{"frozen " + defaultBackbone + "=" + defaultBackbone}
		if bundle.FindShipped() != "" {
			models = append(models, "shipped=shipped")
		}
	}
	var ms []compareModel
	for _, m := range models {
		name, ref, ok := strings.Cut(m, "=")
		if !ok {
			name, ref = m, m
		}
		b, err := compareBundle(ref, ef.runsDir)
		if err != nil {
			return fmt.Errorf("--model %s: %w", m, err)
		}
		ms = append(ms, compareModel{name, b})
	}
	opt, err := ef.fileOptions()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "task\tmodel\tqueries\trefs\tmAP\tMRR\tR@1\tR@5\tre-ranking")
	scores := make([][]eval.Scores, len(ms)) // [model][task]
	for mi, m := range ms {
		eng, err := bundle.Open(m.b, ef.engineOptions())
		if err != nil {
			return err
		}
		for _, t := range ts {
			shape := bundle.ShapeOf(labelsOf(t.rs))
			recipe, _ := m.b.RecipeFor(shape)
			variants := []*rerank.Params{recipe}
			if *plain && recipe != nil {
				variants = append(variants, nil)
			}
			refEng, err := openRefEngine(m.b, shape, ef.engineOptions(), stderr)
			if err != nil {
				eng.Close()
				return err
			}
			for vi, rp := range variants {
				job := retrieval.Job{
					Queries: t.qs, References: t.rs, Top: *top, Rerank: rp, Files: opt,
					Progress: func(stage string) func(int, int) { return progress.New(stderr, m.name+": "+stage).Update },
				}
				if refEng != nil {
					job.RefDescriber = refEng
				}
				res, err := retrieval.Run(ctx, eng, job)
				if err != nil {
					closeAll(eng, refEng)
					return fmt.Errorf("%s on %s: %w", m.name, t.name, err)
				}
				reportFailures(stderr, res)
				s, err := eval.Score(res.Rankings, t.qs.Labels(), t.rs.Labels())
				if err != nil {
					closeAll(eng, refEng)
					return err
				}
				if vi == 0 {
					scores[mi] = append(scores[mi], s)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.4f\t%.4f\t%.3f\t%.3f\t%s\n", t.name, m.name, s.Queries, len(t.rs.Items), s.MAP, s.MRR, s.R1, s.R5, recipeName(rp))
			}
			closeAll(refEng)
		}
		eng.Close()
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *maxDiff == 0 {
		return nil
	}
	return checkDiff(stdout, ms, ts, scores, *maxDiff)
}

// closeAll closes the engines that are open (nil ones are skipped).
func closeAll(engs ...*bundle.Engine) {
	for _, e := range engs {
		if e != nil {
			e.Close()
		}
	}
}

// checkDiff compares two models' scores on every task and the validation
// figures their recipes were chosen by, failing past maxDiff: how a rebuilt
// model is checked against the committed one.
func checkDiff(w io.Writer, ms []compareModel, ts []compareTask, scores [][]eval.Scores, maxDiff float64) error {
	var bad []string
	check := func(what string, a, b float64) {
		d := math.Abs(a - b)
		mark := "ok"
		if d > maxDiff {
			mark = "DIFFERS"
			bad = append(bad, what)
		}
		fmt.Fprintf(w, "check %-40s %.4f vs %.4f  (|diff| %.4f, max %.4f) %s\n", what, a, b, d, maxDiff, mark)
	}
	for ti, t := range ts {
		a, b := scores[0][ti], scores[1][ti]
		check(t.name+" mAP", a.MAP, b.MAP)
		check(t.name+" MRR", a.MRR, b.MRR)
		check(t.name+" R@1", a.R1, b.R1)
	}
	for _, ra := range ms[0].b.Recipes {
		for _, rb := range ms[1].b.Recipes {
			if ra.Shape == rb.Shape && ra.Val != nil && rb.Val != nil {
				check("validation "+ra.Shape+"-image mAP", ra.Val.MAP, rb.Val.MAP)
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s and %s differ by more than %g: %s", ms[0].name, ms[1].name, maxDiff, strings.Join(bad, ", "))
	}
	fmt.Fprintf(w, "%s and %s agree within %g on every task and validation figure\n", ms[0].name, ms[1].name, maxDiff)
	return nil
}

// compareBundle resolves a --model reference.
func compareBundle(ref, runsDir string) (bundle.Bundle, error) {
	if ref == "shipped" {
		p := bundle.FindShipped()
		if p == "" {
			return bundle.Bundle{}, fmt.Errorf("no shipped model (%s) here", bundle.ShippedPath)
		}
		return bundle.Load(p)
	}
	return memberBundle(ref, runsDir)
}

func labelsOf(s *dataset.Set) []string {
	out := make([]string, len(s.Items))
	for i, it := range s.Items {
		out[i] = it.Label
	}
	return out
}
