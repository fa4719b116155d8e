package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"prodsearch/internal/bundle"
	"prodsearch/internal/cache"
	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/eval"
	"prodsearch/internal/index"
)

// valSplit mirrors the test protocol on training classes: per class, the first
// two photos are queries and the rest references. Choosing describe settings
// on it never looks at the test classes.
func valSplit(set *dataset.Set) (qs, rs *dataset.Set) {
	qs, rs = &dataset.Set{Source: set.Source}, &dataset.Set{Source: set.Source}
	seen := map[string]int{}
	for _, it := range set.Items {
		if seen[it.Label] < 2 {
			qs.Items = append(qs.Items, it)
		} else {
			rs.Items = append(rs.Items, it)
		}
		seen[it.Label]++
	}
	return qs, rs
}

// scoreBundle describes both sets with b and scores a plain ranking.
func scoreBundle(ctx context.Context, b bundle.Bundle, c *cache.Cache, qs, rs *dataset.Set) (eval.Scores, describe.Stats, error) {
	eng, err := bundle.Open(b, bundle.Options{})
	if err != nil {
		return eval.Scores{}, describe.Stats{}, err
	}
	defer eng.Close()
	opt := describe.FileOptions{Cache: c}
	describeSet := func(s *dataset.Set) ([][]float32, describe.Stats, error) {
		paths := make([]string, len(s.Items))
		for i, it := range s.Items {
			paths[i] = it.Path
		}
		v, fails, st, err := eng.DescribeFiles(ctx, paths, opt)
		if err == nil && len(fails) > 0 {
			err = fails[0]
		}
		return v, st, err
	}
	rv, st, err := describeSet(rs)
	if err != nil {
		return eval.Scores{}, st, err
	}
	qv, st2, err := describeSet(qs)
	if err != nil {
		return eval.Scores{}, st, err
	}
	st.Timing.Add(st2.Timing)
	st.Described += st2.Described
	flat := index.NewFlat(eng.Dim())
	for i, v := range rv {
		if err := flat.Add(rs.Items[i].ID, v); err != nil {
			return eval.Scores{}, st, err
		}
	}
	hits, err := flat.SearchBatch(ctx, qv, 0)
	if err != nil {
		return eval.Scores{}, st, err
	}
	rk := make([]eval.Ranking, len(hits))
	for i, hs := range hits {
		rk[i].Query = qs.Items[i].ID
		for _, h := range hs {
			rk[i].Refs = append(rk[i].Refs, h.ID)
		}
	}
	s, err := eval.Score(rk, qs.Labels(), rs.Labels())
	return s, st, err
}

// runSettings compares backbones and describe settings on the validation
// split of train.tsv.
func runSettings(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("settings", flag.ContinueOnError)
	train := fs.String("train", "../shared/data/grocerystore/splits/train.tsv", "training manifest whose classes serve as validation")
	backbones := fs.String("backbones", "coral_mnv1,coral_mnv2,mnv2_int8", "backbones to compare")
	grid := fs.String("grid", "gem3@224;gap@224;gem3@288;gem3@352;gem3@224,352;gem3@224+flip;gem3@224,352+flip", "settings: POOL[P]@SCALES[+flip], ';'-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	set, err := dataset.Load(*train)
	if err != nil {
		return err
	}
	qs, rs := valSplit(set)
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
	classes := map[string]bool{}
	for _, it := range set.Items {
		classes[it.Label] = true
	}
	fmt.Fprintf(w, "validation: %d queries, %d references, %d training classes (test split untouched)\n", len(qs.Items), len(rs.Items), len(classes))
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
