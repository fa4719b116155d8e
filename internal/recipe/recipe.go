// Package recipe builds the product's model in one call: it chooses the
// describe settings of every backbone on validation classes held out from
// the training data, trains a head per backbone, weighs them into an
// ensemble, tunes a re-ranking recipe per catalogue shape, optionally refits
// the heads on every training class, and writes one model directory. Every
// choice is made on the held-out training classes; no test image is ever
// read.
//
//	OUT/model.json          the model: ensemble, recipes per shape, provenance
//	OUT/members/NAME.json   one member's recipe, its weights in NAME.safetensors
//	OUT/members/NAME.onnx   a fine-tuned member's ONNX model (rebuilt from the
//	                        base model and its tail when missing)
//	OUT/MODEL.md            how it was chosen, with the validation figures
//	OUT/runs/NAME/          the training runs (checkpoints, curves)
//	OUT/runs/NAME-all/      the refit runs (Config.Refit)
package recipe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"prodsearch/internal/backbone"
	"prodsearch/internal/bundle"
	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/eval"
	"prodsearch/internal/rerank"
	"prodsearch/internal/runs"
	"prodsearch/internal/train"
	"prodsearch/internal/tune"
)

// Config is what to build and where.
type Config struct {
	// Data are the labelled training photos; Catalogue, optional, holds
	// catalogue (studio) images labelled like Data, one or a few per class.
	// Those of the validation classes make the photo-to-catalogue tasks;
	// the others are never used unless TrainOnCatalogue is set.
	Data, Catalogue *dataset.Set
	// Backbones are the members, by builtin name or spec path.
	Backbones []string
	// Train is the head recipe of every member; ValFrac the fraction of
	// classes held out; Aug the augmentation views ("mirror,192,256").
	Train   train.Config
	ValFrac float64
	Aug     string
	// Patience and Keep are the runs' early stopping and retention.
	Patience int
	Keep     runs.Retention
	// TrainOnCatalogue adds the training classes' catalogue images to the
	// training photos (the refit takes the validation classes' too),
	// teaching the head that a studio image and a phone photo of one
	// product belong together.
	TrainOnCatalogue bool
	// Refit trains every member once more, on all training classes (the
	// validation ones too) for the epochs its held-out run chose, after
	// every choice has been made; the model then holds the refit heads.
	Refit bool
	// Crops are the centre crops tried per backbone (0 = whole image), at
	// Scale with GAP; GeM (p=3) is then tried at the best crop.
	Crops []float64
	Scale int
	// Half stores the members' weights as float16.
	Half bool
	// Out is the model directory; nothing is written outside it.
	Out        string
	Engine     bundle.Options
	Files      describe.FileOptions
	Provenance bundle.Provenance // Command, Data and Catalogue as the caller names them
	Log        io.Writer
	Progress   func(stage string) func(done, total int)
}

// DefaultCrops are the centre crops tried: the whole image, 80% and 60% of
// each side. Products fill studio images but not shoppers' photos, so the
// best crop depends on the data: it is chosen, not fixed.
var DefaultCrops = []float64{0, 0.8, 0.6}

// Task is one validation retrieval task of a catalogue shape.
type Task struct {
	Name   string
	Shape  string
	Qs, Rs []dataset.Item
}

// SettingsTrial is one describe setting tried for one backbone.
type SettingsTrial struct {
	Backbone string
	Settings describe.Settings
	PerTask  []eval.Scores
	Mean     float64
}

// Result is what Build made and measured.
type Result struct {
	Model      string // path of model.json
	Bundle     bundle.Bundle
	Tasks      []Task
	Settings   []SettingsTrial
	Chosen     map[string]describe.Settings
	Runs       map[string]*runs.Summary
	Refits     map[string]*runs.Summary // the final fits on every class (Config.Refit)
	Weights    []float64
	Recipes    []bundle.Recipe
	ValClasses []string
	Wall       time.Duration
}

