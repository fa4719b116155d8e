package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"prodsearch/internal/bundle"
	"prodsearch/internal/describe"
	"prodsearch/internal/eval"
	"prodsearch/internal/progress"
	"prodsearch/internal/runs"
	"prodsearch/internal/train"
)

func leaderboardPath(runsDir string) string {
	return filepath.Join(runs.Dir(runsDir), "leaderboard.jsonl")
}

func cmdTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("train", "--data TRAIN --run NAME [flags]", stderr)
	ef := addEngineFlags(fs)
	data := fs.String("data", "", "training images with labels: "+setHelp)
	dataRoot := fs.String("data-root", "", dataRootHelp)
	run := fs.String("run", "", "run name (a folder under the runs dir)")
	resume := fs.Bool("resume", false, "continue an interrupted run: re-runs the same seeded recipe and writes the missing epochs")
	tf := addTrainFlags(fs)
	trunkCache := fs.String("trunk-cache", "", "`DIR` for the frozen trunk's float16 outputs when fine-tuning (default: the run's folder)")
	if err := parse(fs, args, "data", "run"); err != nil {
		return err
	}
	cfg, err := tf.config()
	if err != nil {
		return err
	}
	base, err := ef.resolveBundle()
	if err != nil {
		return err
	}
	views, err := describe.ParseViews(tf.aug, base.Describe.Scales)
	if err != nil {
		return fmt.Errorf("--aug: %w", err)
	}
	if len(base.Heads) > 0 || base.IsEnsemble() {
		return errors.New("--bundle for train must be a single-backbone describe recipe without heads: heads are what training fits")
	}
	set, err := loadSet(*data, *dataRoot)
	if err != nil {
		return err
	}
	if len(set.Labels()) == 0 {
		return errors.New("training data needs labels: a manifest with a label column or class folders")
	}
	eng, err := bundle.Open(base, ef.engineOptions())
	if err != nil {
		return err
	}
	defer eng.Close()
	fopt, err := ef.fileOptions()
	if err != nil {
		return err
	}
	spec := runs.TrainSpec{Data: *data, Base: base, Config: cfg, ValFrac: tf.valFrac, AugViews: views, Keep: tf.keep, Patience: tf.patience}
	topt := runs.TrainOptions{
		Dir: runs.Dir(ef.runsDir), Run: *run, Resume: *resume, Files: fopt, Log: stdout,
		Progress: func(stage string) func(int, int) { return progress.New(stderr, stage).Update },
		Engine:   ef.engineOptions(), TrunkCache: *trunkCache,
	}
	trainRun := runs.Train
	if cfg.FineTuneBlocks > 0 {
		trainRun = runs.FineTune
	}
	sum, err := trainRun(ctx, eng, set, spec, topt)
	if sum != nil {
		for _, s := range sum.Skipped {
			fmt.Fprintln(stderr, "skipped:", s)
		}
		for _, f := range sum.Failures {
			fmt.Fprintln(stderr, "unreadable, left out:", f)
		}
		if sum.Best.Name != "" {
			fmt.Fprintf(stdout, "best checkpoint %s: val mAP %.4f (frozen %.4f); %s in all\n", sum.Best.Ref(), sum.Best.Metrics.ValMAP, sum.Frozen.ValMAP, sum.Wall.Round(time.Second))
		}
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "interrupted: finished checkpoints are kept; continue with --resume")
	}
	return err
}

// trainFlags are the training recipe's flags, shared by train and build.
type trainFlags struct {
	cfg           train.Config
	loss          string
	scale, margin float64
	valFrac       float64
	aug           string
	keep          runs.Retention
	patience      int
}

