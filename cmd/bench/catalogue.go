package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"prodsearch/internal/bundle"
	"prodsearch/internal/cache"
	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/eval"
	"prodsearch/internal/runs"
	"prodsearch/internal/train"
	"prodsearch/internal/vec"

	"github.com/viterin/vek/vek32"
)

// catView is one way of describing an image: the bundle's own settings, or
// those with another centre crop (0 = the whole image), short side or flip.
type catView struct {
	own   bool
	crop  float64
	scale int // 0 = the bundle's
	flip  bool
}

func (v catView) String() string {
	if v.own {
		return "bundle"
	}
	s := "whole"
	if v.crop > 0 && v.crop < 1 {
		s = fmt.Sprintf("crop%g", v.crop)
	}
	if v.scale > 0 {
		s += fmt.Sprintf("@%d", v.scale)
	}
	if v.flip {
		s += "+flip"
	}
	return s
}

// apply returns b describing with v (every member of an ensemble alike).
func (v catView) apply(b bundle.Bundle) bundle.Bundle {
	if v.own {
		return b
	}
	return b.WithSettings(func(s describe.Settings) describe.Settings {
		s.Crop, s.Flip = v.crop, v.flip
		if v.scale > 0 {
			s.Scales = []int{v.scale}
		}
		return s
	})
}

// catSide is how one side (photos or catalogue) is described: one or more
// views per image, combined into one vector (the normalised mean, so a
// store keeps one vector per item) or kept apart and matched by the best
// view pair (max similarity).
type catSide struct {
	views []catView
	max   bool
}

func (s catSide) String() string {
	names := make([]string, len(s.views))
	for i, v := range s.views {
		names[i] = v.String()
	}
	how := "mean"
	if s.max {
		how = "max"
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names, "/") + " " + how
}

// catMethod is one row of the table: a method (issue 12, item 3) on or off.
type catMethod struct {
	group, name string
	photo, cat  catSide
}

var (
	own       = catView{own: true}
	whole     = catView{}
	crop8     = catView{crop: 0.8}
	crop6     = catView{crop: 0.6}
	threeCrop = []catView{whole, crop8, crop6}
)

// catMethods lists the rows: "off" is the bundle's settings on both sides;
// (a) describes the catalogue image with other settings than the photo,
// (b) augments the catalogue image with synthetic views, (c) describes the
// photo with several crops, and the last rows combine the sides' winners.
func catMethods() []catMethod {
	one := func(v ...catView) catSide { return catSide{views: v} }
	flipped := func(vs []catView) []catView {
		out := slices.Clone(vs)
		for _, v := range vs {
			v.flip = true
			out = append(out, v)
		}
		return out
	}
	return []catMethod{
		{"off", "bundle settings on both sides", one(own), one(own)},
		{"a", "catalogue described whole", one(own), one(whole)},
		{"a", "catalogue at crop 0.8", one(own), one(crop8)},
		{"a", "catalogue whole + flip", one(own), one(catView{flip: true})},
		{"b", "catalogue views whole/0.8/0.6, mean", one(own), catSide{views: threeCrop}},
		{"b", "catalogue views whole/0.8/0.6, max", one(own), catSide{views: threeCrop, max: true}},
		{"b", "catalogue views whole/0.8/0.6 x flip, mean", one(own), catSide{views: flipped(threeCrop)}},
		{"b", "catalogue whole at 192/224/256, mean", one(own), catSide{views: []catView{{scale: 192}, {scale: 224}, {scale: 256}}}},
		{"b", "catalogue whole/0.8, mean", one(own), catSide{views: []catView{whole, crop8}}},
		{"c", "photo crops whole/0.8/0.6, mean", catSide{views: threeCrop}, one(own)},
		{"c", "photo crops whole/0.8/0.6, max", catSide{views: threeCrop, max: true}, one(own)},
		{"c", "photo crops 0.8/0.6, mean", catSide{views: []catView{crop8, crop6}}, one(own)},
		{"a+c", "photo crops 0.8/0.6 mean; catalogue whole", catSide{views: []catView{crop8, crop6}}, one(whole)},
		{"b+c", "photo crops whole/0.8/0.6 mean; catalogue views mean", catSide{views: threeCrop}, catSide{views: threeCrop}},
		{"b+c", "photo crops whole/0.8/0.6 max; catalogue views max", catSide{views: threeCrop, max: true}, catSide{views: threeCrop, max: true}},
	}
}