// Build runs the whole recipe; see the package comment.
func Build(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	if len(cfg.Backbones) == 0 {
		return nil, errors.New("recipe: no backbone to build with")
	}
	if cfg.Out == "" {
		return nil, errors.New("recipe: no output directory")
	}
	if cfg.Scale == 0 {
		cfg.Scale = describe.DefaultSettings().Scales[0]
	}
	if len(cfg.Crops) == 0 {
		cfg.Crops = DefaultCrops
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	res := &Result{Chosen: map[string]describe.Settings{}, Runs: map[string]*runs.Summary{}, Refits: map[string]*runs.Summary{}}
	items, _ := runs.UsableItems(cfg.Data)
	known := dataset.LabelSet(items)
	val := runs.HeldOutClasses(cfg.Data, cfg.ValFrac, cfg.Train.Seed)
	if len(val) < 2 {
		return nil, fmt.Errorf("recipe: %d validation class(es): need at least two (more classes or a larger --val-frac)", len(val))
	}
	res.ValClasses = slices.Sorted(maps.Keys(val))
	var valPhotos, valCat, trainCat []dataset.Item
	for _, it := range items {
		if val[it.Label] {
			valPhotos = append(valPhotos, it)
		}
	}
	if cfg.Catalogue != nil {
		for _, it := range cfg.Catalogue.Items {
			switch {
			case val[it.Label]:
				valCat = append(valCat, it)
			case known[it.Label]:
				trainCat = append(trainCat, it)
			}
		}
	}
	res.Tasks = Tasks(valPhotos, valCat)
	c := &builder{cfg: cfg, res: res}
	c.logf("validation: %d photos and %d catalogue images of %d classes held out of %d; tasks:\n", len(valPhotos), len(valCat), len(val), len(known))
	for _, t := range res.Tasks {
		c.logf("  %-22s %-4s %5d queries, %5d references\n", t.Name, t.Shape, len(t.Qs), len(t.Rs))
	}

	for _, name := range cfg.Backbones {
		s, err := c.chooseSettings(ctx, name)
		if err != nil {
			return nil, err
		}
		res.Chosen[name] = s
	}

	trainSet, refitSet := trainingSets(cfg.Data, trainCat, valCat, cfg.TrainOnCatalogue)
	if n := len(trainSet.Items) - len(cfg.Data.Items); n > 0 {
		c.logf("training on %d photos and %d catalogue images of the training classes\n", len(cfg.Data.Items), n)
	}
	var members []bundle.Bundle
	for _, name := range cfg.Backbones {
		mb, err := c.trainMember(ctx, name, trainSet, false)
		if err != nil {
			return nil, err
		}
		members = append(members, mb)
	}

	// Every task described by every member, through the cache: the
	// pre-head descriptors were computed while choosing settings.
	probs := make([][]*tune.Problem, len(res.Tasks)) // [task][member]
	for _, mb := range members {
		ps, err := c.problems(ctx, mb, nil)
		if err != nil {
			return nil, err
		}
		for ti, p := range ps {
			probs[ti] = append(probs[ti], p)
		}
	}
	weights := []float64{1}
	if len(members) > 1 {
		w, trials, err := tune.Weights(ctx, probs...)
		if err != nil {
			return nil, err
		}
		weights = w
		c.logf("ensemble weights %v (mean val mAP over the tasks: equal %.4f, chosen %.4f)\n", w, trials[0].Scores.MAP, bestMAP(trials))
	}
	res.Weights = weights
	recipes, err := c.tuneRecipes(ctx, members, probs, weights)
	if err != nil {
		return nil, err
	}
	res.Recipes = recipes

	shipped := trainSet // what the shipped heads learned from
	if cfg.Refit {
		shipped = refitSet
		for i, name := range cfg.Backbones {
			if members[i], err = c.trainMember(ctx, name, refitSet, true); err != nil {
				return nil, err
			}
		}
	}
	model, err := c.write(members, weights, recipes, shipped)
	if err != nil {
		return nil, err
	}
	res.Bundle = model
	res.Model = model.Path()
	res.Wall = time.Since(start)
	if err := writeCard(filepath.Join(cfg.Out, "MODEL.md"), res); err != nil {
		return nil, err
	}
	c.logf("wrote %s (%d-d, ID %s) in %s\n", res.Model, model.Dim(), model.ID(), res.Wall.Round(time.Second))
	return res, nil
}

// trainingSets are what the held-out runs and the refits train on: the
// photos, and with onCatalogue the catalogue images too. The held-out runs
// never see a validation class's catalogue image (it is a validation
// reference); the refit, with nothing held out, sees every one.
func trainingSets(photos *dataset.Set, trainCat, valCat []dataset.Item, onCatalogue bool) (held, refit *dataset.Set) {
	if !onCatalogue {
		return photos, photos
	}
	with := func(cat ...[]dataset.Item) *dataset.Set {
		items := slices.Clone(photos.Items)
		for _, c := range cat {
			items = append(items, c...)
		}
		return &dataset.Set{Source: photos.Source, Format: photos.Format, Items: items}
	}
	return with(trainCat), with(trainCat, valCat)
}

// Tasks makes the validation tasks of every catalogue shape from the
// validation classes' photos and catalogue images (which may be empty):
//
//	photos          many  two photos per class query the other photos (the test split's protocol)
//	catalogue→photos many  each catalogue image queries the photos
//	photo→catalogue one   every photo queries the catalogue images (a shop's search)
//	few             few   the rest of the photos query the catalogue image and two photos per class
//
// Without catalogue images, the first photo of each class stands in for it.
func Tasks(photos, catalogue []dataset.Item) []Task {
	qs, rs := tune.Split(photos, 2)
	tasks := []Task{{Name: "photos", Shape: bundle.ShapeMany, Qs: qs, Rs: rs}}
	cat, rest := catalogue, photos
	if len(catalogue) > 0 {
		tasks = append(tasks, Task{Name: "catalogue→photos", Shape: bundle.ShapeMany, Qs: catalogue, Rs: photos})
	} else {
		cat, rest = tune.Split(photos, 1)
	}
	tasks = append(tasks, Task{Name: "photo→catalogue", Shape: bundle.ShapeOne, Qs: rest, Rs: cat})
	extra, queries := tune.Split(rest, 2)
	tasks = append(tasks, Task{Name: "few", Shape: bundle.ShapeFew, Qs: queries, Rs: append(slices.Clone(cat), extra...)})
	return tasks
}

type builder struct {
	cfg Config
	res *Result
}

func (c *builder) logf(format string, a ...any) {
	if c.cfg.Log != nil {
		fmt.Fprintf(c.cfg.Log, format, a...)
	}
}

func (c *builder) files(stage string) describe.FileOptions {
	opt := c.cfg.Files
	if c.cfg.Progress != nil {
		opt.Progress = c.cfg.Progress(stage)
	}
	return opt
}

// chooseSettings tries the centre crops with GAP, then GeM at the best
// crop, on the frozen backbone, and keeps the best mean mAP over the tasks.
func (c *builder) chooseSettings(ctx context.Context, name string) (describe.Settings, error) {
	base, err := bundle.Default(name)
	if err != nil {
		return describe.Settings{}, err
	}
	try := func(s describe.Settings) (SettingsTrial, error) {
		b := base
		b.Describe = s
		ps, err := c.problems(ctx, b, nil)
		if err != nil {
			return SettingsTrial{}, err
		}
		t := SettingsTrial{Backbone: name, Settings: s}
		for _, p := range ps {
			sc, err := p.Score(ctx, nil)
			if err != nil {
				return SettingsTrial{}, err
			}
			t.PerTask = append(t.PerTask, sc)
			t.Mean += sc.MAP / float64(len(ps))
		}
		c.logf("  %-10s %-22s mean val mAP %.4f  (%s)\n", name, settingsName(s), t.Mean, perTask(c.res.Tasks, t.PerTask))
		c.res.Settings = append(c.res.Settings, t)
		return t, nil
	}
	c.logf("choosing describe settings for %s on the validation tasks:\n", name)
	var best SettingsTrial
	for _, crop := range c.cfg.Crops {
		t, err := try(describe.Settings{Scales: []int{c.cfg.Scale}, Pool: describe.PoolGAP, Crop: crop})
		if err != nil {
			return describe.Settings{}, err
		}
		if best.Settings.Pool == "" || t.Mean > best.Mean {
			best = t
		}
	}
	gem := best.Settings
	gem.Pool, gem.P = describe.PoolGeM, describe.DefaultGeMP
	t, err := try(gem)
	if err != nil {
		return describe.Settings{}, err
	}
	if t.Mean > best.Mean {
		best = t
	}
	c.logf("  chosen for %s: %s\n", name, settingsName(best.Settings))
	return best.Settings, nil
}

// trainMember trains the head of one backbone with its chosen settings (and
// its last blocks, Config.Train.FineTuneBlocks, where its spec lists them)
// and returns its best checkpoint. A run left by an earlier build is resumed:
// the recipe is seeded, so the same checkpoints come out.
func (c *builder) trainMember(ctx context.Context, name string, set *dataset.Set, refit bool) (bundle.Bundle, error) {
	base, err := bundle.Default(name)
	if err != nil {
		return bundle.Bundle{}, err
	}
	base.Describe = c.res.Chosen[name]
	views, err := describe.ParseViews(c.cfg.Aug, base.Describe.Scales)
	if err != nil {
		return bundle.Bundle{}, fmt.Errorf("recipe: augmentation views: %w", err)
	}
	eng, err := bundle.Open(base, c.cfg.Engine)
	if err != nil {
		return bundle.Bundle{}, err
	}
	defer eng.Close()
	runsDir := filepath.Join(c.cfg.Out, "runs")
	run := name
	data := c.cfg.Provenance.Data
	if len(set.Items) > len(c.cfg.Data.Items) {
		// run.json names the catalogue too, so a resume notices the change.
		data += " + catalogue images of " + c.cfg.Provenance.Catalogue
	}
	spec := runs.TrainSpec{Data: data, Base: base, Config: c.cfg.Train, ValFrac: c.cfg.ValFrac, AugViews: views, Keep: c.cfg.Keep, Patience: c.cfg.Patience}
	trainRun := runs.Train
	if spec.Config.FineTuneBlocks > 0 {
		if len(base.Backbone.Blocks) == 0 {
			// A backbone with no trainable blocks listed (the int8
			// model) joins with a head only, like every member would
			// without fine-tuning.
			spec.Config.FineTuneBlocks, spec.Config.TailLR, spec.Config.GeMLR = 0, 0, 0
			if !refit {
				c.logf("%s lists no trainable blocks: training its head only\n", name)
			}
		} else {
			trainRun = runs.FineTune
		}
	}
	if refit {
		// The held-out run chose the epochs; the refit trains that many.
		run = name + "-all"
		spec.Refit, spec.Patience, spec.Keep = true, 0, runs.Retention{}
		spec.Config.Epochs = c.res.Runs[name].Best.Metrics.Epoch
		c.logf("refitting %s on every class for %d epoch(s):\n", name, spec.Config.Epochs)
	} else {
		c.logf("training %s (%s):\n", name, settingsName(base.Describe))
	}
	_, statErr := os.Stat(filepath.Join(runsDir, run, "run.json"))
	sum, err := trainRun(ctx, eng, set, spec, runs.TrainOptions{
		Dir: runsDir, Run: run, Resume: statErr == nil, Files: c.cfg.Files, Log: c.cfg.Log, Progress: c.cfg.Progress,
		Engine: c.cfg.Engine,
	})
	if err != nil {
		return bundle.Bundle{}, fmt.Errorf("recipe: training %s: %w", name, err)
	}
	if sum.Best.Name == "" {
		return bundle.Bundle{}, fmt.Errorf("recipe: run %s saved no checkpoint", run)
	}
	if refit {
		c.res.Refits[name] = sum
		c.logf("  %s: %s\n", name, sum.Best.Ref())
		return bundle.Load(sum.Best.BundlePath())
	}
	c.res.Runs[name] = sum
	got, err := runs.ValClasses(runsDir, name)
	if err != nil {
		return bundle.Bundle{}, err
	}
	if !slices.Equal(slices.Sorted(maps.Keys(got)), c.res.ValClasses) {
		return bundle.Bundle{}, fmt.Errorf("recipe: run %s held out other classes than the build (an unreadable image removed a class?)", name)
	}
	c.logf("  %s: best %s, val mAP %.4f (frozen %.4f)\n", name, sum.Best.Ref(), sum.Best.Metrics.ValMAP, sum.Frozen.ValMAP)
	return bundle.Load(sum.Best.BundlePath())
}

// problems describes every image of the tasks once with b and returns one
// problem per task. refs, when set, describes the references of the
// one-image tasks instead: a studio catalogue described otherwise than the
// photos that query it.
func (c *builder) problems(ctx context.Context, b bundle.Bundle, refs *bundle.Bundle) ([]*tune.Problem, error) {
	var all, oneRefs []dataset.Item
	for _, t := range c.res.Tasks {
		all = append(append(all, t.Qs...), t.Rs...)
		if t.Shape == bundle.ShapeOne {
			oneRefs = append(oneRefs, t.Rs...)
		}
	}
	byPath, err := c.describe(ctx, b, all)
	if err != nil {
		return nil, err
	}
	refByPath := byPath
	if refs != nil {
		if refByPath, err = c.describe(ctx, *refs, oneRefs); err != nil {
			return nil, err
		}
	}
	pick := func(items []dataset.Item, byPath map[string][]float32) [][]float32 {
		out := make([][]float32, len(items))
		for i, it := range items {
			out[i] = byPath[it.Path]
		}
		return out
	}
	var out []*tune.Problem
	for _, t := range c.res.Tasks {
		rb := byPath
		if t.Shape == bundle.ShapeOne {
			rb = refByPath
		}
		p, err := tune.NewProblem(t.Qs, t.Rs, pick(t.Qs, byPath), pick(t.Rs, rb))
		if err != nil {
			return nil, fmt.Errorf("recipe: task %s: %w", t.Name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// describe describes the items' images once each with b, by path.
func (c *builder) describe(ctx context.Context, b bundle.Bundle, items []dataset.Item) (map[string][]float32, error) {
	eng, err := bundle.Open(b, c.cfg.Engine)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	var paths []string
	seen := map[string]bool{}
	for _, it := range items {
		if !seen[it.Path] {
			seen[it.Path] = true
			paths = append(paths, it.Path)
		}
	}
	vecs, fails, _, err := eng.DescribeFiles(ctx, paths, c.files("describe validation images ("+b.Name+")"))
	if err != nil {
		return nil, err
	}
	for _, f := range fails {
		c.logf("unreadable, left out: %v\n", f)
	}
	byPath := make(map[string][]float32, len(paths))
	for i, p := range paths {
		byPath[p] = vecs[i]
	}
	return byPath, nil
}

// minGain is how much a re-ranking recipe must beat plain search on
// validation to be chosen: on a small validation set a smaller difference
// is noise, and plain search cannot mix one product's image with another's.
const minGain = 0.005

// tuneRecipes chooses a re-ranking recipe per catalogue shape on the mean
// mAP of that shape's tasks. For one-image catalogues it also chooses the
// centre crop the catalogue images are described with (each of the build's
// crops, the photos keeping their own), kept only when it beats the photos'
// settings by minGain.
func (c *builder) tuneRecipes(ctx context.Context, members []bundle.Bundle, probs [][]*tune.Problem, w []float64) ([]bundle.Recipe, error) {
	var out []bundle.Recipe
	for _, shape := range bundle.Shapes {
		r, ok, err := c.tuneShape(ctx, shape, probs, w)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if shape == bundle.ShapeOne {
			own := r
			for _, crop := range c.cfg.Crops {
				alt := make([][]*tune.Problem, len(probs))
				for _, mb := range members {
					refs := mb.WithCrop(crop)
					ps, err := c.problems(ctx, mb, &refs)
					if err != nil {
						return nil, err
					}
					for ti, p := range ps {
						alt[ti] = append(alt[ti], p)
					}
				}
				cr, _, err := c.tuneShape(ctx, shape, alt, w)
				if err != nil {
					return nil, err
				}
				c.logf("one-image catalogues, catalogue images at centre crop %g (0 = whole): %s, val mAP %.4f R@1 %.3f (photos' settings on both sides: %.4f / %.3f)\n", crop, recipeName(cr.Rerank), cr.Val.MAP, cr.Val.R1, own.Val.MAP, own.Val.R1)
				if cr.Val.MAP >= own.Val.MAP+minGain && cr.Val.MAP > r.Val.MAP {
					cr.RefCrop = &crop
					r = cr
				}
			}
		}
		refs := ""
		if r.RefCrop != nil {
			refs = fmt.Sprintf(", catalogue images at centre crop %g (0 = whole)", *r.RefCrop)
		}
		c.logf("%-4s-image catalogues (%s): %s%s, val mAP %.4f R@1 %.3f (plain search %.4f / %.3f)\n", shape, r.Task, recipeName(r.Rerank), refs, r.Val.MAP, r.Val.R1, r.Plain.MAP, r.Plain.R1)
		out = append(out, r)
	}
	return out, nil
}

// tuneShape chooses the re-ranking of one catalogue shape on the mean mAP of
// its tasks; ok is false when no task has that shape.
func (c *builder) tuneShape(ctx context.Context, shape string, probs [][]*tune.Problem, w []float64) (bundle.Recipe, bool, error) {
	var perTask [][]tune.Trial
	var names []string
	for ti, t := range c.res.Tasks {
		if t.Shape != shape {
			continue
		}
		p := probs[ti][0]
		if len(w) > 1 {
			var err error
			if p, err = tune.Combine(probs[ti], w); err != nil {
				return bundle.Recipe{}, false, err
			}
		}
		trials, err := p.Rerank(ctx, tune.RerankGrid())
		if err != nil {
			return bundle.Recipe{}, false, err
		}
		perTask = append(perTask, trials)
		names = append(names, t.Name)
	}
	if len(perTask) == 0 {
		return bundle.Recipe{}, false, nil
	}
	trials := tune.Mean(perTask...)
	var plain tune.Trial
	for _, t := range trials {
		if t.Params == nil {
			plain = t
		}
	}
	best := trials[0]
	if best.Scores.MAP < plain.Scores.MAP+minGain {
		best = plain
	}
	r := bundle.Recipe{Shape: shape, Rerank: best.Params, Task: strings.Join(names, " + "), Val: valScores(best.Scores), Plain: valScores(plain.Scores)}
	return r, true, nil
}

// write saves the members (best checkpoints, renamed) and the model that
// refers to them; trained is every image the members learned from, for the
// model's data hash.
func (c *builder) write(members []bundle.Bundle, w []float64, recipes []bundle.Recipe, trained *dataset.Set) (bundle.Bundle, error) {
	prov := c.cfg.Provenance
	prov.ValClasses = c.res.ValClasses
	prov.Built = time.Now().UTC()
	prov.Settings = fmt.Sprintf("per backbone, the best mean validation mAP of GAP at centre crops %v and GeM p=3 at the best crop, short side %d", c.cfg.Crops, c.cfg.Scale)
	hash, err := DataHash(trained)
	if err != nil {
		return bundle.Bundle{}, err
	}
	prov.DataSHA256 = hash
	prov.CatalogueTrained = len(trained.Items) > len(c.cfg.Data.Items)
	for i, mb := range members {
		name := c.cfg.Backbones[i]
		mb.Name = filepath.Base(strings.TrimSuffix(name, ".json"))
		mb.Notes = fmt.Sprintf("%s; best checkpoint of run %s, val mAP %.4f", mb.Notes, name, c.res.Runs[name].Best.Metrics.ValMAP)
		if r, ok := c.res.Refits[name]; ok {
			mb.Notes = fmt.Sprintf("%s; refit on every training class for that many epochs (%s)", mb.Notes, r.Best.Ref())
		}
		if c.cfg.Half {
			mb.Tensors = &bundle.TensorFile{Half: true}
		}
		if mb.FineTuned != nil {
			if mb.FineTuned, err = c.placeFineTuned(mb); err != nil {
				return bundle.Bundle{}, err
			}
		}
		path := filepath.Join(c.cfg.Out, "members", mb.Name+".json")
		if err := mb.Save(path); err != nil {
			return bundle.Bundle{}, err
		}
		// Read back, so the model refers to the weights as stored (float16
		// weights give another member ID than the float32 ones trained).
		saved, err := bundle.Load(path)
		if err != nil {
			return bundle.Bundle{}, err
		}
		members[i] = saved
	}
	model := bundle.Bundle{Version: bundle.FormatVersion, Name: "model", Recipes: recipes, Provenance: &prov}
	if len(members) == 1 {
		model = members[0]
		model.Recipes, model.Provenance = recipes, &prov
		if ft := model.FineTuned; ft != nil {
			// model.json names the member's ONNX file beside itself.
			data, err := os.ReadFile(filepath.Join(c.cfg.Out, "members", ft.File))
			if err != nil {
				return bundle.Bundle{}, fmt.Errorf("recipe: %w", err)
			}
			if err := bundle.WriteFileAtomic(filepath.Join(c.cfg.Out, ft.File), data); err != nil {
				return bundle.Bundle{}, err
			}
		}
	} else {
		for i, mb := range members {
			model.Members = append(model.Members, bundle.Member{Bundle: mb, Weight: w[i]})
		}
	}
	model.Notes = "built by the default recipe: settings, heads, ensemble weights and one re-ranking recipe per catalogue shape, all chosen on validation classes held out from " + prov.Data
	if err := model.Save(filepath.Join(c.cfg.Out, "model.json")); err != nil {
		return bundle.Bundle{}, err
	}
	return model, nil
}

// placeFineTuned gives a fine-tuned member its own ONNX file beside it in
// OUT/members (every checkpoint names its file model.onnx), with the tail
// rounded to float16 values under Config.Half so that the half-precision
// tensor file holds it exactly. The file is rebuilt from the base model and
// the tail, and its sha256 recorded; a copy that lacks it (the repository
// keeps the tensors only) rebuilds the same bytes when the model is opened.
func (c *builder) placeFineTuned(mb bundle.Bundle) (*bundle.FineTuned, error) {
	var ft *bundle.FineTuned
	if c.cfg.Half {
		var err error
		if ft, err = mb.FineTuned.RoundHalf(); err != nil {
			return nil, fmt.Errorf("recipe: member %s: %w", mb.Name, err)
		}
	} else {
		ft = mb.FineTuned.Copy()
	}
	ft.File = mb.Name + ".onnx"
	modelDir, err := backbone.FindModelDir(c.cfg.Engine.ModelDir)
	if err != nil {
		return nil, fmt.Errorf("recipe: member %s: %w", mb.Name, err)
	}
	data, sha, err := ft.BuildFrom(mb.Backbone, modelDir)
	if err != nil {
		return nil, fmt.Errorf("recipe: member %s: %w", mb.Name, err)
	}
	ft.SHA256 = sha
	dir := filepath.Join(c.cfg.Out, "members")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	if err := bundle.WriteFileAtomic(filepath.Join(dir, ft.File), data); err != nil {
		return nil, fmt.Errorf("recipe: member %s: %w", mb.Name, err)
	}
	return ft, nil
}

// DataHash identifies training data by content: sha256 over the sorted
// lines "label<TAB>sha256 of the image bytes" of every labelled image, so
// the same photos under other paths or in another order hash the same.
func DataHash(set *dataset.Set) (string, error) {
	lines := make([]string, 0, len(set.Items))
	for _, it := range set.Items {
		if it.Label == "" {
			continue
		}
		data, err := os.ReadFile(it.Path)
		if err != nil {
			return "", fmt.Errorf("recipe: data hash: %w", err)
		}
		sum := sha256.Sum256(data)
		lines = append(lines, it.Label+"\t"+hex.EncodeToString(sum[:]))
	}
	sort.Strings(lines)
	h := sha256.New()
	for _, l := range lines {
		io.WriteString(h, l+"\n")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func valScores(s eval.Scores) *bundle.ValScores {
	return &bundle.ValScores{MAP: s.MAP, R1: s.R1}
}

func settingsName(s describe.Settings) string {
	crop := "whole image"
	if s.Crop > 0 && s.Crop < 1 {
		crop = fmt.Sprintf("centre crop %g", s.Crop)
	}
	pool := s.Pool
	if s.Pool == describe.PoolGeM {
		pool = fmt.Sprintf("gem p=%g", s.P)
	}
	return fmt.Sprintf("%s, %s, %d", pool, crop, s.Scales[0])
}

func perTask(tasks []Task, s []eval.Scores) string {
	parts := make([]string, len(s))
	for i := range s {
		parts[i] = fmt.Sprintf("%s %.3f", tasks[i].Name, s[i].MAP)
	}
	return strings.Join(parts, ", ")
}

func recipeName(p *rerank.Params) string {
	if p == nil {
		return "no re-ranking"
	}
	return tune.Name(p)
}

func bestMAP(trials []tune.Trial) float64 {
	m := 0.0
	for _, t := range trials {
		m = max(m, t.Scores.MAP)
	}
	return m
}