func addTrainFlags(fs *flag.FlagSet) *trainFlags {
	t := &trainFlags{cfg: train.DefaultConfig()}
	cfg := &t.cfg
	fs.Float64Var(&t.valFrac, "val-frac", runs.DefaultValFrac, "fraction of training CLASSES held out for validation (checkpoint choice)")
	fs.StringVar(&t.aug, "aug", "mirror,192,256", "augmented views per training image, cached like any view: mirror, or a short side (empty = none)")
	fs.StringVar(&t.loss, "loss", cfg.Loss, "normsoftmax, arcface, proxyanchor, ms (multi-similarity), triplet (semi-hard), or none (whitening only)")
	fs.IntVar(&cfg.Dim, "dim", cfg.Dim, "output dimension of the head")
	fs.IntVar(&cfg.Hidden, "hidden", cfg.Hidden, "hidden units (0 = linear head)")
	fs.IntVar(&cfg.Epochs, "epochs", cfg.Epochs, "epochs")
	fs.IntVar(&cfg.BatchP, "batch-p", cfg.BatchP, "classes per batch (P)")
	fs.IntVar(&cfg.BatchK, "batch-k", cfg.BatchK, "images per class per batch (K)")
	fs.Float64Var(&cfg.LR, "lr", cfg.LR, "peak learning rate")
	fs.Float64Var(&cfg.WeightDecay, "weight-decay", cfg.WeightDecay, "weight decay")
	fs.StringVar(&cfg.Optimizer, "optimizer", cfg.Optimizer, "adam or sgd")
	fs.StringVar(&cfg.Schedule, "schedule", cfg.Schedule, "cosine, step or const")
	fs.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "warm-up epochs")
	fs.Float64Var(&t.scale, "scale", 0, "softmax scale / proxy-anchor alpha (0 = the loss's usual value)")
	fs.Float64Var(&t.margin, "margin", -1, "ArcFace margin / proxy-anchor delta / triplet margin (-1 = the loss's usual value)")
	fs.StringVar(&cfg.Whiten, "whiten", cfg.Whiten, "whitening before the head: pca, lw (learned, Radenovic et al.) or none")
	fs.IntVar(&cfg.WhitenDim, "whiten-dim", cfg.WhitenDim, "whitening output dimension (0 = input)")
	fs.Float64Var(&cfg.Shrink, "shrink", cfg.Shrink, "whitening eigenvalue shrinkage")
	fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "seed for the class hold-out, sampling and initialisation")
	fs.IntVar(&cfg.FineTuneBlocks, "finetune-blocks", 0, "also train the backbone's last `K` blocks (1: MobileNetV1's last depthwise-separable block, MobileNetV2's last inverted residual + final 1x1 conv) and a GeM exponent; 0 = frozen backbone (build: a backbone that lists no blocks, like the int8 one, trains its head only)")
	fs.Float64Var(&cfg.TailLR, "tail-lr", 1e-4, "peak learning rate of the fine-tuned blocks")
	fs.Float64Var(&cfg.GeMLR, "gem-lr", 1e-2, "peak learning rate of the GeM exponent when fine-tuning")
	fs.IntVar(&t.keep.Every, "keep-every", 10, "keep every N-th checkpoint besides the best and the last (0 = only those two)")
	fs.BoolVar(&t.keep.All, "keep-all", false, "keep every checkpoint")
	fs.IntVar(&t.patience, "patience", runs.DefaultPatience, "stop after this many epochs without a better validation mAP (0 = run every epoch)")
	return t
}

// config is the recipe with the loss's customary scale and margin unless
// given.
func (t *trainFlags) config() (train.Config, error) {
	cfg := t.cfg.WithLoss(t.loss)
	if t.scale > 0 {
		cfg.Scale = t.scale
	}
	if t.margin >= 0 {
		cfg.Margin = t.margin
	}
	if cfg.FineTuneBlocks == 0 {
		cfg.TailLR, cfg.GeMLR = 0, 0 // unused: keep run.json comparable
	}
	return cfg, cfg.Validate()
}

