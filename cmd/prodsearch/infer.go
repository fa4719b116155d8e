package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"prodsearch/internal/backbone"
	"prodsearch/internal/bundle"
	"prodsearch/internal/dataset"
	"prodsearch/internal/eval"
	"prodsearch/internal/index"
	"prodsearch/internal/progress"
	"prodsearch/internal/rerank"
	"prodsearch/internal/retrieval"
	"prodsearch/internal/tune"
)

// errHelp is returned after -h printed the usage: not a failure.
var errHelp = errors.New("help requested")

const setHelp = "a TSV manifest (path<TAB>label, paths relative to it), a folder of class subfolders, or a flat folder of images (hackathon layout: ID = file name without extension); A+B joins several"

const dataRootHelp = "refuse any image whose path, once '..' and symbolic links are resolved, lies outside this `directory` (default: follow paths wherever they lead)"

// loadSet reads an image set, confined to root when root is set. "A+B"
// (where no file or folder has that name) joins several sources into one.
func loadSet(src, root string) (*dataset.Set, error) {
	opt := dataset.Options{Root: root}
	if _, err := os.Stat(src); err == nil || !strings.Contains(src, "+") {
		return dataset.LoadWith(src, opt)
	}
	var sets []*dataset.Set
	for _, part := range strings.Split(src, "+") {
		s, err := dataset.LoadWith(part, opt)
		if err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	return dataset.Merge(sets...)
}

// jobFlags are shared by infer, run and submit.
type jobFlags struct {
	*engineFlags
	queries, references string
	dataRoot            string
	top                 int
	noRerank            bool
	shape               string
	index               string
	// rerank is the recipe execute applied (nil: plain search).
	rerank *rerank.Params
	// needLabels makes execute refuse unlabeled items before the costly
	// inference, for the commands that score.
	needLabels bool
}

func addJobFlags(fsName, synopsis string, stderr io.Writer) (*jobFlags, func(args []string) error) {
	fs := newFlagSet(fsName, synopsis, stderr)
	j := &jobFlags{engineFlags: addEngineFlags(fs)}
	j.shipped = true
	fs.StringVar(&j.queries, "queries", "", "query images: "+setHelp)
	fs.StringVar(&j.references, "references", "", "reference images: "+setHelp)
	fs.StringVar(&j.dataRoot, "data-root", "", dataRootHelp)
	fs.IntVar(&j.top, "top", 1000, "references per query in the ranking (0 = all)")
	fs.BoolVar(&j.noRerank, "no-rerank", false, "ignore the bundle's re-ranking recipe (for comparison)")
	index.Flag(fs, &j.index, index.KindFlat) // re-ranking needs flat
	fs.StringVar(&j.shape, "shape", "auto", "catalogue shape whose re-ranking recipe applies: one, few or many images per product, or auto (the median number of references per label)")
	return j, func(args []string) error {
		if err := parse(fs, args, "queries", "references"); err != nil {
			return err
		}
		if j.top < 0 {
			return errors.New("--top must be 0 (all) or positive")
		}
		if j.shape != "auto" && !slices.Contains(bundle.Shapes, j.shape) {
			return fmt.Errorf("--shape %q: want auto, one, few or many", j.shape)
		}
		return nil
	}
}

// execute loads the sets, opens the bundle and ranks.
func (j *jobFlags) execute(ctx context.Context, stderr io.Writer) (*retrieval.Result, *dataset.Set, *dataset.Set, bundle.Bundle, error) {
	b, err := j.resolveBundle()
	if err != nil {
		return nil, nil, nil, b, err
	}
	qs, err := loadSet(j.queries, j.dataRoot)
	if err != nil {
		return nil, nil, nil, b, fmt.Errorf("queries: %w", err)
	}
	rs, err := loadSet(j.references, j.dataRoot)
	if err != nil {
		return nil, nil, nil, b, fmt.Errorf("references: %w", err)
	}
	if j.needLabels {
		if err := checkLabels(qs, rs); err != nil {
			return nil, nil, nil, b, err
		}
	}
	eng, err := bundle.Open(b, j.engineOptions())
	if err != nil {
		return nil, nil, nil, b, err
	}
	defer eng.Close()
	opt, err := j.fileOptions()
	if err != nil {
		return nil, nil, nil, b, err
	}
	job := retrieval.Job{
		Queries: qs, References: rs, Top: j.top, Files: opt, Strict: j.strict, Index: j.index,
		Progress: func(stage string) func(int, int) { return progress.New(stderr, stage).Update },
	}
	shape := j.shape
	if shape == "auto" {
		shape = bundle.ShapeOf(labelsOf(rs))
	}
	refEng, err := openRefEngine(b, shape, j.engineOptions(), stderr)
	if err != nil {
		return nil, nil, nil, b, err
	}
	if refEng != nil {
		defer refEng.Close()
		job.RefDescriber = refEng
	}
	if !j.noRerank {
		var why string
		j.rerank, why = b.RecipeFor(shape)
		if len(b.Recipes) > 0 || j.rerank != nil {
			fmt.Fprintf(stderr, "catalogue shape %s: re-ranking %s (%s)\n", orUnknown(shape), recipeName(j.rerank), why)
		}
		job.Rerank = j.rerank
	}
	res, err := retrieval.Run(ctx, eng, job)
	if err != nil {
		return nil, nil, nil, b, err
	}
	reportFailures(stderr, res)
	return res, qs, rs, b, nil
}

// openRefEngine opens the engine that describes the references of a
// catalogue of this shape when the bundle's recipe describes them otherwise
// than the queries (a one-image catalogue's studio images whole, say); nil
// when the queries' engine serves both.
func openRefEngine(b bundle.Bundle, shape string, opt bundle.Options, stderr io.Writer) (*bundle.Engine, error) {
	rb, differs := b.ForReferences(shape)
	if !differs {
		return nil, nil
	}
	fmt.Fprintf(stderr, "catalogue shape %s: references described with centre crop %g (0 = whole image), queries with the bundle's settings\n", shape, refCrop(rb))
	return bundle.Open(rb, opt)
}

// refCrop is the crop a (possibly ensemble) bundle describes with.
func refCrop(b bundle.Bundle) float64 {
	if b.IsEnsemble() {
		return b.Members[0].Bundle.Describe.Crop
	}
	return b.Describe.Crop
}

func orUnknown(shape string) string {
	if shape == "" {
		return "unknown (no labels)"
	}
	return shape
}

// recipeName spells a re-ranking recipe for people.
func recipeName(p *rerank.Params) string {
	if p == nil {
		return "none"
	}
	return tune.Name(p)
}

// reportFailures lists unreadable images after a batch job (count + names).
func reportFailures(w io.Writer, res *retrieval.Result) {
	if len(res.Failures) == 0 {
		return
	}
	fmt.Fprintf(w, "%d image(s) could not be described and were left out:\n", len(res.Failures))
	for _, f := range res.Failures {
		fmt.Fprintf(w, "  %v\n", f)
	}
}

func cmdInfer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	j, parseArgs := addJobFlags("infer", "--queries Q --references R --out FILE [--top K] [--format tsv|json]", stderr)
	out := j.fs.String("out", "", "ranking file to write (\"-\" = stdout)")
	format := j.fs.String("format", "tsv", "ranking format: tsv (query_id<TAB>ref1,ref2,...) or json")
	if err := parseArgs(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required (\"-\" for stdout)")
	}
	if *format != "tsv" && *format != "json" {
		return fmt.Errorf("--format %q: want tsv or json", *format)
	}
	res, _, _, _, err := j.execute(ctx, stderr)
	if err != nil {
		return err
	}
	if err := writeRankings(*out, stdout, res.Rankings, *format); err != nil {
		return err
	}
	printTiming(stderr, res)
	return nil
}

