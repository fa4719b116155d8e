package runs

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"prodsearch/internal/backbone"
	"prodsearch/internal/bundle"
	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
)

// colourRunner is a stand-in backbone: its 8 "channels" are colour moments of
// the input, so photos of one synthetic class (one hue) land together.
type colourRunner struct{}

func (colourRunner) Spec() backbone.Spec {
	return backbone.Spec{Name: "colour", File: "colour.onnx", SHA256: strings.Repeat("0", 64), Input: "in", Output: "out",
		Layout: "NCHW", Color: "RGB", Scale: 1.0 / 255, Std: [3]float32{1, 1, 1}, Channels: 8, MinSize: 8,
		OutputKind: backbone.OutputFeatureMap, DefaultSize: 16}
}

func (colourRunner) Run(ctx context.Context, in []float32, n, h, w int) (backbone.FeatureMap, error) {
	fm := backbone.FeatureMap{N: n, C: 8, H: 1, W: 1, Data: make([]float32, n*8)}
	per := 3 * h * w
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			var s, s2 float32
			for _, v := range in[i*per+c*h*w : i*per+(c+1)*h*w] {
				s += v
				s2 += v * v
			}
			fm.Data[i*8+c] = s / float32(h*w)
			fm.Data[i*8+3+c] = s2 / float32(h*w)
		}
		fm.Data[i*8+6], fm.Data[i*8+7] = 0.1, 0.05
	}
	return fm, nil
}

type fakeEngine struct{ d *describe.Describer }

func (f fakeEngine) Describer() *describe.Describer { return f.d }

// writeClasses makes class folders of noisy solid-colour photos.
func writeClasses(t *testing.T, dir string, classes, per int) *dataset.Set {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for c := 0; c < classes; c++ {
		base := color.RGBA{uint8(40 * (c % 6)), uint8(255 - 30*c%255), uint8(60 * (c / 3)), 255}
		cd := filepath.Join(dir, fmt.Sprintf("class%02d", c))
		if err := os.MkdirAll(cd, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < per; i++ {
			img := image.NewRGBA(image.Rect(0, 0, 20, 24))
			for p := 0; p < 20*24; p++ {
				j := func(v uint8) uint8 { return uint8(min(255, max(0, int(v)+rng.IntN(41)-20))) }
				img.Pix[4*p], img.Pix[4*p+1], img.Pix[4*p+2], img.Pix[4*p+3] = j(base.R), j(base.G), j(base.B), 255
			}
			var buf bytes.Buffer
			if err := png.Encode(&buf, img); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cd, fmt.Sprintf("%d.png", i)), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A class with one image cannot be trained on: it must be skipped, not fatal.
	lone := filepath.Join(dir, "lonely")
	if err := os.MkdirAll(lone, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lone, "0.png"), mustPNG(t), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := dataset.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func mustPNG(t *testing.T) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 16, 16))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestTrainCheckpointsBestResume(t *testing.T) {
	tmp := t.TempDir()
	set := writeClasses(t, filepath.Join(tmp, "data"), 8, 6)
	eng, spec := smallRecipe(t, tmp, 3)
	spec.AugViews, spec.Keep = []describe.View{{Scale: 16, Mirror: true}}, Retention{All: true}
	runsDir := filepath.Join(tmp, "runs")
	var log bytes.Buffer
	opt := TrainOptions{Dir: runsDir, Run: "r1", Log: &log}
	sum, err := Train(context.Background(), eng, set, spec, opt)
	if err != nil {
		t.Fatal(err, log.String())
	}
	if len(sum.Epochs) != 3 || len(sum.Skipped) != 1 || !strings.Contains(sum.Skipped[0], "lonely") {
		t.Fatalf("epochs %d, skipped %v", len(sum.Epochs), sum.Skipped)
	}
	// The classes a run validates on are known before it runs.
	val, err := ValClasses(runsDir, "r1")
	if want := HeldOutClasses(set, spec.ValFrac, spec.Config.Seed); err != nil || len(val) != 2 || !reflect.DeepEqual(val, want) {
		t.Fatalf("run held out %v (%v); HeldOutClasses says %v", val, err, want)
	}
	cps, err := List(runsDir, "r1")
	if err != nil || len(cps) != 3 {
		t.Fatalf("checkpoints %v, %v", cps, err)
	}
	best, err := Resolve(runsDir, "r1/best")
	if err != nil || best.Name != sum.Best.Name {
		t.Fatalf("best %v vs %v (%v)", best, sum.Best, err)
	}
	for _, c := range cps {
		if c.Metrics.ValMAP > best.Metrics.ValMAP {
			t.Fatalf("%s beats best", c.Ref())
		}
	}
	b, err := bundle.Load(best.BundlePath())
	if err != nil || len(b.Heads) == 0 || b.Dim() != 8 {
		t.Fatalf("checkpoint bundle: %v heads=%d", err, len(b.Heads))
	}
	if _, err := os.Stat(filepath.Join(runsDir, "r1", "curves.png")); err != nil {
		t.Fatal("no curves:", err)
	}
	// A second run under the same name is refused; --resume with the same
	// recipe writes nothing new and gives the same figures.
	if _, err := Train(context.Background(), eng, set, spec, opt); err == nil {
		t.Fatal("reusing a run name without --resume was accepted")
	}
	before, _ := os.ReadFile(filepath.Join(cps[0].Dir, "metrics.json"))
	opt.Resume = true
	sum2, err := Train(context.Background(), eng, set, spec, opt)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(cps[0].Dir, "metrics.json"))
	if !bytes.Equal(before, after) || sum2.Epochs[2].ValMAP != sum.Epochs[2].ValMAP {
		t.Fatal("resume rewrote a finished checkpoint or is not deterministic")
	}
	changed := spec
	changed.Config.Epochs = 5
	if _, err := Train(context.Background(), eng, set, changed, opt); err == nil {
		t.Fatal("resume with another recipe accepted")
	}
	if _, err := Resolve(runsDir, "r1/epoch-999"); err == nil {
		t.Fatal("unknown checkpoint resolved")
	}
	if _, err := Resolve(runsDir, "../x/best"); err == nil {
		t.Fatal("path-like run name resolved")
	}
}