func cmdModels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("models", "[RUN] [--runs-dir DIR]", stderr)
	dir := fs.String("runs-dir", "", "runs directory (default $PRODSEARCH_RUNS, else ./runs)")
	if err := parseAny(fs, args); err != nil {
		return err
	}
	root := runs.Dir(*dir)
	names := fs.Args()
	if len(names) == 0 {
		var err error
		if names, err = runs.Runs(root); err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Fprintf(stdout, "no runs in %s\n", root)
			return nil
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECKPOINT\tEPOCH\tLOSS\tVAL mAP\tVAL R@1\tSAVED\t")
	for _, n := range names {
		cps, err := runs.List(root, n)
		if err != nil {
			return err
		}
		best, _ := runs.Best(cps)
		for _, c := range cps {
			mark := ""
			if c.Name == best.Name {
				mark = "  <- best"
			}
			fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%.3f\t%s\t%s\n", c.Ref(), c.Metrics.Epoch, c.Metrics.Loss, c.Metrics.ValMAP, c.Metrics.ValR1, c.Metrics.Time.Format(time.DateTime), mark)
		}
	}
	return tw.Flush()
}

func cmdSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "usage: prodsearch submit RUN/CHECKPOINT --queries Q --references R [--json] [--note TEXT]")
		return errors.New("submit needs a checkpoint (RUN/CHECKPOINT or RUN/best) or a bundle file first")
	}
	ref := args[0]
	j, parseArgs := addJobFlags("submit", "RUN/CHECKPOINT --queries Q --references R [--json]", stderr)
	asJSON := j.fs.Bool("json", false, "print the scores as one JSON object (same keys as eval --json)")
	note := j.fs.String("note", "", "free text stored with the leaderboard row")
	report := addReportFlag(j.fs)
	if err := parseArgs(args[1:]); err != nil {
		return err
	}
	if j.bundle != "" {
		return errors.New("give the checkpoint as the first argument, not --bundle")
	}
	j.bundle = ref
	j.needLabels = true
	res, qs, rs, b, err := j.execute(ctx, stderr)
	if err != nil {
		return err
	}
	ev, err := score(res.Rankings, qs, rs)
	if err != nil {
		return err
	}
	s := ev.Scores
	hash, err := eval.SettingsHash(struct {
		Bundle string
		Top    int
		Rerank bool
	}{b.ID(), j.top, j.rerank != nil})
	if err != nil {
		return err
	}
	run, ckpt := filepath.Base(ref), "-"
	if st, err := os.Stat(ref); err != nil || st.IsDir() {
		if cp, err := runs.Resolve(runs.Dir(j.runsDir), ref); err == nil {
			run, ckpt = cp.Run, cp.Name
		}
	}
	row := eval.ScoreRow(s)
	row.Run, row.Checkpoint, row.Dataset, row.SettingsHash, row.Note = run, ckpt, j.queries, hash, *note
	if err := eval.AppendLeaderboard(leaderboardPath(j.runsDir), row); err != nil {
		return err
	}
	if err := writeReport(*report, stderr, ev, res.Rankings, qs, rs, "submit "+ref+" (bundle "+b.ID()+": "+describeBundle(b)+")"); err != nil {
		return err
	}
	printTiming(stderr, res)
	return printScores(stdout, s, *asJSON)
}

func cmdLeaderboard(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("leaderboard", "[--runs-dir DIR] [--json]", stderr)
	dir := fs.String("runs-dir", "", "runs directory holding leaderboard.jsonl")
	asJSON := fs.Bool("json", false, "print the rows as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	rows, err := eval.ReadLeaderboard(leaderboardPath(*dir))
	var torn *eval.TornLinesError
	if errors.As(err, &torn) {
		fmt.Fprintln(stderr, "warning:", err)
	} else if err != nil {
		return err
	}
	eval.SortRows(rows)
	if *asJSON {
		return json.NewEncoder(stdout).Encode(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "leaderboard is empty: `prodsearch submit RUN/best --queries Q --references R` adds a row")
		return nil
	}
	_, err = fmt.Fprint(stdout, eval.FormatLeaderboard(rows))
	return err
}
