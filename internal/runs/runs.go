// Package runs keeps training runs on disk the way NSML did: one folder per
// run, one checkpoint folder per kept epoch holding a complete model bundle
// and the epoch's figures, so any checkpoint can be listed, scored or served
// later.
//
//	runs/NAME/run.json                     what was trained on, and how
//	runs/NAME/epoch-007/bundle.json        the recipe (small JSON)
//	runs/NAME/epoch-007/bundle.safetensors its weights, whitening and head folded into one matrix
//	runs/NAME/epoch-007/metrics.json       loss, validation mAP and R@1
//	runs/NAME/curves.png                   loss and validation mAP per epoch
//
// A run keeps its best and last checkpoints (and every N-th on request) and
// stops once validation mAP has not improved for a few epochs.
// "NAME/best" names the checkpoint with the highest validation mAP.
package runs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// EnvDir overrides the default runs directory.
const EnvDir = "PRODSEARCH_RUNS"

// Dir returns explicit, else $PRODSEARCH_RUNS, else ./runs.
func Dir(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	return "runs"
}

// Metrics are one checkpoint's figures, measured on validation classes held
// out from the training data.
type Metrics struct {
	Epoch   int           `json:"epoch"`
	Loss    float64       `json:"loss"`
	ValMAP  float64       `json:"val_map"`
	ValR1   float64       `json:"val_recall@1"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Time    time.Time     `json:"time"`
}

// Checkpoint is one saved epoch.
type Checkpoint struct {
	Run, Name string
	Dir       string
	Metrics   Metrics
}

// Ref is the RUN/CHECKPOINT spelling of a checkpoint.
func (c Checkpoint) Ref() string { return c.Run + "/" + c.Name }

// BundlePath is the checkpoint's bundle file.
func (c Checkpoint) BundlePath() string { return filepath.Join(c.Dir, "bundle.json") }

// CheckpointName is the folder name of an epoch's checkpoint.
func CheckpointName(epoch int) string { return fmt.Sprintf("epoch-%03d", epoch) }

// List returns the checkpoints of one run, in epoch order. Folders without a
// complete checkpoint (a crash mid-write) are skipped.
func List(dir, run string) ([]Checkpoint, error) {
	if err := CheckName(run); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(dir, run))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("run %q not found in %s", run, dir)
		}
		return nil, err
	}
	var out []Checkpoint
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "epoch-") {
			continue
		}
		c := Checkpoint{Run: run, Name: e.Name(), Dir: filepath.Join(dir, run, e.Name())}
		data, err := os.ReadFile(filepath.Join(c.Dir, "metrics.json"))
		if err != nil {
			continue
		}
		if err := json.Unmarshal(data, &c.Metrics); err != nil {
			return nil, fmt.Errorf("%s: metrics.json: %w", c.Ref(), err)
		}
		if _, err := os.Stat(c.BundlePath()); err != nil {
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metrics.Epoch < out[j].Metrics.Epoch })
	return out, nil
}

// Best returns the checkpoint with the highest validation mAP (ties: the
// earlier epoch, which trained less).
func Best(cps []Checkpoint) (Checkpoint, bool) {
	if len(cps) == 0 {
		return Checkpoint{}, false
	}
	best := cps[0]
	for _, c := range cps[1:] {
		if c.Metrics.ValMAP > best.Metrics.ValMAP {
			best = c
		}
	}
	return best, true
}

// Runs lists the run names in dir.
func Runs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Resolve turns "RUN/CHECKPOINT" or "RUN/best" into a checkpoint.
func Resolve(dir, ref string) (Checkpoint, error) {
	run, name, ok := strings.Cut(ref, "/")
	if !ok || strings.Contains(name, "/") {
		return Checkpoint{}, fmt.Errorf("checkpoint %q: want RUN/CHECKPOINT or RUN/best", ref)
	}
	cps, err := List(dir, run)
	if err != nil {
		return Checkpoint{}, err
	}
	if name == "best" {
		if b, ok := Best(cps); ok {
			return b, nil
		}
		return Checkpoint{}, fmt.Errorf("run %q has no checkpoint yet", run)
	}
	for _, c := range cps {
		if c.Name == name {
			return c, nil
		}
	}
	names := make([]string, len(cps))
	for i, c := range cps {
		names[i] = c.Name
	}
	return Checkpoint{}, fmt.Errorf("checkpoint %q not found (run %s has: %s)", ref, run, strings.Join(names, ", "))
}

// CheckName refuses run names that would escape the runs directory.
func CheckName(run string) error {
	if run == "" || run == "." || run == ".." || strings.ContainsAny(run, `/\`) || strings.HasPrefix(run, ".") {
		return fmt.Errorf("run name %q: use letters, digits, '-' or '_'", run)
	}
	return nil
}

// ValClasses returns the classes a run held out for validation, the ones
// its heads never saw, so tuning and benchmarks can use the same classes.
func ValClasses(dir, run string) (map[string]bool, error) {
	if err := CheckName(run); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, run, "run.json"))
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", run, err)
	}
	var spec TrainSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("run %s: run.json: %w", run, err)
	}
	out := map[string]bool{}
	for _, c := range spec.ValClasses {
		out[c] = true
	}
	return out, nil
}
