package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"prodsearch/internal/bundle"
	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/train"
	"prodsearch/internal/vec"
)

// TrainSpec is what `prodsearch train` was asked to do; it is written to
// run.json so a run can be resumed and its checkpoints explained.
type TrainSpec struct {
	Data       string          `json:"data"`
	Base       bundle.Bundle   `json:"base"` // describe recipe the heads sit on
	Config     train.Config    `json:"config"`
	ValFrac    float64         `json:"val_frac"`
	AugViews   []describe.View `json:"aug_views,omitempty"`
	Started    time.Time       `json:"started"`
	ValClasses []string        `json:"val_classes"`
	// Keep says which checkpoints stay on disk; Patience stops training
	// after that many epochs without a better validation mAP (0 = never).
	Keep     Retention `json:"keep"`
	Patience int       `json:"patience,omitempty"`
	// Refit trains on every class for exactly Config.Epochs epochs, with
	// nothing held out, and keeps the last epoch: the final fit after a
	// held-out run chose the epochs (and the rest of the recipe). It has no
	// validation figures of its own.
	Refit bool `json:"refit,omitempty"`
}

// Retention chooses the checkpoints a run keeps: always the best (highest
// validation mAP) and the last, plus every Every-th epoch (0 = none). A
// folded checkpoint is one matrix of a few MB, so a 40-epoch run keeps a
// handful of them rather than 40.
type Retention struct {
	Every int  `json:"every,omitempty"`
	All   bool `json:"all,omitempty"`
}

// keeps reports whether epoch n stays, given the best and last epochs.
func (r Retention) keeps(n, best, last int) bool {
	return r.All || n == best || n == last || (r.Every > 0 && n%r.Every == 0)
}

// DefaultPatience stops training five epochs after the best validation
// mAP: the default recipe's curves peak at epoch 2-3 of 40 (README,
// "Training") and never recover after five flat epochs.
const DefaultPatience = 5

// Trainer is what training needs from an opened bundle.
type Trainer interface {
	Describer() *describe.Describer
}

// TrainOptions wire the run to its environment.
type TrainOptions struct {
	Dir      string // runs directory
	Run      string
	Resume   bool
	Files    describe.FileOptions
	Log      io.Writer // one line per epoch
	Progress func(stage string) func(done, total int)
	// Engine locates the models and runtime, for fine-tuning's trunk;
	// TrunkCache is where FineTune keeps trunk outputs ("" = the run's
	// folder).
	Engine     bundle.Options
	TrunkCache string
}

// Summary is what a finished (or interrupted) run reports.
type Summary struct {
	Frozen, Whitened Metrics // validation figures before any training
	Epochs           []Metrics
	Best             Checkpoint
	Failures         []describe.Failure
	Skipped          []string // classes left out, with the reason
	Wall             time.Duration
}

