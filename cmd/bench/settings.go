package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"prodsearch/internal/bundle"
	"prodsearch/internal/cache"
	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/eval"
	"prodsearch/internal/tune"
)

// scoreBundle describes a validation task with b and scores a plain ranking.
func scoreBundle(ctx context.Context, b bundle.Bundle, c *cache.Cache, qs, rs []dataset.Item) (eval.Scores, describe.Stats, error) {
	eng, err := bundle.Open(b, bundle.Options{})
	if err != nil {
		return eval.Scores{}, describe.Stats{}, err
	}
	defer eng.Close()
	st := &statsRecorder{Describer: eng}
	p, err := tune.Describe(ctx, st, qs, rs, describe.FileOptions{Cache: c}, os.Stderr)
	if err != nil {
		return eval.Scores{}, st.total, err
	}
	s, err := p.Score(ctx, nil)
	return s, st.total, err
}

// statsRecorder adds up describe statistics over calls.
type statsRecorder struct {
	tune.Describer
	total describe.Stats
}

func (r *statsRecorder) DescribeFiles(ctx context.Context, paths []string, opt describe.FileOptions) ([][]float32, []describe.Failure, describe.Stats, error) {
	v, f, st, err := r.Describer.DescribeFiles(ctx, paths, opt)
	r.total.Timing.Add(st.Timing)
	r.total.Described += st.Described
	return v, f, st, err
}

// settingsCmd compares backbones and describe settings on the validation
// split of train.tsv.
func settingsCmd(fs *flag.FlagSet) runFunc {
	train := fs.String("train", "../shared/data/grocerystore/splits/train.tsv", "training manifest whose classes serve as validation")
	backbones := fs.String("backbones", "coral_mnv1,coral_mnv2,mnv2_int8", "backbones to compare")
	grid := fs.String("grid", "gem3@224;gap@224;gem3@288;gem3@352;gem3@224,352;gem3@224+flip;gem3@224,352+flip", "settings: POOL[P]@SCALES[+flip], ';'-separated")
	return func(ctx context.Context, w io.Writer) error {
		set, err := dataset.Load(*train)
		if err != nil {
			return err
		}
		qs, rs := tune.Split(set.Items, 2)
		c, err := cache.Open(cache.DefaultDir())
		if err != nil {
			return err
		}
		defer c.Close()
		type row struct {
			name string
			s    eval.Scores
			ms   float64
		}
		var rows []row
		fmt.Fprintf(w, "validation: %d queries, %d references, %d training classes (test split untouched)\n", len(qs), len(rs), len(dataset.LabelSet(set.Items)))
		for _, bb := range strings.Split(*backbones, ",") {
			for _, g := range strings.Split(*grid, ";") {
				b, err := bundle.Default(bb)
				if err != nil {
					return err
				}
				if b.Describe, err = parseSetting(g); err != nil {
					return err
				}
				t0 := time.Now()
				s, st, err := scoreBundle(ctx, b, c, qs, rs)
				if err != nil {
					return fmt.Errorf("%s %s: %w", bb, g, err)
				}
				ms := 0.0
				if st.Described > 0 {
					ms = float64(st.Infer.Milliseconds()) / float64(st.Described)
				}
				rows = append(rows, row{bb + " " + g, s, ms})
				fmt.Fprintf(w, "%-34s mAP %.4f  R@1 %.3f  (inference %.1f ms/img, %s)\n", bb+" "+g, s.MAP, s.R1, ms, time.Since(t0).Round(time.Second))
			}
		}
		sort.SliceStable(rows, func(i, j int) bool { return rows[i].s.MAP > rows[j].s.MAP })
		fmt.Fprintf(w, "best on validation classes: %s (mAP %.4f)\n", rows[0].name, rows[0].s.MAP)
		return nil
	}
}

// parseSetting reads "gem3@224,352+flip" or "gap@224".
func parseSetting(s string) (describe.Settings, error) {
	var out describe.Settings
	if rest, crop, ok := strings.Cut(s, "~crop"); ok {
		if _, err := fmt.Sscanf(crop, "%g", &out.Crop); err != nil {
			return out, fmt.Errorf("setting %q: crop: %w", s, err)
		}
		s = rest
	}
	if rest, ok := strings.CutSuffix(s, "+flip"); ok {
		out.Flip, s = true, rest
	}
	pool, scales, ok := strings.Cut(s, "@")
	if !ok {
		return out, fmt.Errorf("setting %q: want POOL@SCALES", s)
	}
	switch {
	case pool == "gap" || pool == "max":
		out.Pool = pool
	case strings.HasPrefix(pool, "gem"):
		out.Pool = describe.PoolGeM
		if _, err := fmt.Sscanf(strings.TrimPrefix(pool, "gem"), "%g", &out.P); err != nil {
			return out, fmt.Errorf("setting %q: GeM p: %w", s, err)
		}
	default:
		return out, fmt.Errorf("setting %q: unknown pool %q", s, pool)
	}
	for _, p := range strings.Split(scales, ",") {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil {
			return out, fmt.Errorf("setting %q: scale %q", s, p)
		}
		out.Scales = append(out.Scales, n)
	}
	return out, nil
}
