package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"prodsearch/internal/backbone"
	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/index"
	"prodsearch/internal/vec"
	"prodsearch/internal/vec/vectest"
)

// errPeerUnsupported marks a backbone the PyTorch peer cannot run as the same
// model (torch_peer.py exits 3), so the row says n/a instead of failing.
var errPeerUnsupported = errors.New("no same-model PyTorch equivalent")

// speedConfig is the parsed command line of `bench speed`.
type speedConfig struct {
	paths     []string
	batch     int
	threads   int
	peer      bool
	peerN     int // photos (a multiple of batch) the peer runs on
	python    string
	script    string
	modelDir  string
	library   string
	settings  []string
	backbones []backbone.Spec
	k         int
	refs      []int
	queries   int
	keep      bool
}

// speedCmd times the describe pipeline stage by stage on real photos for each
// backbone and setting, checks it against a PyTorch run of the same graph on
// the same tensors, and times exact search. Its purpose is to show where a
// query's time goes, so that only inference should dominate.
func speedCmd(fs *flag.FlagSet) runFunc {
	var cfg speedConfig
	manifest := fs.String("manifest", "../shared/data/grocerystore/splits/reference.tsv", "TSV manifest of the photos to describe (path<TAB>label)")
	n := fs.Int("n", 200, "describe the first n photos of the manifest")
	fs.IntVar(&cfg.batch, "batch", 16, "images per DescribeBatch (describe.FileOptions.Batch)")
	fs.IntVar(&cfg.threads, "threads", runtime.NumCPU(), "ONNX Runtime intra-op threads; the PyTorch peer gets the same")
	fs.BoolVar(&cfg.peer, "peer", true, "run the PyTorch peer (cmd/bench/peers/torch_peer.py) on the same input tensors")
	peerN := fs.Int("peer-n", 64, "photos the peer runs on (the first ones, rounded up to whole batches; PyTorch on 2 shared cores is slow)")
	fs.StringVar(&cfg.python, "python", "/usr/bin/python3", "Python with torch, onnx and numpy, for the peer")
	fs.StringVar(&cfg.script, "peer-script", "cmd/bench/peers/torch_peer.py", "the PyTorch peer script")
	models := fs.String("models", "", "model directory (default: backbone.FindModelDir)")
	fs.StringVar(&cfg.library, "lib", "", "libonnxruntime.so.1 (default: backbone.FindLibrary)")
	bbs := fs.String("backbones", "", "comma-separated backbones (default: every builtin)")
	grid := fs.String("settings", "gem3@224;gem3@224,352+flip", "describe settings, POOL[P]@SCALES[+flip], ';'-separated")
	fs.IntVar(&cfg.k, "k", 100, "hits per query in the search timing")
	refs := fs.String("refs", "2626,100000", "synthetic reference counts for the search timing (empty: skip)")
	fs.IntVar(&cfg.queries, "queries", 100, "queries in the search timing (real descriptors of the first photos)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the tensors and peer files in the temporary directory")
	return func(ctx context.Context, w io.Writer) error {
		if *n <= 0 || cfg.batch <= 0 || cfg.threads <= 0 || cfg.k <= 0 || cfg.queries <= 0 || *peerN <= 0 {
			return errors.New("speed: -n, -batch, -threads, -k, -queries and -peer-n must be positive")
		}
		cfg.settings = strings.Split(*grid, ";")
		var err error
		if strings.TrimSpace(*refs) != "" {
			if cfg.refs, err = parseInts(*refs); err != nil {
				return fmt.Errorf("speed: -refs: %w", err)
			}
		}
		if cfg.modelDir, err = backbone.FindModelDir(*models); err != nil {
			return err
		}
		if *bbs == "" {
			if cfg.backbones, err = backbone.Builtin(); err != nil {
				return err
			}
		} else {
			for _, name := range strings.Split(*bbs, ",") {
				spec, err := backbone.LookupSpec(strings.TrimSpace(name))
				if err != nil {
					return err
				}
				cfg.backbones = append(cfg.backbones, spec)
			}
		}
		set, err := dataset.Load(*manifest)
		if err != nil {
			return err
		}
		for _, it := range set.Items[:min(*n, len(set.Items))] {
			cfg.paths = append(cfg.paths, it.Path)
		}
		// Read every file once so that the first backbone does not pay for the
		// disk and the "read" stage measures page cache + content hash for all.
		for _, p := range cfg.paths {
			if _, err := os.ReadFile(p); err != nil {
				return fmt.Errorf("speed: %w", err)
			}
		}
		// Whole batches, so the recorded calls are exactly those DescribeFiles
		// makes for the first peerN photos on their own (the replay relies on it).
		cfg.peerN = min(len(cfg.paths), (*peerN+cfg.batch-1)/cfg.batch*cfg.batch)
		return cfg.run(ctx, w)
	}
}