// Train describes the training images (view 0 as the bundle describes them,
// further views as augmentations), holds out a fraction of the classes for
// validation, fits whitening and the head, and writes a checkpoint after every
// epoch. Cancelling ctx keeps every finished checkpoint. Resume re-runs the
// same deterministic recipe and keeps the checkpoints already written,
// writing only the epochs that are missing.
func Train(ctx context.Context, eng Trainer, set *dataset.Set, spec TrainSpec, opt TrainOptions) (*Summary, error) {
	start := time.Now()
	runDir, existing, err := prepareRunDir(opt, &spec)
	if err != nil {
		return nil, err
	}
	sum := &Summary{}
	items, skipped := UsableItems(set)
	sum.Skipped = skipped
	d := eng.Describer()
	views := append([]describe.View(nil), d.Views()...)
	nBase := len(views)
	views = append(views, spec.AugViews...)
	paths := make([]string, len(items))
	for i, it := range items {
		paths[i] = it.Path
	}
	fopt := opt.Files
	if opt.Progress != nil {
		fopt.Progress = opt.Progress("describe training images")
	}
	perView, fails, _, err := d.DescribeFileViews(ctx, paths, views, fopt)
	if err != nil {
		return nil, err
	}
	sum.Failures = fails
	// x[i][0] is the descriptor as the bundle computes it at run time; the
	// augmentation views follow.
	var x [][][]float32
	var labels []string
	for i, vs := range perView {
		if vs == nil {
			continue
		}
		base := make([]float32, d.Dim())
		for _, v := range vs[:nBase] {
			for k, f := range v {
				base[k] += f
			}
		}
		vec.Normalize(base)
		x = append(x, append([][]float32{base}, vs[nBase:]...))
		labels = append(labels, items[i].Label)
	}
	trIdx, valIdx, err := splitClasses(labels, spec)
	if err != nil {
		return nil, err
	}
	var trX [][][]float32
	var trY, valY []string
	var valX [][]float32
	valClasses := map[string]bool{}
	for _, i := range trIdx {
		trX, trY = append(trX, x[i]), append(trY, labels[i])
	}
	for _, i := range valIdx {
		valX, valY = append(valX, x[i][0]), append(valY, labels[i])
		valClasses[labels[i]] = true
	}
	spec.ValClasses = sortedKeys(valClasses)
	if err := writeJSON(filepath.Join(runDir, "run.json"), spec); err != nil {
		return nil, err
	}
	// valMAP scores heads on the held-out classes; a refit has none.
	valMAP := func(heads describe.Heads) (float64, float64, error) {
		if spec.Refit {
			return 0, 0, nil
		}
		return train.ValMAP(heads.ApplyBatch(valX), valY)
	}
	if spec.Refit {
		opt.logf("refit on %d images of all %d classes for %d epoch(s), nothing held out, %d view(s) per image\n",
			len(trX), countClasses(trY), spec.Config.Epochs, len(views)-nBase+1)
	} else {
		opt.logf("training on %d images of %d classes, validating on %d images of %d held-out classes, %d view(s) per image\n",
			len(trX), countClasses(trY), len(valX), len(valClasses), len(views)-nBase+1)
		if sum.Frozen.ValMAP, sum.Frozen.ValR1, err = valMAP(nil); err != nil {
			return nil, err
		}
		opt.logf("frozen descriptor: val mAP %.4f, R@1 %.3f\n", sum.Frozen.ValMAP, sum.Frozen.ValR1)
	}

	base := make([][]float32, len(trX))
	for i := range trX {
		base[i] = trX[i][0]
	}
	whiten, err := train.FitWhitening(spec.Config, base, trY)
	if err != nil {
		return nil, err
	}
	if len(whiten) > 0 && !spec.Refit {
		if sum.Whitened.ValMAP, sum.Whitened.ValR1, err = valMAP(whiten); err != nil {
			return nil, err
		}
		opt.logf("%s whitening only: val mAP %.4f, R@1 %.3f\n", spec.Config.Whiten, sum.Whitened.ValMAP, sum.Whitened.ValR1)
	}
	book := &epochBook{spec: &spec, runDir: runDir, existing: existing, sum: sum, logf: opt.logf, bestEpoch: -1, bestMAP: -1}
	saveEpoch := func(n int, loss float64, heads describe.Heads, elapsed time.Duration) error {
		m := Metrics{Epoch: n, Loss: loss, Elapsed: elapsed, Time: time.Now().UTC()}
		if m.ValMAP, m.ValR1, err = valMAP(heads); err != nil {
			return err
		}
		return book.record(m, "", func(dir string) error {
			b := spec.Base
			b.Heads = heads.Fold()
			b.Name = opt.Run
			b.Notes = fmt.Sprintf("run %s epoch %d: %s head on %s whitening", opt.Run, n, spec.Config.Loss, spec.Config.Whiten)
			return saveCheckpoint(dir, b, m)
		})
	}
	if spec.Config.Loss == train.LossNone || spec.Config.Epochs == 0 {
		if err := saveEpoch(0, 0, whiten, 0); err != nil {
			return nil, err
		}
	} else {
		_, err = train.FitHead(ctx, spec.Config, whiten, trX, trY, func(e train.Epoch) error {
			return saveEpoch(e.N, e.Loss, e.Heads, e.Elapsed)
		})
	}
	return finish(sum, opt, start, err)
}

// splitClasses returns the indices of labels to train on and to validate
// on: spec.ValFrac of the classes held out, or none for a refit.
func splitClasses(labels []string, spec TrainSpec) (trIdx, valIdx []int, err error) {
	trIdx, valIdx = train.HoldOutClasses(labels, spec.ValFrac, spec.Config.Seed)
	if spec.Refit {
		if countClasses(labels) < 2 {
			return nil, nil, errors.New("train: need at least two usable classes")
		}
		return append(trIdx, valIdx...), nil, nil
	}
	if len(valIdx) == 0 || len(trIdx) == 0 {
		return nil, nil, errors.New("train: need at least two usable classes to hold one out for validation")
	}
	return trIdx, valIdx, nil
}

