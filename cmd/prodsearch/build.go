package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"prodsearch/internal/bundle"
	"prodsearch/internal/imageio"
	"prodsearch/internal/progress"
	"prodsearch/internal/recipe"
)

// defaultMembers are the ensemble the README measures best: the three
// shipped backbones.
const defaultMembers = "coral_mnv1,mnv2_int8,coral_mnv2"

func cmdBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("build", "--data TRAIN [--catalogue CAT] --out DIR [flags]", stderr)
	ef := &engineFlags{fs: fs}
	ef.addRuntimeFlags(fs)
	fs.IntVar(&ef.batch, "batch", 16, "images per backbone call")
	lim := imageio.DefaultLimits()
	ef.maxBytes, ef.maxPixels = lim.MaxBytes, lim.MaxPixels
	data := fs.String("data", "", "labelled training photos: "+setHelp)
	catalogue := fs.String("catalogue", "", "catalogue (studio) images labelled like --data, one or a few per class; those of the validation classes make the photo-to-catalogue tasks: "+setHelp)
	dataRoot := fs.String("data-root", "", dataRootHelp)
	out := fs.String("out", "", "model directory to write (model.json, members/, MODEL.md, runs/)")
	backbones := fs.String("backbones", defaultMembers, "comma-separated members: builtin backbone names or spec files")
	crops := fs.String("crops", "1,0.8,0.6", "centre crops tried per backbone (1 = whole image); GeM is then tried at the best")
	shortSide := fs.Int("short-side", 224, "short side (pixels) the describe settings are tried at")
	half := fs.Bool("half", true, "store the members' weights as float16 (half the size; cosine to float32 about 0.9999)")
	trainCat := fs.Bool("train-on-catalogue", true, "add the training classes' catalogue images (from --catalogue) to the training photos; the held-out runs never see a validation class's (--train-on-catalogue=false trains on the photos only)")
	refit := fs.Bool("refit", true, "after every choice, train each member once more on all training classes (validation ones too) for its chosen epoch count, and ship those (--refit=false ships the held-out runs' heads)")
	tf := addTrainFlags(fs)
	if err := parse(fs, args, "data", "out"); err != nil {
		return err
	}
	cfg, err := tf.config()
	if err != nil {
		return err
	}
	var cropList []float64
	for _, part := range strings.Split(*crops, ",") {
		c, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || c <= 0 || c > 1 {
			return fmt.Errorf("--crops: %q is not a fraction in (0, 1]", part)
		}
		if c == 1 {
			c = 0
		}
		cropList = append(cropList, c)
	}
	set, err := loadSet(*data, *dataRoot)
	if err != nil {
		return err
	}
	if len(set.Labels()) == 0 {
		return errors.New("training data needs labels: a manifest with a label column or class folders")
	}
	rc := recipe.Config{
		Data: set, Train: cfg, ValFrac: tf.valFrac, Aug: tf.aug, Patience: tf.patience, Keep: tf.keep,
		TrainOnCatalogue: *trainCat, Refit: *refit, Crops: cropList, Scale: *shortSide, Half: *half, Out: *out,
		Engine:     ef.engineOptions(),
		Provenance: bundle.Provenance{Command: shellLine(append([]string{"prodsearch"}, os.Args[1:]...)), Data: *data, Catalogue: *catalogue},
		Log:        stdout,
		Progress:   func(stage string) func(int, int) { return progress.New(stderr, stage).Update },
	}
	for _, b := range strings.Split(*backbones, ",") {
		if b = strings.TrimSpace(b); b != "" {
			rc.Backbones = append(rc.Backbones, b)
		}
	}
	if *catalogue != "" {
		if rc.Catalogue, err = loadSet(*catalogue, *dataRoot); err != nil {
			return fmt.Errorf("--catalogue: %w", err)
		}
	}
	if rc.Files, err = ef.fileOptions(); err != nil {
		return err
	}
	res, err := recipe.Build(ctx, rc)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "model %s: %s\n", res.Model, describeBundle(res.Bundle))
	return nil
}

// shellLine joins args into a line a shell reads back as the same
// arguments: an empty one (--aug "") or one with spaces or quotes is
// single-quoted, so the provenance's command can be run again.
func shellLine(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