// catTask is one side of the photo -> catalogue task.
type catTask struct {
	name   string
	photos []dataset.Item
	cat    []dataset.Item
}

// catRow is one measured row, for -json.
type catRow struct {
	Bundle  string      `json:"bundle"`
	Task    string      `json:"task"`
	Group   string      `json:"group"`
	Method  string      `json:"method"`
	Photo   string      `json:"photo"`
	Cat     string      `json:"catalogue"`
	Scores  eval.Scores `json:"scores"`
	DeltaR1 float64     `json:"delta_r1"`
	DeltaRR float64     `json:"delta_mrr"`
}

// catalogueCmd measures the methods that close the gap between phone photos
// and studio images (issue 12, item 3) for each bundle, on the validation
// side (photos of the classes held out from the training data against their
// catalogue images) and, when -test is given, on the test side. Method (e),
// local-feature matching (localmatch.go), re-ranks the plain search a store of
// one image per product gets with the bundle.
func catalogueCmd(fs *flag.FlagSet) runFunc {
	g := "../shared/data/grocerystore/"
	bundles := fs.String("bundles", "coral_mnv1", "comma-separated bundles: a bundle .json or a builtin backbone name (its frozen default)")
	data := fs.String("data", g+"splits/train.tsv", "training photos; the validation side uses the classes held out from them")
	catalogue := fs.String("catalogue", g+"dataset/classes.csv", "catalogue images with their classes (a class table or manifest)")
	tests := fs.String("test", "", "comma-separated test photo manifests for the test side, e.g. "+g+"splits/query.tsv,"+g+"splits/reference.tsv (empty = validation side only)")
	valRun := fs.String("val-run", "", "RUNS_DIR/RUN whose recorded held-out classes are the validation classes (default: those train holds out with -val-frac and -seed)")
	valFrac := fs.Float64("val-frac", runs.DefaultValFrac, "fraction of classes held out, as train --val-frac")
	seed := fs.Int64("seed", train.DefaultConfig().Seed, "hold-out seed, as train --seed")
	groups := fs.String("methods", "", "comma-separated method groups to run (off, a, b, c, a+c, b+c, e; empty = all); off always runs")
	jsonOut := fs.String("json", "", "also write the rows as JSON to this file")
	lo := localOpts{}
	fs.IntVar(&lo.scale, "local-scale", 448, "method e: short side the images are described at for local features")
	fs.IntVar(&lo.keep, "local-keep", 400, "method e: cells kept per image (strongest activations)")
	floor := fs.Float64("local-floor", 0.5, "method e: least cosine of a local match")
	fs.Float64Var(&lo.tol, "local-tol", 1, "method e: RANSAC inlier tolerance in feature-map cells")
	fs.IntVar(&lo.top, "local-top", 10, "method e: global candidates re-ranked per photo")
	fs.IntVar(&lo.tries, "local-tries", 500, "method e: RANSAC samples")
	weights := fs.String("local-weights", "0,0.002,0.005,0.01,0.02,0.05,inf", "method e: inlier weights, one row each (inf: order the top by inliers)")
	return func(ctx context.Context, w io.Writer) error {
		cat, err := dataset.Load(*catalogue)
		if err != nil {
			return err
		}
		tasks, err := catTasks(*data, cat, *tests, *valRun, *valFrac, *seed)
		if err != nil {
			return err
		}
		keep := map[string]bool{"off": true}
		for g := range strings.SplitSeq(*groups, ",") {
			keep[strings.TrimSpace(g)] = true
		}
		lo.floor = float32(*floor)
		for x := range strings.SplitSeq(*weights, ",") {
			w, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil {
				return fmt.Errorf("-local-weights: %w", err)
			}
			lo.weight = append(lo.weight, w)
		}
		var methods []catMethod
		for _, m := range catMethods() {
			if *groups == "" || keep[m.group] {
				methods = append(methods, m)
			}
		}
		c, err := cache.Open(cache.DefaultDir())
		if err != nil {
			return err
		}
		defer c.Close()
		var rows []catRow
		for bref := range strings.SplitSeq(*bundles, ",") {
			b, err := loadBundleOrDefault(bref)
			if err != nil {
				return err
			}
			d := &viewDescriber{base: b, cache: c, memo: map[string]map[string][]float32{}}
			for _, t := range tasks {
				fmt.Fprintf(w, "\n%s, %s: %d photos of %d classes against %d catalogue images\n", bref, t.name, len(t.photos), len(dataset.LabelSet(t.photos)), len(t.cat))
				fmt.Fprintf(w, "%-4s %-52s %6s %6s %6s %7s %7s\n", "", "method", "R@1", "MRR", "R@5", "ΔR@1", "ΔMRR")
				var off eval.Scores
				report := func(m catMethod, s eval.Scores) {
					r := catRow{Bundle: bref, Task: t.name, Group: m.group, Method: m.name, Photo: m.photo.String(), Cat: m.cat.String(),
						Scores: s, DeltaR1: s.R1 - off.R1, DeltaRR: s.MRR - off.MRR}
					rows = append(rows, r)
					fmt.Fprintf(w, "%-4s %-52s %6.3f %6.3f %6.3f %+7.3f %+7.3f\n", m.group, m.name, s.R1, s.MRR, s.R5, r.DeltaR1, r.DeltaRR)
				}
				for i, m := range methods {
					s, err := d.score(ctx, t, m)
					if err != nil {
						return fmt.Errorf("%s, %s, %s: %w", bref, t.name, m.name, err)
					}
					if i == 0 {
						off = s
					}
					report(m, s)
				}
				if *groups == "" || keep["e"] {
					ms, ss, err := d.localRows(ctx, t, oneImageSearch(b), lo)
					if err != nil {
						return fmt.Errorf("%s, %s, local matching: %w", bref, t.name, err)
					}
					for i, m := range ms {
						report(m, ss[i])
					}
				}
			}
		}
		return writeJSON(*jsonOut, rows)
	}
}