// finish completes a run's summary with its best checkpoint and wall time.
// A cancelled run still reports what it saved, with the cancellation.
func finish(sum *Summary, opt TrainOptions, start time.Time, err error) (*Summary, error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	cps, lerr := List(opt.Dir, opt.Run)
	if lerr != nil {
		return nil, lerr
	}
	sum.Best, _ = Best(cps)
	sum.Wall = time.Since(start)
	return sum, err
}

// epochBook does what every training run does after an epoch: keep the
// figures and curves, save the checkpoint unless a resumed run has it,
// log, prune by the retention rule and stop on a validation plateau.
type epochBook struct {
	spec      *TrainSpec
	runDir    string
	existing  map[int]bool
	sum       *Summary
	logf      func(format string, a ...any)
	stats     []train.EpochStats
	spent     time.Duration
	bestEpoch int
	bestMAP   float64 // start both at -1
}

// record books epoch m (its validation figures filled in); save writes the
// checkpoint into the folder it is given. extra is appended to the log line.
// It returns train.ErrStop when patience runs out.
func (b *epochBook) record(m Metrics, extra string, save func(dir string) error) error {
	n, epochs := m.Epoch, b.spec.Config.Epochs
	b.sum.Epochs = append(b.sum.Epochs, m)
	b.stats = append(b.stats, train.EpochStats{Epoch: n, Loss: m.Loss, ValMAP: m.ValMAP, ValR1: m.ValR1})
	b.spent += m.Elapsed
	left := ""
	if n > 0 && n < epochs {
		left = fmt.Sprintf(", about %s left", (b.spent / time.Duration(n) * time.Duration(epochs-n)).Round(time.Second))
	}
	if m.ValMAP > b.bestMAP || b.spec.Refit {
		b.bestEpoch, b.bestMAP = n, m.ValMAP
	}
	if !b.existing[n] {
		if err := save(filepath.Join(b.runDir, CheckpointName(n))); err != nil {
			return err
		}
		if err := train.PlotCurves(filepath.Join(b.runDir, "curves.png"), b.stats); err != nil {
			return err
		}
	}
	// Logged once saved, so a printed epoch is a durable checkpoint
	// whatever happens to the process next.
	if b.spec.Refit {
		b.logf("epoch %3d  loss %.4f%s  (%s%s)\n", n, m.Loss, extra, m.Elapsed.Round(time.Millisecond), left)
	} else {
		b.logf("epoch %3d  loss %.4f  val mAP %.4f  R@1 %.3f%s  (%s%s)\n", n, m.Loss, m.ValMAP, m.ValR1, extra, m.Elapsed.Round(time.Millisecond), left)
	}
	// Epochs after n are a resumed run's later checkpoints: they stay
	// until the run reaches them and can judge them.
	// A refit keeps its last epoch only: nothing else can judge the others.
	if err := prune(b.runDir, func(e int) bool { return e > n || (!b.spec.Refit && b.spec.Keep.keeps(e, b.bestEpoch, n)) || e == n }); err != nil {
		return err
	}
	if p := b.spec.Patience; p > 0 && n-b.bestEpoch >= p {
		b.logf("stopping early: no better validation mAP for %d epochs (best: epoch %d, %.4f)\n", p, b.bestEpoch, b.bestMAP)
		return train.ErrStop
	}
	return nil
}

