package main

// Fault tests of the real commands: kill -9 during `index add` and `train`,
// and a clear error at start when ONNX Runtime or a model file is missing or
// corrupted. The commands run as child processes of a prodsearch binary
// built once per test run.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"prodsearch/internal/backbone"
	"prodsearch/internal/bundle"
	"prodsearch/internal/store"
	"prodsearch/internal/testenv"
)

// built is the prodsearch binary the fault tests run, built on first use.
var built struct {
	once      sync.Once
	dir, path string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// binary returns the prodsearch binary, built once (testenv.GoBuild: without
// the race detector, which would slow the children fivefold).
func binary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "prodsearch-faults-"); built.err == nil {
			built.path, built.err = testenv.GoBuild(built.dir, "prodsearch/cmd/prodsearch")
		}
	})
	testenv.RequireBuilt(t, built.err)
	return built.path
}

// child is one prodsearch process whose stdout and stderr lines arrive on
// lines, in order per stream.
type child struct {
	cmd    *exec.Cmd
	lines  chan line
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	start  time.Time
}

type line struct {
	stderr bool
	text   string
}

// startCLI starts `prodsearch args...` with extra environment variables. The
// process is killed when the test ends, so a failed test leaves nothing
// running.
func startCLI(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan line, 1024), done: make(chan struct{}), start: time.Now()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	pump := func(r io.Reader, buf *bytes.Buffer, isErr bool, finished chan<- struct{}) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<16), 1<<22)
		for sc.Scan() {
			buf.WriteString(sc.Text() + "\n")
			c.lines <- line{stderr: isErr, text: sc.Text()}
		}
		finished <- struct{}{}
	}
	finished := make(chan struct{}, 2)
	go pump(outPipe, &c.stdout, false, finished)
	go pump(errPipe, &c.stderr, true, finished)
	go func() {
		<-finished
		<-finished
		close(c.lines)
		close(c.done)
	}()
	return c
}

// wait drains the output and returns the exit error and how long it ran.
func (c *child) wait() (error, time.Duration) {
	for range c.lines {
	}
	<-c.done
	err := c.cmd.Wait()
	return err, time.Since(c.start)
}

// kill sends SIGKILL.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

func killedBySIGKILL(err error) bool {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// writeClassImages writes classes×per small photos in class folders, half
// PNG and half JPEG, each class a hue and gradient direction with noise,
// and returns the path of each file by its ID (file name without extension).
func writeClassImages(t *testing.T, root string, classes, per int) map[string]string {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, uint64(classes*per)))
	paths := map[string]string{}
	for c := range classes {
		dir := filepath.Join(root, fmt.Sprintf("class%02d", c))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		base := [3]float64{float64((c * 97) % 256), float64((c*53 + 90) % 256), float64((c*151 + 30) % 256)}
		for i := range per {
			img := image.NewRGBA(image.Rect(0, 0, 96, 80))
			for y := range 80 {
				for x := range 96 {
					g := float64(x)
					if c%2 == 1 {
						g = float64(y)
					}
					var px [3]uint8
					for k := range 3 {
						v := base[k] + g*float64(k+1)*0.6 + float64(rng.IntN(31)-15)
						px[k] = uint8(min(255, max(0, v)))
					}
					img.Set(x, y, color.RGBA{px[0], px[1], px[2], 255})
				}
			}
			var buf bytes.Buffer
			id := fmt.Sprintf("c%02d-%02d", c, i)
			name := id + ".png"
			if i%2 == 1 {
				name = id + ".jpg"
				if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
					t.Fatal(err)
				}
			} else if err := png.Encode(&buf, img); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			paths[id] = p
		}
	}
	return paths
}

// faultSetup skips in -short mode; otherwise it gives a fault test the
// real backbone's environment for its child processes and a temporary
// folder whose "data" holds classes x per generated images (sources).
func faultSetup(t *testing.T, classes, per int) (env []string, tmp, data string, sources map[string]string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the real backbone in child processes")
	}
	env, tmp = modelEnv(t), t.TempDir()
	data = filepath.Join(tmp, "data")
	return env, tmp, data, writeClassImages(t, data, classes, per)
}

// modelEnv points child processes at the verified runtime and models.
func modelEnv(t *testing.T) []string {
	models, lib := testenv.Models(t)
	return []string{backbone.EnvModels + "=" + models, backbone.EnvLibrary + "=" + lib}
}

var commitLine = regexp.MustCompile(`^committed (\d+) items \((\d+) in all\):(.*)$`)