func writeRankings(path string, stdout io.Writer, r []eval.Ranking, format string) error {
	if path == "-" {
		return eval.WriteRankings(stdout, r, format)
	}
	var sb strings.Builder
	if err := eval.WriteRankings(&sb, r, format); err != nil {
		return err
	}
	if err := bundle.WriteFileAtomic(path, []byte(sb.String())); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// printTiming says where describe time went; decode and read are summed over
// worker goroutines, the other stages run on the calling goroutine.
func printTiming(w io.Writer, res *retrieval.Result) {
	q, r := res.QueryStats, res.RefStats
	ms := func(a, b time.Duration) string { return (a + b).Round(time.Millisecond).String() }
	fmt.Fprintf(w, "described %d images (%d from cache): read %s, decode %s, resize %s, tensor %s, inference %s, pool %s; wall %s; search %s\n",
		q.Described+r.Described, q.Cached+r.Cached, ms(q.Read, r.Read), ms(q.Decode, r.Decode), ms(q.Resize, r.Resize),
		ms(q.Tensor, r.Tensor), ms(q.Infer, r.Infer), ms(q.Pool, r.Pool), ms(q.Wall, r.Wall), res.Search.Round(time.Millisecond))
}

func cmdEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", "--ranking FILE --queries Q --references R [--json]", stderr)
	ranking := fs.String("ranking", "", "ranking file written by infer (TSV or JSON)")
	queries := fs.String("queries", "", "labelled queries: "+setHelp)
	references := fs.String("references", "", "labelled references: "+setHelp)
	dataRoot := fs.String("data-root", "", dataRootHelp)
	asJSON := fs.Bool("json", false, "print one JSON object (map, map@1000, mrr, recall@1, recall@5, recall@10, queries)")
	report := addReportFlag(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: prodsearch eval --ranking FILE --queries Q --references R [--json]\n\n"+
			"AP = (1/R) * sum over ranks k of P(k)*rel(k), R = relevant references in the whole reference set;\n"+
			"mAP@1000 cuts each list at 1000 with R unchanged; Recall@K = 1 if a relevant reference is in the top K;\n"+
			"MRR = mean of 1/rank of the first relevant reference (= mAP when each query has one relevant reference).\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, "ranking", "queries", "references"); err != nil {
		return err
	}
	rk, err := eval.ReadRankings(*ranking)
	if err != nil {
		return err
	}
	qs, err := loadSet(*queries, *dataRoot)
	if err != nil {
		return fmt.Errorf("queries: %w", err)
	}
	rs, err := loadSet(*references, *dataRoot)
	if err != nil {
		return fmt.Errorf("references: %w", err)
	}
	ev, err := score(rk, qs, rs)
	if err != nil {
		return err
	}
	if err := writeReport(*report, stderr, ev, rk, qs, rs, "ranking "+*ranking); err != nil {
		return err
	}
	return printScores(stdout, ev.Scores, *asJSON)
}