// prune deletes the checkpoints of a run that keep rejects. The metrics
// file goes first, so a checkpoint half deleted by a crash is no longer
// listed (List needs both files).
func prune(runDir string, keep func(epoch int) bool) error {
	dirs, err := filepath.Glob(filepath.Join(runDir, "epoch-*"))
	if err != nil {
		return err
	}
	for _, d := range dirs {
		var e int
		if _, err := fmt.Sscanf(filepath.Base(d), "epoch-%d", &e); err != nil || keep(e) {
			continue
		}
		if err := os.Remove(filepath.Join(d, "metrics.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}

// DefaultValFrac is the fraction of training classes `train` holds out for
// validation unless told otherwise.
const DefaultValFrac = 0.25

// HeldOutClasses returns the classes Train holds out for validation when it
// trains on set with valFrac and seed and every image reads: the classes a
// run of that recipe validates on, known before anything is described, so
// validation tasks can be built on the same classes without a run.
func HeldOutClasses(set *dataset.Set, valFrac float64, seed int64) map[string]bool {
	items, _ := UsableItems(set)
	labels := make([]string, len(items))
	for i, it := range items {
		labels[i] = it.Label
	}
	_, valIdx := train.HoldOutClasses(labels, valFrac, seed)
	out := map[string]bool{}
	for _, i := range valIdx {
		out[labels[i]] = true
	}
	return out
}

// UsableItems drops unlabeled items and classes with fewer than two images
// (no positive pair to learn from), saying which.
func UsableItems(set *dataset.Set) ([]dataset.Item, []string) {
	count := map[string]int{}
	for _, it := range set.Items {
		count[it.Label]++
	}
	var out []dataset.Item
	var skipped []string
	for _, it := range set.Items {
		if it.Label != "" && count[it.Label] >= 2 {
			out = append(out, it)
		}
	}
	for _, l := range sortedKeys(count) {
		switch {
		case l == "":
			skipped = append(skipped, fmt.Sprintf("%d unlabeled image(s)", count[l]))
		case count[l] < 2:
			skipped = append(skipped, fmt.Sprintf("class %q has only one image", l))
		}
	}
	return out, skipped
}

// logf writes a progress line to opt.Log, if there is one.
func (opt TrainOptions) logf(format string, a ...any) {
	if opt.Log != nil {
		fmt.Fprintf(opt.Log, format, a...)
	}
}

// prepareRunDir checks the run's name and creates its folder, or for
// --resume checks that the recipe matches run.json and returns the epochs
// already saved.
func prepareRunDir(opt TrainOptions, spec *TrainSpec) (runDir string, existing map[int]bool, err error) {
	if err := CheckName(opt.Run); err != nil {
		return "", nil, err
	}
	runDir, resume := filepath.Join(opt.Dir, opt.Run), opt.Resume
	existing = map[int]bool{}
	data, err := os.ReadFile(filepath.Join(runDir, "run.json"))
	switch {
	case err == nil && !resume:
		return "", nil, fmt.Errorf("run %s already exists: use --resume to continue it or choose another --run", runDir)
	case err == nil:
		var old TrainSpec
		if err := json.Unmarshal(data, &old); err != nil {
			return "", nil, fmt.Errorf("%s/run.json: %w", runDir, err)
		}
		if old.Data != spec.Data || old.Base.ID() != spec.Base.ID() || old.Config != spec.Config || old.ValFrac != spec.ValFrac || old.Refit != spec.Refit {
			return "", nil, fmt.Errorf("--resume: run %s was started with another recipe or data (see run.json); start a new --run", runDir)
		}
		spec.Started = old.Started
		cps, err := List(filepath.Dir(runDir), filepath.Base(runDir))
		if err != nil {
			return "", nil, err
		}
		for _, c := range cps {
			existing[c.Metrics.Epoch] = true
		}
	case errors.Is(err, os.ErrNotExist):
		// A folder without run.json is a run interrupted before its
		// recipe was recorded (while describing): resuming starts it over.
		if _, serr := os.Stat(runDir); resume && serr != nil {
			return "", nil, fmt.Errorf("--resume: run %s does not exist", runDir)
		}
		spec.Started = time.Now().UTC()
	default:
		return "", nil, err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return "", nil, err
	}
	return runDir, existing, removeTemps(runDir)
}

// removeTemps deletes the temporary files that a killed process left
// behind in a run and its checkpoints; atomic writes never rename them into
// place, so nothing reads them, but they would pile up.
func removeTemps(runDir string) error {
	for _, pattern := range []string{bundle.TempPrefix + "*", "epoch-*/" + bundle.TempPrefix + "*"} {
		paths, err := filepath.Glob(filepath.Join(runDir, pattern))
		if err != nil {
			return err
		}
		for _, p := range paths {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// saveCheckpoint writes the bundle first and the metrics last: List only
// shows folders with both, so a crash between them leaves no half checkpoint.
func saveCheckpoint(dir string, b bundle.Bundle, m Metrics) error {
	if err := b.Save(filepath.Join(dir, "bundle.json")); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := writeJSON(filepath.Join(dir, "metrics.json"), m); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return bundle.WriteFileAtomic(path, append(data, '\n'))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func countClasses(labels []string) int {
	m := map[string]bool{}
	for _, l := range labels {
		m[l] = true
	}
	return len(m)
}