// parseCommit returns the IDs of an `index add` commit receipt.
func parseCommit(t *testing.T, text string) ([]string, bool) {
	m := commitLine.FindStringSubmatch(text)
	if m == nil {
		return nil, false
	}
	var ids []string
	rest := strings.TrimSpace(m[3])
	for rest != "" {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			t.Fatalf("malformed receipt %q: %v", text, err)
		}
		id, _ := strconv.Unquote(q)
		ids = append(ids, id)
		rest = strings.TrimSpace(rest[len(q):])
	}
	if n, _ := strconv.Atoi(m[1]); n != len(ids) {
		t.Fatalf("receipt %q names %d IDs", text, len(ids))
	}
	return ids, true
}

// checkStore verifies what a store holds after a crash or a failed write:
// it opens cleanly, its consistency check passes, every acknowledged ID is
// there, and every item present is whole (its image is the source file and
// its label the class folder). It returns the number of items.
func checkStore(t *testing.T, dir string, sources map[string]string, acked map[string]bool) int {
	t.Helper()
	out, stderr, err := runCLI(t, "index", "stats", "--store", dir, "--check", "--json")
	if err != nil {
		t.Fatalf("index stats --check after the fault: %v\n%s%s", err, out, stderr)
	}
	var stats struct {
		Items int    `json:"items"`
		Check string `json:"check"`
	}
	if err := json.Unmarshal([]byte(out), &stats); err != nil || stats.Check != "ok" {
		t.Fatalf("index stats: %v %s", err, out)
	}
	s, err := store.Open(context.Background(), dir, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items, total, err := s.List(context.Background(), store.ListOptions{Limit: s.Len() + 1})
	if err != nil || total != stats.Items || len(items) != total {
		t.Fatalf("list: %d of %d (stats %d): %v", len(items), total, stats.Items, err)
	}
	present := map[string]bool{}
	for _, it := range items {
		present[it.ID] = true
		src, ok := sources[it.ID]
		if !ok {
			t.Fatalf("unknown item %q in the store", it.ID)
		}
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := s.Image(it.ID)
		if err != nil || !bytes.Equal(img, want) || it.Label != filepath.Base(filepath.Dir(src)) {
			t.Fatalf("item %s is damaged: label %q, %d image bytes of %d, %v", it.ID, it.Label, len(img), len(want), err)
		}
		if v, err := s.Vector(it.ID); err != nil || len(v) != s.Dim() {
			t.Fatalf("vector of %s: %v", it.ID, err)
		}
	}
	for id := range acked {
		if !present[id] {
			t.Fatalf("acknowledged item %s lost", id)
		}
	}
	return len(items)
}

// TestKill9DuringIndexAdd kills `prodsearch index add` with SIGKILL at a
// random moment after a random number of committed batches, three times,
// then lets a fourth run finish: nothing acknowledged may be lost, nothing
// half-written may appear, and each re-run must skip exactly what is stored.
func TestKill9DuringIndexAdd(t *testing.T) {
	env, tmp, data, sources := faultSetup(t, 6, 10)
	dir := filepath.Join(tmp, "store")
	args := []string{"index", "add", "--store", dir, "--batch", "4", "--workers", "2", data}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	acked := map[string]bool{}
	stored := 0
	for round := range 4 {
		final := round == 3
		killAfter := 1 + rng.IntN(3)
		delay := time.Duration(rng.IntN(60)) * time.Millisecond
		c := startCLI(t, env, args...)
		commits, killed, skippedLine := 0, false, ""
		for l := range c.lines {
			if strings.Contains(l.text, "already in the store") {
				skippedLine = l.text
			}
			ids, ok := parseCommit(t, l.text)
			if !ok {
				continue
			}
			for _, id := range ids {
				if acked[id] {
					t.Fatalf("round %d: %s committed twice", round, id)
				}
				acked[id] = true
			}
			if commits++; commits == killAfter && !final {
				// The delay moves the kill around inside the next batch:
				// decoding, describing, or the commit and its fsyncs.
				time.Sleep(delay)
				c.kill(t)
				killed = true
			}
		}
		err, took := c.wait()
		switch {
		case final && err != nil:
			t.Fatalf("final run: %v\n%s", err, c.stderr.String())
		case !final && !(killed && killedBySIGKILL(err)):
			t.Fatalf("round %d: want a SIGKILL, got %v\n%s", round, err, c.stderr.String())
		}
		if round > 0 {
			want := fmt.Sprintf("%d of %d images already in the store, skipped", stored, len(sources))
			if stored > 0 && !strings.HasPrefix(skippedLine, want) || stored == 0 && skippedLine != "" {
				t.Fatalf("round %d: re-run said %q, want %q", round, skippedLine, want)
			}
		}
		stored = checkStore(t, dir, sources, acked)
		if extra := stored - len(acked); extra < 0 || extra > 4 {
			t.Fatalf("round %d: %d stored, %d acknowledged: at most the batch in flight may be unacknowledged", round, stored, len(acked))
		}
		t.Logf("round %d: %s after %d receipt(s) + %v in %v; %d acknowledged, %d stored", round,
			map[bool]string{true: "killed", false: "finished"}[killed], commits, delay, took.Round(time.Millisecond), len(acked), stored)
	}
	if stored != len(sources) {
		t.Fatalf("after the final run the store holds %d of %d", stored, len(sources))
	}
	// Once everything is in, a re-run adds nothing.
	c := startCLI(t, env, args...)
	if err, _ := c.wait(); err != nil || !strings.Contains(c.stderr.String(), fmt.Sprintf("%d of %d images already in the store", len(sources), len(sources))) || !strings.Contains(c.stdout.String(), "added 0,") {
		t.Fatalf("idempotent re-run: %v\n%s%s", err, c.stdout.String(), c.stderr.String())
	}
}

var epochLine = regexp.MustCompile(`^epoch +(\d+) `)

// trainArgs is a small, fast recipe: tens of images, a 32-d head without
// whitening (a 1024-d eigendecomposition would dominate the run), no
// augmented views, many short epochs so kills land between and inside
// checkpoint writes.
func trainArgs(data, runsDir, cacheDir string, epochs int, resume bool) []string {
	a := []string{"train", "--data", data, "--run", "r", "--runs-dir", runsDir, "--cache", cacheDir,
		"--aug", "", "--epochs", strconv.Itoa(epochs), "--dim", "32", "--whiten", "none",
		"--batch-p", "4", "--batch-k", "2", "--val-frac", "0.34", "--keep-all", "--patience", "0"}
	if resume {
		a = append(a, "--resume")
	}
	return a
}

// checkRun verifies a run folder after a fault: `models` lists it cleanly,
// every acknowledged epoch is listed, at most one more (saved but not yet
// printed) is, each listed checkpoint loads, and every visible file is
// whole. It returns the listed epochs and the temporary files left behind
// (hidden, never read, swept by --resume).
func checkRun(t *testing.T, runsDir string, acked map[int]bool) (listed []int, temps int) {
	t.Helper()
	out, stderr, err := runCLI(t, "models", "--runs-dir", runsDir)
	if err != nil {
		t.Fatalf("models after the fault: %v\n%s%s", err, out, stderr)
	}
	for _, l := range strings.Split(out, "\n") {
		name, _, _ := strings.Cut(l, " ")
		if n, ok := strings.CutPrefix(name, "r/epoch-"); ok {
			e, err := strconv.Atoi(n)
			if err != nil {
				t.Fatalf("models line %q", l)
			}
			listed = append(listed, e)
			b, err := bundle.Load(filepath.Join(runsDir, "r", "epoch-"+n, "bundle.json"))
			if err != nil || len(b.Heads) == 0 || b.Dim() != 32 {
				t.Fatalf("checkpoint r/epoch-%s does not load: %v", n, err)
			}
		}
	}
	for e := range acked {
		if !slices.Contains(listed, e) {
			t.Fatalf("acknowledged epoch %d not listed:\n%s", e, out)
		}
	}
	if len(listed) > len(acked)+1 {
		t.Fatalf("%d checkpoints listed, %d acknowledged", len(listed), len(acked))
	}
	err = filepath.WalkDir(filepath.Join(runsDir, "r"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			temps++
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch filepath.Ext(p) {
		case ".json":
			if !json.Valid(data) {
				t.Errorf("%s is torn (%d bytes)", p, len(data))
			}
		case ".png":
			if _, err := png.Decode(bytes.NewReader(data)); err != nil {
				t.Errorf("%s is torn: %v", p, err)
			}
		case ".safetensors":
			// Written before its recipe: without bundle.json beside it, it is
			// an epoch the kill interrupted, which nothing reads.
			js := strings.TrimSuffix(p, ".safetensors") + ".json"
			if _, err := os.Stat(js); err == nil {
				if _, err := bundle.Load(js); err != nil {
					t.Errorf("%s does not load: %v", js, err)
				}
			}
		default:
			t.Errorf("unexpected file %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return listed, temps
}

// TestKill9DuringTrain kills `prodsearch train` with SIGKILL once at a
// random moment early on (loading, describing) and twice at a random moment
// after a random number of saved epochs (often inside a checkpoint write),
// resuming each time; a final --resume must finish the run.
func TestKill9DuringTrain(t *testing.T) {
	env, tmp, data, _ := faultSetup(t, 6, 6)
	runsDir, cacheDir := filepath.Join(tmp, "runs"), filepath.Join(tmp, "cache")
	const epochs = 24
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	acked := map[int]bool{}
	for round := range 4 {
		final := round == 3
		// A kill before the run folder was made (loading the model) leaves
		// nothing to resume: --resume would rightly say so.
		_, err := os.Stat(filepath.Join(runsDir, "r"))
		resume := err == nil
		c := startCLI(t, env, trainArgs(data, runsDir, cacheDir, epochs, resume)...)
		seen := 0
		var timer *time.Timer
		if round == 0 {
			// Loading the model or describing the images; at the latest
			// when training starts.
			timer = time.AfterFunc(time.Duration(100+rng.IntN(1200))*time.Millisecond, func() { c.cmd.Process.Signal(syscall.SIGKILL) })
		}
		killAfter := 1 + rng.IntN(4)
		delay := time.Duration(rng.IntN(40)) * time.Millisecond
		for l := range c.lines {
			if round == 0 && strings.HasPrefix(l.text, "training on ") {
				c.kill(t)
			}
			m := epochLine.FindStringSubmatch(l.text)
			if m == nil || l.stderr {
				continue
			}
			// A resumed run logs the epochs it already had again.
			e, _ := strconv.Atoi(m[1])
			if acked[e] {
				continue
			}
			acked[e] = true
			if seen++; round > 0 && !final && seen == killAfter {
				time.Sleep(delay)
				c.kill(t)
			}
		}
		err, took := c.wait()
		if timer != nil {
			timer.Stop()
		}
		if final && err != nil || !final && !killedBySIGKILL(err) {
			t.Fatalf("round %d: want %s, got %v\n%s%s", round, map[bool]string{true: "success", false: "a SIGKILL"}[final], err, c.stdout.String(), c.stderr.String())
		}
		listed, temps := checkRun(t, runsDir, acked)
		t.Logf("round %d (resume %v): %s in %v; %d new epoch line(s), %d acknowledged, %d listed, %d temp file(s) left", round, resume,
			map[bool]string{true: "killed", false: "finished"}[!final], took.Round(time.Millisecond), seen, len(acked), len(listed), temps)
		if final {
			if len(listed) != epochs || temps != 0 || !strings.Contains(c.stdout.String(), "best checkpoint r/epoch-") {
				t.Fatalf("finished run: %d of %d checkpoints, %d temp files\n%s", len(listed), epochs, temps, c.stdout.String())
			}
		}
		if len(listed) > 0 {
			// The newest checkpoint serves: infer with it (the cache holds
			// the backbone descriptors, so this costs one model load).
			ref := fmt.Sprintf("r/epoch-%03d", listed[len(listed)-1])
			rank := filepath.Join(tmp, "rank.tsv")
			if _, stderr, err := runCLI(t, "infer", "--bundle", ref, "--runs-dir", runsDir, "--cache", cacheDir,
				"--queries", data, "--references", data, "--top", "3", "--out", rank); err != nil {
				t.Fatalf("infer --bundle %s: %v\n%s", ref, err, stderr)
			}
			if b, _ := os.ReadFile(rank); bytes.Count(b, []byte("\n")) != 36 {
				t.Fatalf("ranking of %s: %q", ref, b)
			}
		}
	}
}

// corruptModelDirs returns model folders with the default backbone's file
// bit-flipped, truncated or deleted, and the sha256 each holds.
func corruptModelDirs(t *testing.T, models string) map[string]string {
	t.Helper()
	spec, err := backbone.LookupSpec(defaultBackbone)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(filepath.Join(models, spec.File))
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{}
	for _, kind := range []string{"flipped", "truncated", "deleted"} {
		dir := filepath.Join(t.TempDir(), kind)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		data := slices.Clone(orig)
		switch kind {
		case "flipped":
			data[len(data)/2] ^= 0x10
		case "truncated":
			data = data[:len(data)*2/3]
		case "deleted":
			data = nil
		}
		if data != nil {
			if err := os.WriteFile(filepath.Join(dir, spec.File), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dirs[kind] = dir
	}
	return dirs
}

func sha256Hex(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestStartupFaults runs infer, index add and serve with the ONNX Runtime
// library missing or not a library, and with the model file bit-flipped,
// truncated or deleted: each must exit at start with an error naming the
// file (and for a bad checksum both sha256 sums), having written nothing,
// and serve must never have listened.
func TestStartupFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	models, lib := testenv.Models(t)
	spec, err := backbone.LookupSpec(defaultBackbone)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	writeClassImages(t, data, 2, 2)
	bad := corruptModelDirs(t, models)
	missingLib := filepath.Join(tmp, "nowhere", backbone.LibraryName)
	junkLib := filepath.Join(tmp, "junk", backbone.LibraryName)
	if err := os.MkdirAll(filepath.Dir(junkLib), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junkLib, []byte("\x7fELF but not really a shared object"), 0o644); err != nil {
		t.Fatal(err)
	}
	type fault struct {
		name        string
		models, lib string
		want        []string
	}
	faults := []fault{
		{"ort-lib missing", models, missingLib, []string{"onnxruntime library", missingLib, "no such file"}},
		{"ort-lib not a library", models, junkLib, []string{"onnxruntime", junkLib}},
		{"model bit-flipped", bad["flipped"], lib, []string{filepath.Join(bad["flipped"], spec.File), "sha256 " + sha256Hex(t, filepath.Join(bad["flipped"], spec.File)), "expected " + spec.SHA256, "corrupted"}},
		{"model truncated", bad["truncated"], lib, []string{filepath.Join(bad["truncated"], spec.File), "sha256 " + sha256Hex(t, filepath.Join(bad["truncated"], spec.File)), "expected " + spec.SHA256}},
		{"model deleted", bad["deleted"], lib, []string{spec.File, "not found in model directory", bad["deleted"]}},
	}
	for _, f := range faults {
		for _, cmdName := range []string{"infer", "index add", "index add (env)", "serve"} {
			t.Run(f.name+"/"+cmdName, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				addr := freeAddr(t)
				var c *child
				switch cmdName {
				case "infer":
					c = startCLI(t, nil, "infer", "--models", f.models, "--ort-lib", f.lib, "--cache", "off",
						"--queries", data, "--references", data, "--out", out)
				case "index add":
					c = startCLI(t, nil, "index", "add", "--models", f.models, "--ort-lib", f.lib, "--store", out, data)
				case "index add (env)":
					c = startCLI(t, []string{backbone.EnvModels + "=" + f.models, backbone.EnvLibrary + "=" + f.lib},
						"index", "add", "--store", out, data)
				case "serve":
					c = startCLI(t, nil, "serve", "--models", f.models, "--ort-lib", f.lib, "--store", out, "--addr", addr)
				}
				err, took := c.wait()
				msg := strings.TrimSpace(c.stderr.String())
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
					t.Fatalf("want exit status 1, got %v after %v\n%s", err, took, msg)
				}
				for _, w := range f.want {
					if !strings.Contains(msg, w) {
						t.Errorf("error does not say %q:\n%s", w, msg)
					}
				}
				if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") || strings.Count(msg, "\n") > 2 {
					t.Errorf("want one clear line, got:\n%s", msg)
				}
				if strings.Contains(c.stdout.String(), "serving") {
					t.Errorf("serve started listening:\n%s", c.stdout.String())
				}
				if _, err := os.Stat(out); !os.IsNotExist(err) {
					t.Errorf("%s was written before the fault was found: %v", cmdName, err)
				}
				t.Logf("exit 1 after %v: %s", took.Round(time.Millisecond), msg)
			})
		}
	}
	// The control: with the real runtime and models serve does start, so
	// the checks above can tell a start from a failure.
	t.Run("control/serve", func(t *testing.T) {
		addr := freeAddr(t)
		c := startCLI(t, nil, "serve", "--models", models, "--ort-lib", lib, "--store", filepath.Join(t.TempDir(), "store"), "--addr", addr)
		for l := range c.lines {
			if strings.HasPrefix(l.text, "serving ") {
				break
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			conn, err := net.Dial("tcp", addr)
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				c.kill(t)
				c.wait()
				t.Fatalf("serve never listened on %s: %v\n%s", addr, err, c.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		if err, _ := c.wait(); err != nil {
			t.Fatalf("serve after SIGTERM: %v\n%s", err, c.stderr.String())
		}
	})
}
