package runs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"prodsearch/internal/backbone"
	"prodsearch/internal/bundle"
	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/onnxgraph"
	"prodsearch/internal/train"
)

// FineTunedModelFile is the ONNX model a fine-tuned checkpoint writes
// beside its bundle: the base graph with the trained tail's weights.
const FineTunedModelFile = "model.onnx"

// FineTune trains the backbone's last spec.Config.FineTuneBlocks blocks
// together with the GeM exponent, the whitening and the head. The frozen
// trunk (the model cut where those blocks begin) runs once per image and
// view in ONNX Runtime and its output is cached as float16 under
// opt.TrunkCache (default: the run's folder), so an epoch costs only the
// tail, in Go. Every checkpoint holds a complete bundle whose backbone is
// the fine-tuned ONNX model written beside it, run by ONNX Runtime like any
// other model. Validation classes, checkpoints, curves, retention,
// patience and the refit (spec.Refit) are those of Train.
func FineTune(ctx context.Context, eng Trainer, set *dataset.Set, spec TrainSpec, opt TrainOptions) (*Summary, error) {
	start := time.Now()
	cfg := spec.Config
	k := cfg.FineTuneBlocks
	bspec := spec.Base.Backbone
	if k < 1 || k > len(bspec.Blocks) {
		return nil, fmt.Errorf("fine-tuning: backbone %s has %d trainable block(s) listed in its spec; asked for %d", bspec.Name, len(bspec.Blocks), k)
	}
	p0 := 1.0 // GAP is GeM with p = 1
	switch spec.Base.Describe.Pool {
	case describe.PoolGeM:
		p0 = spec.Base.Describe.P
	case describe.PoolGAP:
	default:
		return nil, fmt.Errorf("fine-tuning learns a GeM exponent: start from pool=gap or gem, not %s", spec.Base.Describe.Pool)
	}
	runDir, existing, err := prepareRunDir(opt, &spec)
	if err != nil {
		return nil, err
	}
	d := eng.Describer()
	if len(d.Views()) != 1 {
		return nil, errors.New("fine-tuning needs a describe recipe with one view (one scale, no flip)")
	}
	modelDir, err := backbone.FindModelDir(opt.Engine.ModelDir)
	if err != nil {
		return nil, err
	}
	path, err := bspec.ModelPath(modelDir)
	if err != nil {
		return nil, err
	}
	model, err := onnxgraph.Load(path)
	if err != nil {
		return nil, err
	}
	cut := bspec.Blocks[k-1]
	trunkModel, _, err := model.Cut(cut, bspec.Output)
	if err != nil {
		return nil, fmt.Errorf("fine-tuning %s from %s: %w", bspec.Name, cut, err)
	}
	tail, err := train.NewTail(model, cut, bspec.Output)
	if err != nil {
		return nil, fmt.Errorf("fine-tuning %s from %s: %w", bspec.Name, cut, err)
	}
	trunkData, err := trunkModel.Marshal()
	if err != nil {
		return nil, err
	}
	trunk, err := backbone.OpenGraph(trunkData, trunkModel.InputNames(), []string{cut}, backbone.Options{Library: opt.Engine.Library, Threads: opt.Engine.Threads})
	if err != nil {
		return nil, err
	}
	defer trunk.Destroy()

	sum := &Summary{}
	items, skipped := UsableItems(set)
	sum.Skipped = skipped
	paths, labels := make([]string, len(items)), make([]string, len(items))
	for i, it := range items {
		paths[i], labels[i] = it.Path, it.Label
	}
	views := append(d.Views(), spec.AugViews...)
	cacheDir := opt.TrunkCache
	if cacheDir == "" {
		cacheDir = filepath.Join(runDir, "trunk")
	}
	var prog func(done, total int)
	if opt.Progress != nil {
		prog = opt.Progress("trunk outputs (once per image and view)")
	}
	t0 := time.Now()
	store, err := openTrunkStore(ctx, d, trunk, bspec.Norm().Layout, bspec.SHA256, cut, tail.InC, cacheDir, paths, views, opt.Files.Limits, prog)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	opt.logf("trunk of %s up to %s: %d images x %d views, %.2f GB of float16 in %s (%s)\n", bspec.Name, cut, len(paths), len(views), float64(store.bytes)/1e9, cacheDir, time.Since(t0).Round(time.Second))

	trIdx, valIdx, err := splitClasses(labels, spec)
	if err != nil {
		return nil, err
	}
	var trY, valY []string
	valClasses := map[string]bool{}
	for _, i := range trIdx {
		trY = append(trY, labels[i])
	}
	for _, i := range valIdx {
		valY = append(valY, labels[i])
		valClasses[labels[i]] = true
	}
	spec.ValClasses = sortedKeys(valClasses)
	if err := writeJSON(filepath.Join(runDir, "run.json"), spec); err != nil {
		return nil, err
	}
	trSrc, valSrc := subSource{store, trIdx}, subSource{store, valIdx}
	valAll := make([]int, len(valIdx))
	for i := range valAll {
		valAll[i] = i
	}
	// valMAP scores the tail and heads on the held-out classes; a refit
	// has none.
	valMAP := func(p float64, heads describe.Heads) (float64, float64, error) {
		if spec.Refit {
			return 0, 0, nil
		}
		x, err := train.DescribeTrunk(ctx, tail, valSrc, valAll, 0, p)
		if err != nil {
			return 0, 0, err
		}
		return train.ValMAP(heads.ApplyBatch(x), valY)
	}
	if spec.Refit {
		opt.logf("refit: fine-tuning %d block(s) of %s (%d tensors from %s) on %d images of all %d classes for %d epoch(s), nothing held out, %d view(s) per image\n",
			k, bspec.Name, len(tail.Params()), cut, len(trIdx), countClasses(trY), cfg.Epochs, len(views))
	} else {
		opt.logf("fine-tuning %d block(s) of %s (%d tensors from %s) on %d images of %d classes, validating on %d images of %d held-out classes, %d view(s) per image\n",
			k, bspec.Name, len(tail.Params()), cut, len(trIdx), countClasses(trY), len(valIdx), len(valClasses), len(views))
		if sum.Frozen.ValMAP, sum.Frozen.ValR1, err = valMAP(p0, nil); err != nil {
			return nil, err
		}
		opt.logf("frozen descriptor: val mAP %.4f, R@1 %.3f\n", sum.Frozen.ValMAP, sum.Frozen.ValR1)
	}

	book := &epochBook{spec: &spec, runDir: runDir, existing: existing, sum: sum, logf: opt.logf, bestEpoch: -1, bestMAP: -1}
	onEpoch := func(e train.FineTuneEpoch) error {
		m := Metrics{Epoch: e.N, Loss: e.Loss, Elapsed: e.Elapsed, Time: time.Now().UTC()}
		if m.ValMAP, m.ValR1, err = valMAP(e.GeMP, e.Heads); err != nil {
			return err
		}
		return book.record(m, fmt.Sprintf("  p %.3f", e.GeMP), func(dir string) error {
			b, err := fineTunedBundle(spec.Base, model, tail, e, dir)
			if err != nil {
				return err
			}
			b.Name = opt.Run
			b.Notes = fmt.Sprintf("run %s epoch %d: last %d block(s) of %s fine-tuned, GeM p=%.3f, %s head on %s whitening", opt.Run, e.N, k, bspec.Name, e.GeMP, cfg.Loss, cfg.Whiten)
			return saveCheckpoint(dir, b, m)
		})
	}
	_, _, err = train.FineTune(ctx, cfg, tail, p0, trSrc, trY, onEpoch)
	return finish(sum, opt, start, err)
}

// fineTunedBundle is the checkpoint of one epoch: the base recipe with GeM
// at the learned exponent, the folded heads, and the tail's tensors, whose
// ONNX model it writes into dir first.
func fineTunedBundle(base bundle.Bundle, model *onnxgraph.Model, tail *train.Tail, e train.FineTuneEpoch, dir string) (bundle.Bundle, error) {
	b := base
	b.Heads = e.Heads.Fold()
	b.Describe.Pool, b.Describe.P = describe.PoolGeM, e.GeMP
	ft := &bundle.FineTuned{BaseSHA256: base.Backbone.SHA256, File: FineTunedModelFile}
	for _, p := range tail.Params() {
		ft.Tensors = append(ft.Tensors, bundle.TailTensor{Name: p.Name, Dims: append([]int64(nil), p.Dims...), Data: append([]float32(nil), p.W...)})
	}
	data, sha, err := ft.Build(model)
	if err != nil {
		return b, err
	}
	ft.SHA256 = sha
	b.FineTuned = ft
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return b, err
	}
	return b, bundle.WriteFileAtomic(filepath.Join(dir, FineTunedModelFile), data)
}