// speedRow is one backbone × setting measurement.
type speedRow struct {
	backbone, setting string
	images, views     int
	wall              time.Duration
	stages            [6]time.Duration // read, decode, resize, tensor, infer, pool (summed)
	peerImages        int
	ortPeer           time.Duration // Session.Run time of the calls the peer repeated
	ratioMedian       float64       // median over those calls of ORT time / torch time
	torchInfer        time.Duration // peer forward time over the same calls; 0 = no peer
	torchPool         time.Duration
	torchWarm         time.Duration
	torchVersion      string
	cosMin, cosMean   float64
	peerNote          string
}

var stageNames = [6]string{"read", "decode", "resize", "tensor", "infer", "pool"}

// run measures every backbone and setting, then search, and prints the tables.
func (c speedConfig) run(ctx context.Context, w io.Writer) error {
	tmp, err := os.MkdirTemp("", "prodsearch-speed-")
	if err != nil {
		return fmt.Errorf("speed: %w", err)
	}
	if c.keep {
		fmt.Fprintln(os.Stderr, "speed: keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	var rows []speedRow
	queries := map[int][][]float32{} // by dimension, for the search timing
	for _, spec := range c.backbones {
		rs, vecs, err := c.measureBackbone(ctx, spec, filepath.Join(tmp, spec.Name))
		if err != nil {
			return err
		}
		rows = append(rows, rs...)
		if _, ok := queries[spec.Channels]; !ok && len(vecs) > 0 {
			queries[spec.Channels] = vecs[:min(c.queries, len(vecs))]
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "\ndescribe: %d photos, batch %d, %d ORT intra-op threads, %d decode workers, GOMAXPROCS %d, load avg %s\n",
		len(c.paths), c.batch, c.threads, runtime.NumCPU(), runtime.GOMAXPROCS(0), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
	printSpeedTable(w, rows)
	if len(c.refs) > 0 {
		fmt.Fprintf(w, "\nexact search (index.Flat, k=%d, %d threads, synthetic unit refs, real descriptors as queries):\n", c.k, runtime.GOMAXPROCS(0))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "dim\trefs\tqueries\tSearch ms/q\tSearchBatch ms/q\t")
		for _, d := range slices.Sorted(maps.Keys(queries)) {
			for _, r := range c.refs {
				single, batch, err := timeSearch(ctx, d, r, c.k, queries[d])
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%d\t%d\t%d\t%.3f\t%.3f\t\n", d, r, len(queries[d]), single.MsPerQuery, batch.MsPerQuery)
			}
		}
		tw.Flush()
	}
	return nil
}

// measureBackbone opens one session and measures every setting on it; it
// returns the rows and the descriptors of the first setting (search queries).
func (c speedConfig) measureBackbone(ctx context.Context, spec backbone.Spec, dir string) ([]speedRow, [][]float32, error) {
	sess, err := backbone.Open(spec, c.modelDir, backbone.Options{Library: c.library, Threads: c.threads})
	if err != nil {
		return nil, nil, err
	}
	defer sess.Destroy()
	var rows []speedRow
	var first [][]float32
	peerOK := c.peer
	var peerNote string
	for i, g := range c.settings {
		set, err := parseSetting(strings.TrimSpace(g))
		if err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(os.Stderr, "speed: %s %s ...\n", spec.Name, g)
		row, vecs, err := c.measure(ctx, sess, set, peerOK, filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			return nil, nil, fmt.Errorf("speed: %s %s: %w", spec.Name, g, err)
		}
		row.backbone, row.setting = spec.Name, g
		if row.peerNote != "" {
			// The graph is the same for every setting: stop asking.
			peerOK, peerNote = false, row.peerNote
		}
		row.peerNote = cmp.Or(row.peerNote, peerNote)
		rows = append(rows, row)
		if first == nil {
			first = vecs
		}
	}
	return rows, first, nil
}

// measure describes all photos once untimed on the first batch (warm-up),
// then timed; with the peer, it records the tensors fed to ONNX Runtime,
// runs torch_peer.py on them and replays its descriptors through prodsearch's
// own pooling aggregation for a per-image comparison.
func (c speedConfig) measure(ctx context.Context, sess *backbone.Session, set describe.Settings, peer bool, dir string) (speedRow, [][]float32, error) {
	var row speedRow
	rec := &recordingRunner{Runner: sess}
	d, err := describe.New(rec, set)
	if err != nil {
		return row, nil, err
	}
	opt := describe.FileOptions{Batch: c.batch}
	if _, fails, _, err := d.DescribeFiles(ctx, c.paths[:min(c.batch, len(c.paths))], opt); err != nil {
		return row, nil, err
	} else if len(fails) > 0 {
		return row, nil, fails[0]
	}
	rec.reset()
	if peer {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return row, nil, err
		}
		viewsPer := len(set.Scales)
		if set.Flip {
			viewsPer *= 2
		}
		if err := rec.startRecording(filepath.Join(dir, "input.f32"), c.peerN*viewsPer); err != nil {
			return row, nil, err
		}
		defer rec.stopRecording()
	}
	vecs, fails, st, err := d.DescribeFiles(ctx, c.paths, opt)
	if err != nil {
		return row, nil, err
	}
	if len(fails) > 0 {
		return row, nil, fmt.Errorf("%d photos failed, first %w", len(fails), fails[0])
	}
	if err := rec.stopRecording(); err != nil {
		return row, nil, err
	}
	// Recording happens inside Run, so its measured cost comes off the
	// inference and wall times.
	row.images, row.views = len(c.paths), rec.views
	row.wall = st.Wall - rec.overhead
	row.stages = [6]time.Duration{st.Read, st.Decode, st.Resize, st.Tensor, st.Infer - rec.overhead, st.Pool}
	if !peer {
		return row, vecs, nil
	}
	res, tv, err := c.runPeer(ctx, sess.Spec(), set, rec.calls, dir)
	if errors.Is(err, errPeerUnsupported) {
		row.peerNote = err.Error()
		err = nil
	}
	if !c.keep {
		os.RemoveAll(dir)
	}
	if err != nil || row.peerNote != "" {
		return row, vecs, err
	}
	// Replay: the same pipeline again, with a runner that checks it is fed
	// byte-identical tensors and answers with PyTorch's pooled descriptors
	// (a 1×1 map, which GeM leaves unchanged), so views are merged into
	// images by prodsearch's own code, with no mapping redone here.
	pv, err := replay(ctx, sess.Spec(), rec.calls, tv, set, c.paths[:c.peerN], opt)
	if err != nil {
		return row, nil, err
	}
	row.cosMin, row.cosMean = cosineStats(vecs[:c.peerN], pv)
	row.peerImages = c.peerN
	ratios := make([]float64, len(rec.calls))
	for i, cl := range rec.calls {
		row.ortPeer += cl.ort
		ratios[i] = cl.ort.Seconds() / res.Infer[i]
	}
	slices.Sort(ratios)
	row.ratioMedian = ratios[len(ratios)/2]
	row.torchInfer, row.torchPool, row.torchWarm = secs(sum(res.Infer)), secs(sum(res.Pool)), secs(res.Warmup)
	row.torchVersion = res.Torch
	if res.MKLDNN {
		row.torchVersion += " (oneDNN)"
	}
	return row, vecs, nil
}

// castagnoli is the CRC-32C table of the input checksums.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// peerCall is one Session.Run as recorded: its shape and a checksum of the
// exact input bytes.
type peerCall struct {
	N   int    `json:"n"`
	H   int    `json:"h"`
	W   int    `json:"w"`
	CRC uint32 `json:"crc32c"`

	ort time.Duration // Session.Run time
}

// recordingRunner times ONNX Runtime by itself and, while recording, appends
// every input tensor to a file for the peer. DescribeFiles calls Run from one
// goroutine in a fixed order, which is what makes the replay line up; the
// mutex only guards against misuse.
type recordingRunner struct {
	describe.Runner
	mu       sync.Mutex
	overhead time.Duration // spent recording
	views    int
	calls    []peerCall
	limit    int // views to record
	recorded int
	f        *os.File
	bw       *bufio.Writer
	buf      []byte
}

func (r *recordingRunner) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.overhead, r.views, r.calls, r.recorded = 0, 0, nil, 0
}

// startRecording records the next calls until they hold limit views.
func (r *recordingRunner) startRecording(path string, limit int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("speed: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.f, r.bw = f, bufio.NewWriterSize(f, 1<<20)
	r.limit, r.recorded = limit, 0
	return nil
}

// stopRecording flushes and closes the file; calling it again is harmless.
func (r *recordingRunner) stopRecording() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.bw.Flush()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.f, r.bw = nil, nil
	if err != nil {
		return fmt.Errorf("speed: recording tensors: %w", err)
	}
	return nil
}

func (r *recordingRunner) Run(ctx context.Context, input []float32, n, h, w int) (backbone.FeatureMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t0 := time.Now()
	fm, err := r.Runner.Run(ctx, input, n, h, w)
	t1 := time.Now()
	r.views += n
	if err != nil || r.f == nil || r.recorded >= r.limit {
		return fm, err
	}
	r.buf = vec.AppendF32(r.buf[:0], input)
	if _, err := r.bw.Write(r.buf); err != nil {
		return backbone.FeatureMap{}, fmt.Errorf("speed: recording tensors: %w", err)
	}
	r.calls = append(r.calls, peerCall{N: n, H: h, W: w, CRC: crc32.Checksum(r.buf, castagnoli), ort: t1.Sub(t0)})
	r.recorded += n
	r.overhead += time.Since(t1)
	return fm, nil
}

// replayRunner answers the recorded calls, in order, with the peer's
// per-view descriptors as 1×1 feature maps, after checking that the input is
// byte-identical to what ONNX Runtime was given.
type replayRunner struct {
	spec  backbone.Spec
	calls []peerCall
	vecs  []float32 // views × channels, call order
	mu    sync.Mutex
	next  int
	off   int
	buf   []byte
}

func (r *replayRunner) Spec() backbone.Spec { return r.spec }

func (r *replayRunner) Run(_ context.Context, input []float32, n, h, w int) (backbone.FeatureMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next >= len(r.calls) {
		return backbone.FeatureMap{}, fmt.Errorf("replay: call %d beyond the %d recorded", r.next+1, len(r.calls))
	}
	want := r.calls[r.next]
	r.buf = vec.AppendF32(r.buf[:0], input)
	got := peerCall{N: n, H: h, W: w, CRC: crc32.Checksum(r.buf, castagnoli)}
	if got != (peerCall{N: want.N, H: want.H, W: want.W, CRC: want.CRC}) {
		return backbone.FeatureMap{}, fmt.Errorf("replay: call %d is %+v, recorded %+v (pipeline not deterministic?)", r.next, got, want)
	}
	c := r.spec.Channels
	if (r.off+n)*c > len(r.vecs) {
		return backbone.FeatureMap{}, fmt.Errorf("replay: peer returned %d values, need more", len(r.vecs))
	}
	fm := backbone.FeatureMap{Data: r.vecs[r.off*c : (r.off+n)*c], N: n, C: c, H: 1, W: 1}
	r.next++
	r.off += n
	return fm, nil
}

// replay describes paths again through a replayRunner that answers the
// recorded calls with vecs, a peer's per-view descriptors; every recorded
// call must be used.
func replay(ctx context.Context, spec backbone.Spec, calls []peerCall, vecs []float32, set describe.Settings, paths []string, opt describe.FileOptions) ([][]float32, error) {
	rp := &replayRunner{spec: spec, calls: calls, vecs: vecs}
	rd, err := describe.New(rp, set)
	if err != nil {
		return nil, err
	}
	pv, _, _, err := rd.DescribeFiles(ctx, paths, opt)
	if err != nil {
		return nil, fmt.Errorf("replaying the peer's descriptors: %w", err)
	}
	if rp.next != len(calls) {
		return nil, fmt.Errorf("replay used %d of %d recorded calls", rp.next, len(calls))
	}
	return pv, nil
}

// peerResult is torch_peer.py's result JSON.
type peerResult struct {
	Torch  string    `json:"torch"`
	MKLDNN bool      `json:"mkldnn"`
	Warmup float64   `json:"warmup_s"`
	Infer  []float64 `json:"infer_s"`
	Pool   []float64 `json:"pool_s"`
}

// runPeer writes the job file, runs the PyTorch peer and reads back its
// descriptors.
func (c speedConfig) runPeer(ctx context.Context, spec backbone.Spec, set describe.Settings, calls []peerCall, dir string) (peerResult, []float32, error) {
	var res peerResult
	model, err := spec.ModelPath(c.modelDir)
	if err != nil {
		return res, nil, err
	}
	p := set.P
	if set.Pool != describe.PoolGeM {
		return res, nil, fmt.Errorf("peer: pool %q: only GeM is implemented in torch_peer.py", set.Pool)
	}
	job := map[string]any{
		"model": model, "output": spec.Output, "layout": spec.Norm().Layout,
		"input": filepath.Join(dir, "input.f32"), "calls": calls, "p": p, "threads": c.threads,
		"descriptors": filepath.Join(dir, "peer.f32"), "result": filepath.Join(dir, "peer.json"),
	}
	jobPath := filepath.Join(dir, "job.json")
	if err := writeJSON(jobPath, job); err != nil {
		return res, nil, fmt.Errorf("peer: %w", err)
	}
	cmd := exec.CommandContext(ctx, c.python, c.script, jobPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 {
			return res, nil, fmt.Errorf("%w: %s", errPeerUnsupported, strings.TrimSpace(lastLine(out)))
		}
		return res, nil, fmt.Errorf("peer %s: %w\n%s", c.script, err, out)
	}
	rb, err := os.ReadFile(filepath.Join(dir, "peer.json"))
	if err != nil {
		return res, nil, fmt.Errorf("peer: %w", err)
	}
	if err := json.Unmarshal(rb, &res); err != nil {
		return res, nil, fmt.Errorf("peer result: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "peer.f32"))
	if err != nil {
		return res, nil, fmt.Errorf("peer: %w", err)
	}
	views := 0
	for _, cl := range calls {
		views += cl.N
	}
	if want := views * spec.Channels * 4; len(raw) != want || len(res.Infer) != len(calls) {
		return res, nil, fmt.Errorf("peer: %d bytes and %d timings for %d calls of %d views × %d channels", len(raw), len(res.Infer), len(calls), views, spec.Channels)
	}
	v := make([]float32, len(raw)/4)
	vec.DecodeF32(v, raw)
	return res, v, nil
}

// lastLine is the last non-empty line of a tool's output, its error message.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// cosineStats compares unit vectors pairwise; a missing vector counts as -1
// so that it cannot hide.
func cosineStats(a, b [][]float32) (lo, mean float64) {
	if len(a) == 0 || len(a) != len(b) {
		return -1, -1
	}
	lo = math.Inf(1)
	for i := range a {
		c := -1.0
		if len(a[i]) == len(b[i]) && len(a[i]) > 0 {
			c = vectest.Cosine(a[i], b[i])
		}
		lo = min(lo, c)
		mean += c
	}
	return lo, mean / float64(len(a))
}

// printSpeedTable prints one line per backbone × setting: throughput, per
// stage ms per image and share of the summed stage time, and the peer.
func printSpeedTable(w io.Writer, rows []speedRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "backbone\tsetting\tviews\timg/s\t")
	for _, s := range stageNames {
		fmt.Fprintf(tw, "%s ms (%%)\t", s)
	}
	fmt.Fprintln(tw, "dominant\ttorch ms\tORT/torch\tmedian\tcos min\tcos mean\t")
	var notes []string
	for _, r := range rows {
		var total time.Duration
		big := 0
		for i, d := range r.stages {
			total += d
			if d > r.stages[big] {
				big = i
			}
		}
		per := func(d time.Duration) float64 { return ms(d) / float64(r.images) }
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t", r.backbone, r.setting, r.views, float64(r.images)/r.wall.Seconds())
		for _, d := range r.stages {
			fmt.Fprintf(tw, "%.2f (%2.0f%%)\t", per(d), 100*float64(d)/float64(total))
		}
		fmt.Fprintf(tw, "%s\t", stageNames[big])
		if r.torchInfer > 0 {
			fmt.Fprintf(tw, "%.2f\t%.2f\t%.2f\t%.7f\t%.7f\t\n", ms(r.torchInfer)/float64(r.peerImages),
				float64(r.ortPeer)/float64(r.torchInfer), r.ratioMedian, r.cosMin, r.cosMean)
		} else {
			fmt.Fprint(tw, "n/a\tn/a\tn/a\tn/a\tn/a\t\n")
			if r.peerNote != "" && !slices.Contains(notes, r.backbone+": "+r.peerNote) {
				notes = append(notes, r.backbone+": "+r.peerNote)
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "ms per image (all views); read+decode are summed over the decode workers and overlap inference; share = stage / sum of stages.")
	fmt.Fprintln(w, "torch ms = PyTorch forward of the same ONNX graph on the same tensors and batch shapes (first -peer-n photos); ORT/torch = Session.Run / torch forward")
	fmt.Fprintln(w, "over those calls (<1: prodsearch faster), median = median per-call ratio (robust to load from other processes); cos = prodsearch vs PyTorch descriptor per photo.")
	for _, r := range rows {
		if r.torchVersion != "" {
			fmt.Fprintf(w, "PyTorch %s %s %s: %d photos, GeM+L2 %.2f ms/img (prodsearch pool %.2f), first-call warm-up %.0f ms (untimed, as ORT's).\n",
				r.torchVersion, r.backbone, r.setting, r.peerImages, ms(r.torchPool)/float64(r.peerImages), ms(r.stages[5])/float64(r.images), ms(r.torchWarm))
		}
	}
	for _, n := range notes {
		fmt.Fprintln(w, "peer skipped for", n)
	}
}

// timeSearch builds a Flat of refs synthetic unit vectors and returns the
// time per query of Search (one query at a time) and of SearchBatch.
func timeSearch(ctx context.Context, dim, refs, k int, qs [][]float32) (single, batch timing, err error) {
	rng := rand.New(rand.NewPCG(uint64(dim), uint64(refs)))
	vecs := make([]float32, 0, refs*dim)
	for range refs {
		vecs = append(vecs, vectest.Unit(rng, dim)...)
	}
	f, err := index.NewFlatFrom(dim, refIDs(refs), vecs)
	if err == nil {
		_, err = f.Search(ctx, qs[0], k, nil) // warm-up
	}
	if err != nil {
		return timing{}, timing{}, err
	}
	_, single, err = searchEach(ctx, qs, func(q []float32) ([]index.Hit, error) { return f.Search(ctx, q, k, nil) })
	t0 := time.Now()
	if err == nil {
		_, err = f.SearchBatch(ctx, qs, k)
	}
	return single, batchTiming(len(qs), time.Since(t0)), err
}