// oneImageSearch is the plain search a store of one image per product gets
// with b: photos described as b says, catalogue images with the centre crop
// of b's one-image recipe when it has one.
func oneImageSearch(b bundle.Bundle) catMethod {
	for _, r := range b.Recipes {
		if r.Shape == bundle.ShapeOne && r.RefCrop != nil {
			c := *r.RefCrop
			return catMethod{"a", fmt.Sprintf("catalogue at the recipe's crop %g", c), catSide{views: []catView{own}}, catSide{views: []catView{{crop: c}}}}
		}
	}
	return catMethod{"off", "bundle settings on both sides", catSide{views: []catView{own}}, catSide{views: []catView{own}}}
}

// catTasks builds the validation side and, with tests, the test side.
func catTasks(data string, cat *dataset.Set, tests, valRun string, valFrac float64, seed int64) ([]catTask, error) {
	set, err := dataset.Load(data)
	if err != nil {
		return nil, err
	}
	val := runs.HeldOutClasses(set, valFrac, seed)
	if valRun != "" {
		if val, err = runs.ValClasses(filepath.Dir(valRun), filepath.Base(valRun)); err != nil {
			return nil, err
		}
	}
	if len(val) == 0 {
		return nil, errors.New("no validation classes")
	}
	vt, err := dataset.CatalogueTask(dataset.WithLabels(set.Items, val), cat, nil)
	if err != nil {
		return nil, fmt.Errorf("validation side: %w", err)
	}
	out := []catTask{{"validation", vt.Queries, vt.References}}
	if tests == "" {
		return out, nil
	}
	var photos []dataset.Item
	for src := range strings.SplitSeq(tests, ",") {
		s, err := dataset.Load(src)
		if err != nil {
			return nil, err
		}
		photos = append(photos, s.Items...)
	}
	tt, err := dataset.CatalogueTask(photos, cat, nil)
	if err != nil {
		return nil, fmt.Errorf("test side: %w", err)
	}
	return append(out, catTask{"test", tt.Queries, tt.References}), nil
}