func score(rk []eval.Ranking, qs, rs *dataset.Set) (eval.Evaluation, error) {
	if err := checkLabels(qs, rs); err != nil {
		return eval.Evaluation{}, err
	}
	return eval.Evaluate(rk, qs.Labels(), rs.Labels())
}

// checkLabels refuses query and reference sets that cannot be scored: no
// labels at all, or some item without one (a line that lost its label
// column would otherwise drop out of the score).
func checkLabels(qs, rs *dataset.Set) error {
	if len(qs.Labels()) == 0 || len(rs.Labels()) == 0 {
		return errors.New("scoring needs labels: give manifests or class folders, not flat folders")
	}
	if err := qs.CheckLabels(); err != nil {
		return fmt.Errorf("queries: %w", err)
	}
	if err := rs.CheckLabels(); err != nil {
		return fmt.Errorf("references: %w", err)
	}
	return nil
}

func printScores(w io.Writer, s eval.Scores, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(s)
	}
	_, err := fmt.Fprint(w, s.Table())
	return err
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	j, parseArgs := addJobFlags("run", "--queries Q --references R [--out FILE] [--json]", stderr)
	out := j.fs.String("out", "", "also write the ranking file")
	asJSON := j.fs.Bool("json", false, "print the scores as one JSON object")
	report := addReportFlag(j.fs)
	if err := parseArgs(args); err != nil {
		return err
	}
	j.needLabels = true
	res, qs, rs, b, err := j.execute(ctx, stderr)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := writeRankings(*out, stdout, res.Rankings, "tsv"); err != nil {
			return err
		}
	}
	ev, err := score(res.Rankings, qs, rs)
	if err != nil {
		return err
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "bundle %s: %s\n", b.ID(), describeBundle(b))
	}
	if err := writeReport(*report, stderr, ev, res.Rankings, qs, rs, "bundle "+b.ID()+": "+describeBundle(b)); err != nil {
		return err
	}
	printTiming(stderr, res)
	return printScores(stdout, ev.Scores, *asJSON)
}

func describeBundle(b bundle.Bundle) string {
	if b.IsEnsemble() {
		parts := make([]string, len(b.Members))
		for i, m := range b.Members {
			parts[i] = fmt.Sprintf("%g x (%s)", m.Weight, describeBundle(m.Bundle))
		}
		s := "ensemble of " + strings.Join(parts, " + ")
		if b.Rerank != nil {
			s += fmt.Sprintf("; rerank %+v", *b.Rerank)
		}
		for _, r := range b.Recipes {
			s += fmt.Sprintf("; %s-image catalogues: %s", r.Shape, recipeName(r.Rerank))
		}
		return s
	}
	d := b.Describe
	s := fmt.Sprintf("backbone %s, scales %s, flip %v, pool %s", b.Backbone.Name, joinInts(d.Scales), d.Flip, d.Pool)
	if d.Pool == "gem" {
		s += fmt.Sprintf(" p=%g", d.P)
	}
	if d.Crop > 0 {
		s += fmt.Sprintf(", centre crop %g", d.Crop)
	}
	if len(b.Heads) > 0 {
		s += fmt.Sprintf(", %d head(s) -> %d-d", len(b.Heads), b.Dim())
	}
	if b.Rerank != nil {
		s += fmt.Sprintf(", rerank %+v", *b.Rerank)
	}
	return s
}

func cmdBackbones(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backbones", "[--models DIR]", stderr)
	models := fs.String("models", "", "model directory (default $PRODSEARCH_MODELS, else ../shared/models)")
	if err := parse(fs, args); err != nil {
		return err
	}
	specs, err := backbone.Builtin()
	if err != nil {
		return err
	}
	dir, dirErr := backbone.FindModelDir(*models)
	sort.Slice(specs, func(i, k int) bool { return specs[i].Name < specs[k].Name })
	bad := 0
	for _, s := range specs {
		status := "ok"
		if dirErr != nil {
			status = dirErr.Error()
			bad++
		} else if _, err := s.ModelPath(dir); err != nil {
			status = err.Error()
			bad++
		}
		fmt.Fprintf(stdout, "%-12s %-5s %4d-d  %s  [%s]\n", s.Name, s.Layout, s.Channels, s.File, status)
	}
	if bad > 0 {
		return fmt.Errorf("%d model file(s) missing or wrong", bad)
	}
	return nil
}