func TestTrainRetentionAndEarlyStop(t *testing.T) {
	tmp := t.TempDir()
	set := writeClasses(t, filepath.Join(tmp, "data"), 8, 6)
	eng, spec := smallRecipe(t, tmp, 30)
	spec.Keep, spec.Patience = Retention{Every: 4}, 3
	runsDir := filepath.Join(tmp, "runs")
	var log bytes.Buffer
	sum, err := Train(context.Background(), eng, set, spec, TrainOptions{Dir: runsDir, Run: "r", Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	n := len(sum.Epochs)
	if n >= 30 || !strings.Contains(log.String(), "stopping early") {
		t.Fatalf("ran %d of 30 epochs without improving:\n%s", n, log.String())
	}
	best := 1
	for _, m := range sum.Epochs {
		if m.ValMAP > sum.Epochs[best-1].ValMAP {
			best = m.Epoch
		}
	}
	if n-best != 3 {
		t.Fatalf("stopped at epoch %d, best %d, patience 3", n, best)
	}
	cps, err := List(runsDir, "r")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		e := c.Metrics.Epoch
		if e != best && e != n && e%4 != 0 {
			t.Errorf("kept %s", c.Name)
		}
	}
	want := map[int]bool{best: true, n: true}
	for e := 4; e <= n; e += 4 {
		want[e] = true
	}
	if len(cps) != len(want) {
		t.Fatalf("kept %d checkpoints, want %v", len(cps), want)
	}
	// The kept checkpoint holds one folded matrix, not whitening + head.
	b, err := bundle.Load(sum.Best.BundlePath())
	if err != nil || len(b.Heads) != 1 {
		t.Fatalf("best checkpoint: %v, %d head stages", err, len(b.Heads))
	}
	// Resuming a finished run keeps its checkpoints: pruning once deleted
	// the later ones as the re-run passed its first epochs, and the
	// resumed run then had no last (or best) checkpoint.
	spec.Keep = Retention{}
	first, err := Train(context.Background(), eng, set, spec, TrainOptions{Dir: runsDir, Run: "r2", Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := List(runsDir, "r2")
	again, err := Train(context.Background(), eng, set, spec, TrainOptions{Dir: runsDir, Run: "r2", Log: &log, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := List(runsDir, "r2")
	if again.Best.Name != first.Best.Name || len(after) != len(before) || len(before) != 2 {
		t.Fatalf("resume: best %q (was %q), %d checkpoints (were %d)", again.Best.Name, first.Best.Name, len(after), len(before))
	}
}

// A refit trains on every class (the held-out ones too) for exactly the
// epochs asked, keeps the last epoch only, and differs from the held-out run.
func TestTrainRefitUsesEveryClass(t *testing.T) {
	tmp := t.TempDir()
	set := writeClasses(t, filepath.Join(tmp, "data"), 8, 6)
	eng, spec := smallRecipe(t, tmp, 3)
	spec.Keep, spec.Patience = Retention{All: true}, 1
	runsDir := filepath.Join(tmp, "runs")
	var log bytes.Buffer
	held, err := Train(context.Background(), eng, set, spec, TrainOptions{Dir: runsDir, Run: "held", Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	spec.Refit = true
	sum, err := Train(context.Background(), eng, set, spec, TrainOptions{Dir: runsDir, Run: "all", Log: &log})
	if err != nil {
		t.Fatal(err, log.String())
	}
	if len(sum.Epochs) != 3 || sum.Best.Metrics.Epoch != 3 {
		t.Fatalf("refit ran %d epochs, best %d; want 3 and the last", len(sum.Epochs), sum.Best.Metrics.Epoch)
	}
	if !strings.Contains(log.String(), "refit on 48 images of all 8 classes") {
		t.Fatalf("refit did not train on every class:\n%s", log.String())
	}
	if val, err := ValClasses(runsDir, "all"); err != nil || len(val) != 0 {
		t.Fatalf("refit held out %v (%v)", val, err)
	}
	if cps, err := List(runsDir, "all"); err != nil || len(cps) != 1 {
		t.Fatalf("refit kept %d checkpoints (%v), want the last only", len(cps), err)
	}
	a, err := bundle.Load(held.Best.BundlePath())
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Load(sum.Best.BundlePath())
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() == b.ID() {
		t.Fatal("the refit heads equal the held-out run's")
	}
}

func TestTrainCancelKeepsFinishedCheckpoints(t *testing.T) {
	tmp := t.TempDir()
	set := writeClasses(t, filepath.Join(tmp, "data"), 6, 5)
	eng, spec := smallRecipe(t, tmp, 50)
	spec.ValFrac = 0.3
	ctx, cancel := context.WithCancel(context.Background())
	var log bytes.Buffer
	w := &cancelAfter{w: &log, n: 2, cancel: cancel}
	_, err := Train(ctx, eng, set, spec, TrainOptions{Dir: filepath.Join(tmp, "runs"), Run: "c", Log: w})
	if err == nil {
		t.Fatal("cancelled training returned no error")
	}
	cps, _ := List(filepath.Join(tmp, "runs"), "c")
	if len(cps) < 1 || len(cps) >= 50 {
		t.Fatalf("want the finished checkpoints kept, got %d", len(cps))
	}
}

// cancelAfter cancels after n epoch lines were logged.
type cancelAfter struct {
	w      *bytes.Buffer
	n      int
	cancel func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, []byte("epoch")) {
		c.n--
		if c.n == 0 {
			c.cancel()
		}
	}
	return c.w.Write(p)
}