// loadBundleOrDefault reads a bundle file, or names a builtin backbone's
// frozen default.
func loadBundleOrDefault(ref string) (bundle.Bundle, error) {
	if _, err := os.Stat(ref); err == nil {
		return bundle.Load(ref)
	}
	return bundle.Default(ref)
}

// viewDescriber describes images with a bundle under each view once,
// through the shared per-view cache, and remembers the results.
type viewDescriber struct {
	base  bundle.Bundle
	cache *cache.Cache
	memo  map[string]map[string][]float32 // view -> path -> descriptor
}

// vectors returns each item's descriptors under side's views: one vector
// per item (the normalised mean) or, for max, one per view. An item that
// failed in any view gets none.
func (d *viewDescriber) vectors(ctx context.Context, items []dataset.Item, side catSide) ([][][]float32, error) {
	for _, v := range side.views {
		if err := d.ensure(ctx, v, items); err != nil {
			return nil, err
		}
	}
	out := make([][][]float32, len(items))
	for i, it := range items {
		var vs [][]float32
		for _, v := range side.views {
			x := d.memo[v.String()][it.Path]
			if x == nil {
				vs = nil
				break
			}
			vs = append(vs, x)
		}
		if len(vs) > 1 && !side.max {
			m := slices.Clone(vs[0])
			for _, x := range vs[1:] {
				for k := range m {
					m[k] += x[k]
				}
			}
			vec.Normalize(m)
			vs = [][]float32{m}
		}
		out[i] = vs
	}
	return out, nil
}

func (d *viewDescriber) ensure(ctx context.Context, v catView, items []dataset.Item) error {
	got := d.memo[v.String()]
	if got == nil {
		got = map[string][]float32{}
		d.memo[v.String()] = got
	}
	var paths []string
	for _, it := range items {
		if _, ok := got[it.Path]; !ok {
			paths = append(paths, it.Path)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	eng, err := bundle.Open(v.apply(d.base), bundle.Options{})
	if err != nil {
		return err
	}
	defer eng.Close()
	t0 := time.Now()
	vecs, fails, st, err := eng.DescribeFiles(ctx, paths, describe.FileOptions{Cache: d.cache})
	if err != nil {
		return err
	}
	for _, f := range fails {
		fmt.Fprintln(os.Stderr, "unreadable, left out:", f)
	}
	for i, p := range paths {
		got[p] = vecs[i]
	}
	fmt.Fprintf(os.Stderr, "described %d images as %s (%d through the network) in %s\n", len(paths), v, st.Described, time.Since(t0).Round(time.Second))
	return nil
}

// score ranks the task's catalogue for every photo under method m: a
// photo-product similarity is the best over their vectors' pairs, and
// products are ranked by it (ties by ID) and scored.
func (d *viewDescriber) score(ctx context.Context, t catTask, m catMethod) (eval.Scores, error) {
	qv, err := d.vectors(ctx, t.photos, m.photo)
	if err != nil {
		return eval.Scores{}, err
	}
	cv, err := d.vectors(ctx, t.cat, m.cat)
	if err != nil {
		return eval.Scores{}, err
	}
	qLabels, rLabels := map[string]string{}, map[string]string{}
	for _, it := range t.cat {
		rLabels[it.ID] = it.Label
	}
	type hit struct {
		id    string
		score float32
	}
	var rankings []eval.Ranking
	for i, q := range t.photos {
		qLabels[q.ID] = q.Label
		if qv[i] == nil {
			continue
		}
		var hits []hit
		for j, r := range t.cat {
			if cv[j] == nil {
				continue
			}
			best := float32(-2)
			for _, a := range qv[i] {
				for _, b := range cv[j] {
					best = max(best, vek32.Dot(a, b))
				}
			}
			hits = append(hits, hit{r.ID, best})
		}
		slices.SortFunc(hits, func(a, b hit) int {
			return cmp.Or(cmp.Compare(b.score, a.score), strings.Compare(a.id, b.id))
		})
		rk := eval.Ranking{Query: q.ID, Refs: make([]string, len(hits))}
		for k, h := range hits {
			rk.Refs[k] = h.id
		}
		rankings = append(rankings, rk)
	}
	if err := ctx.Err(); err != nil {
		return eval.Scores{}, err
	}
	return eval.Score(rankings, qLabels, rLabels)
}
