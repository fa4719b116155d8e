package runs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"prodsearch/internal/bundle"
	"prodsearch/internal/describe"
	"prodsearch/internal/train"
)

// checkingLog fails the test when an "epoch N" line is written before the
// checkpoint of epoch N is listed: a process killed right after printing a
// line must not lose what the line reported.
type checkingLog struct {
	t        *testing.T
	dir, run string
	lines    int
}

func (c *checkingLog) Write(p []byte) (int, error) {
	var n int
	if _, err := fmt.Sscanf(string(p), "epoch %d", &n); err == nil {
		c.lines++
		cps, err := List(c.dir, c.run)
		if err != nil || len(cps) == 0 || cps[len(cps)-1].Metrics.Epoch != n {
			c.t.Errorf("epoch %d logged before its checkpoint was listed: %v %v", n, cps, err)
		}
	}
	return len(p), nil
}

// smallRecipe is the training recipe of the package's tests: the colour
// stand-in backbone, a tiny head and epochs epochs.
func smallRecipe(t *testing.T, tmp string, epochs int) (fakeEngine, TrainSpec) {
	t.Helper()
	d, err := describe.New(colourRunner{}, describe.Settings{Scales: []int{16}, Pool: describe.PoolGAP})
	if err != nil {
		t.Fatal(err)
	}
	cfg := train.DefaultConfig()
	cfg.Dim, cfg.WhitenDim, cfg.Epochs, cfg.BatchP = 8, 8, epochs, 4
	base := bundle.Bundle{Version: bundle.FormatVersion, Name: "colour", Backbone: colourRunner{}.Spec(), Describe: d.Settings()}
	return fakeEngine{d}, TrainSpec{Data: "data", Base: base, Config: cfg, ValFrac: 0.25}
}

func TestEpochLoggedOnlyOnceSaved(t *testing.T) {
	tmp := t.TempDir()
	set := writeClasses(t, filepath.Join(tmp, "data"), 6, 5)
	eng, spec := smallRecipe(t, tmp, 4)
	dir := filepath.Join(tmp, "runs")
	log := &checkingLog{t: t, dir: dir, run: "r"}
	if _, err := Train(context.Background(), eng, set, spec, TrainOptions{Dir: dir, Run: "r", Log: log}); err != nil {
		t.Fatal(err)
	}
	if log.lines != 4 {
		t.Fatalf("%d epoch lines, want 4", log.lines)
	}
}

// TestResumeAfterKillBeforeRecipe is what a kill -9 while describing the
// training images leaves: a run folder without run.json, and temporary
// files of interrupted atomic writes. --resume starts the run and sweeps the
// temporary files; --resume of a run that was never started is still refused.
func TestResumeAfterKillBeforeRecipe(t *testing.T) {
	tmp := t.TempDir()
	set := writeClasses(t, filepath.Join(tmp, "data"), 6, 5)
	eng, spec := smallRecipe(t, tmp, 2)
	dir := filepath.Join(tmp, "runs")
	var log bytes.Buffer
	if _, err := Train(context.Background(), eng, set, spec, TrainOptions{Dir: dir, Run: "never", Resume: true, Log: &log}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("--resume of a run never started: %v", err)
	}
	run := filepath.Join(dir, "r")
	half := filepath.Join(run, CheckpointName(1))
	if err := os.MkdirAll(half, 0o755); err != nil {
		t.Fatal(err)
	}
	litter := []string{filepath.Join(run, bundle.TempPrefix+"1"), filepath.Join(half, bundle.TempPrefix+"2"), filepath.Join(run, ".tmp-curves.png-3")}
	for _, p := range litter {
		if err := os.WriteFile(p, []byte("{half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Train(context.Background(), eng, set, spec, TrainOptions{Dir: dir, Run: "r", Resume: true, Log: &log}); err != nil {
		t.Fatal(err, log.String())
	}
	for _, p := range litter {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	if cps, err := List(dir, "r"); err != nil || len(cps) != 2 {
		t.Fatalf("checkpoints after resume: %v %v", cps, err)
	}
}
