package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"prodsearch/internal/bundle"
	"prodsearch/internal/cache"
	"prodsearch/internal/describe"
	"prodsearch/internal/imageio"
	"prodsearch/internal/runs"
)

// engineFlags choose and open a bundle: either --bundle, or a builtin
// backbone with describe settings given as flags.
type engineFlags struct {
	fs        *flag.FlagSet
	bundle    string
	backbone  string
	models    string
	ortLib    string
	threads   int
	scales    string
	flip      bool
	pool      string
	p         float64
	crop      float64
	batch     int
	cachePath string
	strict    bool
	maxBytes  int64
	maxPixels int64
	runsDir   string
	// shipped lets resolveBundle use the shipped model when no model flag
	// is given; commands that fit their own heads (train, tune) leave it off.
	shipped bool
}

// defaultBackbone is the measured default (README: best mAP of the builtin
// backbones on held-out training classes).
const defaultBackbone = "coral_mnv1"

func addEngineFlags(fs *flag.FlagSet) *engineFlags {
	def := describe.DefaultSettings()
	lim := imageio.DefaultLimits()
	f := &engineFlags{fs: fs}
	fs.StringVar(&f.bundle, "bundle", "", "model bundle: a bundle .json file or RUN/CHECKPOINT (RUN/best) from the runs dir; default: the shipped model ($PRODSEARCH_MODEL, else models/default/model.json) where the command uses one, else --backbone with the describe flags")
	fs.StringVar(&f.backbone, "backbone", defaultBackbone, "builtin backbone name or a path to a spec .json (see `prodsearch backbones`)")
	f.addRuntimeFlags(fs)
	fs.StringVar(&f.scales, "scales", joinInts(def.Scales), "comma-separated short sides for multi-scale describe")
	fs.BoolVar(&f.flip, "flip", def.Flip, "also describe horizontally flipped images (TTA)")
	fs.StringVar(&f.pool, "pool", def.Pool, "pooling: gem, gap or max")
	fs.Float64Var(&f.p, "p", describe.DefaultGeMP, "GeM exponent (with --pool gem)")
	fs.Float64Var(&f.crop, "crop", def.Crop, "keep the central fraction of each side before resizing (1 = whole image)")
	fs.IntVar(&f.batch, "batch", 16, "images per backbone call")
	fs.BoolVar(&f.strict, "strict", false, "stop at the first unreadable image instead of reporting them at the end")
	fs.Int64Var(&f.maxBytes, "max-bytes", lim.MaxBytes, "largest image file accepted, in bytes")
	fs.Int64Var(&f.maxPixels, "max-pixels", lim.MaxPixels, "largest image accepted, in pixels (checked from the header before decoding)")
	return f
}

// addRuntimeFlags registers the flags that say where models, the runtime,
// the cache and runs are, and how many threads run a model: everything a
// command that describes images needs besides the bundle itself. `index add`
// takes these alone, since its store fixes the bundle.
func (f *engineFlags) addRuntimeFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.models, "models", "", "model directory (default $PRODSEARCH_MODELS, else ../shared/models beside the clone)")
	fs.StringVar(&f.ortLib, "ort-lib", "", "path to libonnxruntime.so.1 (default $PRODSEARCH_ORT_LIB, else lib/ from 'make setup')")
	fs.IntVar(&f.threads, "threads", 0, "ONNX Runtime intra-op threads (0 = all cores)")
	fs.StringVar(&f.cachePath, "cache", cache.DefaultDir(), "descriptor cache directory, or \"off\"")
	fs.StringVar(&f.runsDir, "runs-dir", "", "runs directory for RUN/CHECKPOINT bundles (default $PRODSEARCH_RUNS, else ./runs)")
}

// resolveBundle builds the bundle the flags describe.
func (f *engineFlags) resolveBundle() (bundle.Bundle, error) {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if f.bundle != "" {
		for _, n := range []string{"backbone", "scales", "flip", "pool", "p", "crop"} {
			if set[n] {
				return bundle.Bundle{}, fmt.Errorf("--%s cannot be combined with --bundle: the bundle fixes how images are described", n)
			}
		}
		return resolveBundleRef(f.bundle, f.runsDir)
	}
	if f.shipped {
		frozen := false
		for _, n := range []string{"backbone", "scales", "flip", "pool", "p", "crop"} {
			frozen = frozen || set[n]
		}
		if p := bundle.FindShipped(); p != "" && !frozen {
			return bundle.Load(p)
		}
	}
	b, err := bundle.Default(f.backbone)
	if err != nil {
		return bundle.Bundle{}, err
	}
	scales, err := parseInts(f.scales)
	if err != nil {
		return bundle.Bundle{}, fmt.Errorf("--scales: %w", err)
	}
	b.Describe = describe.Settings{Scales: scales, Flip: f.flip, Pool: f.pool, P: f.p, Crop: f.crop}
	if f.crop >= 1 {
		b.Describe.Crop = 0
	}
	if f.pool != describe.PoolGeM {
		b.Describe.P = 0
	}
	return b, b.Validate()
}

func (f *engineFlags) engineOptions() bundle.Options {
	return bundle.Options{ModelDir: f.models, Library: f.ortLib, Threads: f.threads}
}

// fileOptions returns the batch-describe options of the flags, with the
// descriptor cache opened unless it is switched off.
func (f *engineFlags) fileOptions() (describe.FileOptions, error) {
	opt := describe.FileOptions{
		Limits: imageio.Limits{MaxBytes: f.maxBytes, MaxPixels: f.maxPixels},
		Batch:  f.batch,
	}
	if f.cachePath == "" || f.cachePath == "off" {
		return opt, nil
	}
	c, err := cache.Open(f.cachePath)
	if err != nil {
		return opt, err
	}
	opt.Cache = c // set only when open: a nil *Cache would make a non-nil Store
	return opt, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", part)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return out, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// newFlagSet returns a flag set whose errors come back instead of exiting.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: prodsearch %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a command's flags; it takes no positional arguments, and
// refuses, with the usage, an empty value of any flag named in required.
func parse(fs *flag.FlagSet, args []string, required ...string) error {
	if err := parseAny(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	var missing []string
	for _, name := range required {
		if f := fs.Lookup(name); f == nil || f.Value.String() == "" {
			missing = append(missing, "--"+name)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		fs.Usage()
		return fmt.Errorf("%s is required", missing[0])
	}
	fs.Usage()
	return fmt.Errorf("%s and %s are required", strings.Join(missing[:len(missing)-1], ", "), missing[len(missing)-1])
}

// parseAny wraps FlagSet.Parse so -h returns cleanly and errors are not
// printed twice; positional arguments are left in fs.Args().
func parseAny(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return errHelp
		}
		return errUsage
	}
	return nil
}

// noArgs refuses positional arguments, which would otherwise be ignored
// (a flag typed after one is not parsed).
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// resolveBundleRef loads a bundle from a .json file or a RUN/CHECKPOINT
// reference in the runs directory.
func resolveBundleRef(ref, runsDir string) (bundle.Bundle, error) {
	if st, err := os.Stat(ref); err == nil && !st.IsDir() {
		return bundle.Load(ref)
	}
	cp, err := runs.Resolve(runs.Dir(runsDir), ref)
	if err != nil {
		return bundle.Bundle{}, fmt.Errorf("--bundle %s: not a bundle file, and %w", ref, err)
	}
	return bundle.Load(cp.BundlePath())
}
