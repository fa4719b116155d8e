// bench scale measures reference search at scale on synthetic
// descriptors: exact (index.Flat), approximate (index.HNSW) and a Weaviate
// node, side by side with faiss IndexFlatIP and IndexHNSWFlat run on the same
// vectors by peers/faiss_peer.py. It reports QPS, latency, recall@10 against
// exact search, build time and memory, and the Go/faiss ratios.
//
//	go run ./cmd/bench scale -n 100000                     # exact, HNSW, faiss
//	go run ./cmd/bench scale -n 1000000 -nq 500            # 1M x 1280: ~5 GB per copy
//	go run ./cmd/bench scale -weaviate 'weaviate://127.0.0.1:18000?grpc=127.0.0.1:18001' \
//	    -weaviate-pid-file ~/.cache/prodsearch/weaviate/cluster/node-0.pid

package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"prodsearch/internal/index"
	"prodsearch/internal/vec"
)

type scaleOptions struct {
	n, nq, dim, k, ktop int
	latQueries          int
	m, efc              int
	efs                 []int
	seed                uint64
	python, peer        string
	weaviateURL         string
	weaviatePIDFile     string
	weaviateClients     int
	tmp                 string
	jsonOut             string
	saveGraph           bool
	weaviateOnly        bool
}

// scaleCmd parses the scale flags; runScale runs the benchmark.
func scaleCmd(fs *flag.FlagSet) runFunc {
	var o scaleOptions
	fs.IntVar(&o.n, "n", 100_000, "references (1000000 for the 1M benchmark: ~5 GB per copy at 1280-d)")
	fs.IntVar(&o.nq, "nq", 1000, "queries")
	fs.IntVar(&o.dim, "dim", 1280, "descriptor dimension")
	fs.IntVar(&o.k, "k", 10, "k for recall@k and ANN timings")
	fs.IntVar(&o.ktop, "ktop", 100, "k for exact search timings (top-100 as in the goal)")
	fs.IntVar(&o.latQueries, "lat-queries", 0, "queries timed one at a time for exact search (default min(nq, 2e7/n*10))")
	fs.IntVar(&o.m, "m", 16, "HNSW M (both Go and faiss; level 0 keeps 2M)")
	fs.IntVar(&o.efc, "efc", 128, "HNSW efConstruction (both)")
	efs := fs.String("ef", "16,32,64,128,256", "HNSW efSearch values to sweep")
	fs.Uint64Var(&o.seed, "seed", 1, "data seed")
	fs.StringVar(&o.python, "python", "/usr/bin/python3", "python with faiss and numpy; empty skips faiss")
	fs.StringVar(&o.peer, "peer", "cmd/bench/peers/faiss_peer.py", "faiss peer script")
	fs.StringVar(&o.weaviateURL, "weaviate", "", "weaviate:// URL of a single node to measure (collection Scalebench, dropped first)")
	fs.StringVar(&o.weaviatePIDFile, "weaviate-pid-file", "", "PID file of that node, to read its memory")
	fs.IntVar(&o.weaviateClients, "weaviate-clients", 0, "concurrent search clients for Weaviate's all-cores QPS (default 2*GOMAXPROCS)")
	fs.StringVar(&o.tmp, "tmp", "", "directory for the vector files shared with faiss (default a temporary one)")
	fs.StringVar(&o.jsonOut, "json", "", "also write all figures as JSON to this file")
	fs.BoolVar(&o.saveGraph, "save", true, "time saving and loading the HNSW graph file")
	fs.BoolVar(&o.weaviateOnly, "weaviate-only", false, "measure only the Weaviate node, streaming the references so the benchmark never holds them all (for 1M beside the server)")
	return func(ctx context.Context, stdout io.Writer) error {
		var err error
		if o.efs, err = parseInts(*efs); err != nil {
			return fmt.Errorf("-ef: %w", err)
		}
		if o.n < o.ktop || o.nq < 1 || o.dim < 1 || o.k < 1 || o.k > o.ktop {
			return errors.New("want n >= ktop >= k >= 1, nq >= 1, dim >= 1")
		}
		if o.weaviateOnly && o.weaviateURL == "" {
			return errors.New("-weaviate-only needs -weaviate")
		}
		if o.latQueries <= 0 {
			o.latQueries = min(o.nq, max(20, 200_000_000/o.n))
		}
		o.latQueries = min(o.latQueries, o.nq)
		if o.weaviateClients <= 0 {
			o.weaviateClients = 2 * runtime.GOMAXPROCS(0)
		}
		return runScale(ctx, o, stdout)
	}
}

// timing is the latency summary of queries run one at a time.
type timing struct {
	QPS        float64 `json:"qps"`
	MsPerQuery float64 `json:"ms_per_query"`
	P50Ms      float64 `json:"p50_ms,omitempty"`
	P99Ms      float64 `json:"p99_ms,omitempty"`
}

// msTiming is the timing of queries that took lat milliseconds each.
func msTiming(lat []float64) timing {
	st := summarise(lat)
	return timing{QPS: 1000 / st.Mean, MsPerQuery: st.Mean, P50Ms: st.P50, P99Ms: st.P99}
}

func batchTiming(nq int, d time.Duration) timing {
	return timing{QPS: float64(nq) / d.Seconds(), MsPerQuery: ms(d) / float64(nq)}
}

type exactReport struct {
	MemBytes       int64  `json:"mem_bytes"`
	OneThread      timing `json:"one_thread"`
	OneThreadBatch timing `json:"one_thread_batch"`
	AllCores       timing `json:"all_cores"`
	AllCoresBatch  timing `json:"all_cores_batch"`
}

type annPoint struct {
	Ef            int     `json:"ef"`
	Recall10      float64 `json:"recall@10"`
	OneThread     timing  `json:"one_thread"`
	AllCoresBatch timing  `json:"all_cores_batch"`
	SpeedupExact  float64 `json:"speedup_vs_exact_one_thread"`
}

type hnswReport struct {
	BuildS     float64    `json:"build_s"`
	MemBytes   int64      `json:"mem_bytes"`
	SaveS      float64    `json:"save_s,omitempty"`
	LoadS      float64    `json:"load_s,omitempty"`
	FileBytes  int64      `json:"file_bytes,omitempty"`
	LoadedSame bool       `json:"loaded_same_results,omitempty"`
	Sweep      []annPoint `json:"sweep"`
}

type weaviateReport struct {
	ImportS  float64    `json:"import_s"`
	MemBytes int64      `json:"rss_growth_bytes"`
	Sweep    []annPoint `json:"sweep"`
}

type scaleReport struct {
	N, NQ, Dim, K, KTop, LatQueries, Threads int
	M, EfC                                   int
	Data                                     string
	GenS, GroundTruthS                       float64
	Exact                                    exactReport
	HNSW                                     hnswReport
	Weaviate                                 *weaviateReport `json:",omitempty"`
	Faiss                                    json.RawMessage `json:",omitempty"`
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench scale %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func runScale(ctx context.Context, o scaleOptions, stdout io.Writer) error {
	threads := runtime.GOMAXPROCS(0)
	rep := scaleReport{N: o.n, NQ: o.nq, Dim: o.dim, K: o.k, KTop: o.ktop, LatQueries: o.latQueries, Threads: threads, M: o.m, EfC: o.efc}
	s := defaultSynth(o.dim, o.seed)
	rep.Data = fmt.Sprintf("synthetic: %d-d latent catalogue (%d products/category, ~%d views/product, spreads %.2g/%.2g) embedded in %d-d, noise %.2g, unit norm",
		s.latent, s.productsPer, s.viewsPer, s.productSpread, s.viewSpread, o.dim, s.noise)

	if o.weaviateOnly {
		return runWeaviateOnly(ctx, o, s, &rep, stdout)
	}
	t0 := time.Now()
	w := s.world(o.n)
	refs := w.views(o.n, refStream)
	queries := w.views(o.nq, queryStream)
	rep.GenS = time.Since(t0).Seconds()
	logf("generated %d refs and %d queries of %d-d in %.1fs", o.n, o.nq, o.dim, rep.GenS)
	qs := rows(queries, o.dim)
	ids := refIDs(o.n)

	dir := o.tmp
	if o.python != "" {
		if dir == "" {
			var err error
			if dir, err = os.MkdirTemp("", "scalebench"); err != nil {
				return err
			}
			defer os.RemoveAll(dir)
		}
		for name, v := range map[string][]float32{"refs.f32": refs, "queries.f32": queries} {
			if err := writeF32(filepath.Join(dir, name), v); err != nil {
				return err
			}
		}
	}

	// Exact: ground truth, then timings.
	h0 := heapBytes()
	flatAll, err := index.NewFlatFrom(o.dim, ids, refs)
	if err != nil {
		return err
	}
	rep.Exact.MemBytes = heapBytes() - h0 + int64(len(refs))*4 // the vectors are shared, count them
	flat1, err := index.NewFlatFrom(o.dim, ids, refs, index.WithThreads(1))
	if err != nil {
		return err
	}
	t0 = time.Now()
	gt, err := flatAll.SearchBatch(ctx, qs, o.ktop)
	if err != nil {
		return err
	}
	rep.GroundTruthS = time.Since(t0).Seconds()
	rep.Exact.AllCoresBatch = batchTiming(o.nq, time.Since(t0))
	logf("exact top-%d, %d queries, all cores, batched: %.1fs", o.ktop, o.nq, rep.GroundTruthS)
	lq := qs[:o.latQueries]
	if _, rep.Exact.OneThread, err = searchEach(ctx, lq, func(q []float32) ([]index.Hit, error) { return flat1.Search(ctx, q, o.ktop, nil) }); err != nil {
		return err
	}
	if _, rep.Exact.AllCores, err = searchEach(ctx, lq, func(q []float32) ([]index.Hit, error) { return flatAll.Search(ctx, q, o.ktop, nil) }); err != nil {
		return err
	}
	t0 = time.Now()
	if _, err := flat1.SearchBatch(ctx, qs, o.ktop); err != nil {
		return err
	}
	rep.Exact.OneThreadBatch = batchTiming(o.nq, time.Since(t0))
	logf("exact: %+v", rep.Exact)
	if o.python != "" {
		if err := writeGT(filepath.Join(dir, "gt.i32"), gt, o.ktop); err != nil {
			return err
		}
	}
	gt10 := make([][]index.Hit, len(gt))
	for i, g := range gt {
		gt10[i] = g[:min(o.k, len(g))]
	}
	flatAll, flat1 = nil, nil
	_, _ = flatAll, flat1

	// HNSW.
	h0 = heapBytes()
	hn, err := index.NewHNSW(o.dim, index.HNSWConfig{M: o.m, EfConstruction: o.efc, Seed: o.seed})
	if err != nil {
		return err
	}
	t0 = time.Now()
	if err := addProgress(ctx, hn, ids, rows(refs, o.dim)); err != nil {
		return err
	}
	rep.HNSW.BuildS = time.Since(t0).Seconds()
	rep.HNSW.MemBytes = heapBytes() - h0
	logf("hnsw built in %.1fs, %.2f GB", rep.HNSW.BuildS, float64(rep.HNSW.MemBytes)/1e9)
	exactMs := rep.Exact.OneThread.MsPerQuery
	for _, ef := range o.efs {
		hn.SetEfSearch(ef) // for SearchBatch
		p, err := measureANN(ctx, ef, qs, gt10, exactMs,
			func(q []float32) ([]index.Hit, error) { return hn.SearchEf(ctx, q, o.k, ef, nil) },
			func() error { _, err := hn.SearchBatch(ctx, qs, o.k); return err })
		if err != nil {
			return err
		}
		rep.HNSW.Sweep = append(rep.HNSW.Sweep, p)
		logf("hnsw %+v", p)
	}
	if o.saveGraph {
		// saveLoad drops the built graph before loading, so that two copies
		// (10 GB at 1M x 1280) are never held at once.
		if err := saveLoad(ctx, &hn, qs, o, &rep.HNSW); err != nil {
			return err
		}
	}
	hn = nil
	_ = hn

	// Weaviate, one node.
	if o.weaviateURL != "" {
		src := func(lo, hi int) ([]float32, error) { return refs[lo*o.dim : hi*o.dim], nil }
		wr, err := benchWeaviate(ctx, o, ids, src, qs, gt10, exactMs)
		if err != nil {
			return err
		}
		rep.Weaviate = wr
	}

	// faiss, after the Go side has let go of its memory.
	if o.python != "" {
		refs, queries, qs, gt = nil, nil, nil, nil
		_, _, _, _ = refs, queries, qs, gt
		runtime.GC()
		debug.FreeOSMemory()
		meta := map[string]any{"n": o.n, "nq": o.nq, "dim": o.dim, "k": o.k, "ktop": o.ktop, "m": o.m, "efc": o.efc,
			"efs": o.efs, "lat_queries": o.latQueries, "threads": threads}
		if err := writeJSON(filepath.Join(dir, "meta.json"), meta); err != nil {
			return err
		}
		logf("running faiss peer")
		cmd := exec.CommandContext(ctx, o.python, o.peer, "--dir", dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("faiss peer: %w", err)
		}
		rep.Faiss = json.RawMessage(out)
	}

	printReport(stdout, &rep)
	return writeJSON(o.jsonOut, rep)
}

// Streams of the synthetic generator: references and queries are
// independent draws from the same catalogue.
const (
	refStream   = 0x5eed
	queryStream = 0x0ae7
)

// runWeaviateOnly measures a Weaviate node on a catalogue it never holds
// whole: each slice of references is drawn, searched exactly for the ground
// truth, and dropped, then drawn again (identically) for the import. At 1M x
// 1280 this keeps the benchmark near 0.5 GB beside the server.
func runWeaviateOnly(ctx context.Context, o scaleOptions, s synth, rep *scaleReport, stdout io.Writer) error {
	t0 := time.Now()
	w := s.world(o.n)
	qs := rows(w.views(o.nq, queryStream), o.dim)
	ids := refIDs(o.n)
	src := func(lo, hi int) ([]float32, error) { return w.viewsAt(lo, hi-lo, refStream) }
	gt := make([][]index.Hit, len(qs))
	const chunk = 64 * viewChunk
	for lo := 0; lo < o.n; lo += chunk {
		hi := min(lo+chunk, o.n)
		refs, err := src(lo, hi)
		if err != nil {
			return err
		}
		flat, err := index.NewFlatFrom(o.dim, ids[lo:hi], refs)
		if err != nil {
			return err
		}
		part, err := flat.SearchBatch(ctx, qs, o.k)
		if err != nil {
			return err
		}
		for i := range gt {
			gt[i] = mergeTop(gt[i], part[i], o.k)
		}
	}
	rep.GroundTruthS = time.Since(t0).Seconds()
	logf("streamed exact top-%d over %d refs for %d queries in %.1fs", o.k, o.n, o.nq, rep.GroundTruthS)
	wr, err := benchWeaviate(ctx, o, ids, src, qs, gt, 0)
	if err != nil {
		return err
	}
	rep.Weaviate = wr
	printReport(stdout, rep)
	return writeJSON(o.jsonOut, rep)
}

// mergeTop merges two best-first hit lists into the best k.
func mergeTop(a, b []index.Hit, k int) []index.Hit {
	out := append(slices.Clone(a), b...)
	slices.SortStableFunc(out, func(x, y index.Hit) int { return cmp.Compare(y.Score, x.Score) })
	return out[:min(k, len(out))]
}

func rows(flat []float32, dim int) [][]float32 {
	out := make([][]float32, len(flat)/dim)
	for i := range out {
		out[i] = flat[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return out
}

func writeF32(path string, v []float32) error {
	return os.WriteFile(path, vec.AppendF32(make([]byte, 0, 4*len(v)), v), 0o644)
}

func writeGT(path string, gt [][]index.Hit, ktop int) error {
	buf := make([]byte, 0, len(gt)*ktop*4)
	for _, hits := range gt {
		for j := range ktop {
			p := int32(-1)
			if j < len(hits) {
				p = int32(hits[j].Index)
			}
			buf = binary.LittleEndian.AppendUint32(buf, uint32(p))
		}
	}
	return os.WriteFile(path, buf, 0o644)
}

// searchEach runs search for each query in turn, timing each, and keeps the
// results.
func searchEach(ctx context.Context, qs [][]float32, search func([]float32) ([]index.Hit, error)) ([][]index.Hit, timing, error) {
	got := make([][]index.Hit, len(qs))
	lat := make([]float64, len(qs)) // ms
	for i, q := range qs {
		if err := ctx.Err(); err != nil {
			return nil, timing{}, err
		}
		t := time.Now()
		var err error
		if got[i], err = search(q); err != nil {
			return nil, timing{}, err
		}
		lat[i] = ms(time.Since(t))
	}
	return got, msTiming(lat), nil
}

// addProgress inserts in slices so progress shows on long builds.
func addProgress(ctx context.Context, h *index.HNSW, ids []string, vecs [][]float32) error {
	step := max(10_000, len(ids)/20)
	t0 := time.Now()
	for lo := 0; lo < len(ids); lo += step {
		hi := min(lo+step, len(ids))
		if err := h.AddBatch(ctx, ids[lo:hi], vecs[lo:hi]); err != nil {
			return err
		}
		el := time.Since(t0)
		left := time.Duration(float64(el) / float64(hi) * float64(len(ids)-hi))
		logf("hnsw build %d/%d, %.0f/s, %s left", hi, len(ids), float64(hi)/el.Seconds(), left.Round(time.Second))
	}
	return nil
}

// measureANN measures an approximate index at one ef: each query alone,
// for recall against gt and latency, then all of them at once with batch.
// exactMs, when known, gives the speed-up over exact search.
func measureANN(ctx context.Context, ef int, qs [][]float32, gt [][]index.Hit, exactMs float64, search func([]float32) ([]index.Hit, error), batch func() error) (annPoint, error) {
	p := annPoint{Ef: ef}
	got, one, err := searchEach(ctx, qs, search)
	if err != nil {
		return p, err
	}
	p.OneThread, p.Recall10 = one, index.Recall(got, gt)
	if exactMs > 0 {
		p.SpeedupExact = exactMs / one.MsPerQuery
	}
	t := time.Now()
	if err := batch(); err != nil {
		return p, err
	}
	p.AllCoresBatch = batchTiming(len(qs), time.Since(t))
	return p, nil
}

func saveLoad(ctx context.Context, hp **index.HNSW, qs [][]float32, o scaleOptions, r *hnswReport) error {
	h := *hp
	dir, err := os.MkdirTemp(o.tmp, "scalebench-graph")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "refs.hnsw")
	t := time.Now()
	if err := h.Save(path); err != nil {
		return err
	}
	r.SaveS = time.Since(t).Seconds()
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	r.FileBytes = st.Size()
	want, err := h.SearchBatch(ctx, qs[:min(50, len(qs))], o.k)
	if err != nil {
		return err
	}
	*hp, h = nil, nil
	runtime.GC()
	debug.FreeOSMemory()
	t = time.Now()
	g, err := index.LoadHNSW(path, index.HNSWConfig{})
	if err != nil {
		return err
	}
	r.LoadS = time.Since(t).Seconds()
	got, err := g.SearchBatch(ctx, qs[:len(want)], o.k)
	if err != nil {
		return err
	}
	r.LoadedSame = true
	for i := range want {
		r.LoadedSame = r.LoadedSame && slices.Equal(want[i], got[i])
	}
	logf("graph file %.2f GB: save %.1fs, load %.1fs, same results %v", float64(r.FileBytes)/1e9, r.SaveS, r.LoadS, r.LoadedSame)
	return nil
}

// rssOf is the resident set of the process whose PID is in pidFile, 0 when
// it cannot be read.
func rssOf(pidFile string) int64 {
	b, err := os.ReadFile(pidFile)
	if pidFile == "" || err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	rss, _ := procStatus(pid, "VmRSS")
	return rss
}

// benchWeaviate imports the references, read through src (rows lo..hi), into
// a fresh collection and sweeps ef. exactMs, when known, gives the speed-ups.
func benchWeaviate(ctx context.Context, o scaleOptions, ids []string, src func(lo, hi int) ([]float32, error), qs [][]float32, gt [][]index.Hit, exactMs float64) (*weaviateReport, error) {
	url := o.weaviateURL
	if !strings.Contains(url, "class=") {
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		url += sep + "class=Scalebench"
	}
	cfg, err := index.ParseWeaviateURL(url)
	if err != nil {
		return nil, err
	}
	cfg.EfConstruction, cfg.MaxConnections = o.efc, 2*o.m // Weaviate's maxConnections is its level-0 width
	w, err := index.OpenWeaviate(ctx, cfg, o.dim)
	if err != nil {
		return nil, err
	}
	if err := w.Drop(ctx); err != nil {
		return nil, err
	}
	if w, err = index.OpenWeaviate(ctx, cfg, o.dim); err != nil {
		return nil, err
	}
	defer w.Drop(context.Background())
	r := &weaviateReport{}
	rss0 := rssOf(o.weaviatePIDFile)
	t0 := time.Now()
	const chunk = 20 * viewChunk
	for lo := 0; lo < len(ids); lo += chunk {
		hi := min(lo+chunk, len(ids))
		refs, err := src(lo, hi)
		if err != nil {
			return nil, err
		}
		objs := make([]index.WeaviateObject, hi-lo)
		for i := range objs {
			objs[i] = index.WeaviateObject{ID: ids[lo+i], Vector: refs[i*o.dim : (i+1)*o.dim]}
		}
		if err := w.Put(ctx, objs); err != nil {
			return nil, err
		}
		el := time.Since(t0)
		logf("weaviate import %d/%d, %.0f/s", hi, len(ids), float64(hi)/el.Seconds())
	}
	r.ImportS = time.Since(t0).Seconds()
	if rss := rssOf(o.weaviatePIDFile); rss > 0 {
		r.MemBytes = rss - rss0
	}
	for _, ef := range o.efs {
		if err := w.SetEfSearch(ctx, ef); err != nil {
			return nil, err
		}
		search := func(q []float32) ([]index.Hit, error) { return w.Search(ctx, q, o.k, nil) }
		p, err := measureANN(ctx, ef, qs, gt, exactMs, search, func() error {
			var firstErr atomic.Value
			parallelFor(len(qs), o.weaviateClients, func(i int) {
				if firstErr.Load() == nil {
					if _, err := search(qs[i]); err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				}
			})
			err, _ := firstErr.Load().(error)
			return err
		})
		if err != nil {
			return nil, err
		}
		r.Sweep = append(r.Sweep, p)
		logf("weaviate %+v", p)
	}
	return r, nil
}

func printReport(w io.Writer, r *scaleReport) {
	gb := func(b int64) string { return fmt.Sprintf("%.2f GB", float64(b)/1e9) }
	perM := func(b int64) string { return fmt.Sprintf("%.2f GB/M", float64(b)/float64(r.N)*1e6/1e9) }
	fmt.Fprintf(w, "bench scale: %d refs x %d-d, %d queries, %d threads\n%s\n\n", r.N, r.Dim, r.NQ, r.Threads, r.Data)
	if r.Weaviate != nil && r.HNSW.Sweep == nil {
		fmt.Fprintf(w, "Weaviate, one node: import %.1fs, server RSS growth %s (%s); ground truth streamed exact in %.1fs\n",
			r.Weaviate.ImportS, gb(r.Weaviate.MemBytes), perM(r.Weaviate.MemBytes), r.GroundTruthS)
		printSweep(w, r.Weaviate.Sweep)
		return
	}
	fmt.Fprintf(w, "exact (index.Flat), top-%d:  memory %s (%s)\n", r.KTop, gb(r.Exact.MemBytes), perM(r.Exact.MemBytes))
	e := r.Exact
	fmt.Fprintf(w, "  1 thread, one at a time   %8.2f ms/q  p99 %8.2f ms  (%d queries)\n", e.OneThread.MsPerQuery, e.OneThread.P99Ms, r.LatQueries)
	fmt.Fprintf(w, "  1 thread, batched         %8.2f ms/q\n", e.OneThreadBatch.MsPerQuery)
	fmt.Fprintf(w, "  all cores, one at a time  %8.2f ms/q  p99 %8.2f ms\n", e.AllCores.MsPerQuery, e.AllCores.P99Ms)
	fmt.Fprintf(w, "  all cores, batched        %8.2f ms/q\n\n", e.AllCoresBatch.MsPerQuery)
	h := r.HNSW
	fmt.Fprintf(w, "HNSW (index.HNSW, M=%d efC=%d): build %.1fs, memory %s (%s)", r.M, r.EfC, h.BuildS, gb(h.MemBytes), perM(h.MemBytes))
	if h.FileBytes > 0 {
		fmt.Fprintf(w, "; graph file %s, save %.1fs, load %.1fs (same results: %v)", gb(h.FileBytes), h.SaveS, h.LoadS, h.LoadedSame)
	}
	fmt.Fprintln(w)
	printSweep(w, h.Sweep)
	if r.Weaviate != nil {
		fmt.Fprintf(w, "\nWeaviate, one node: import %.1fs, server RSS growth %s (%s)\n", r.Weaviate.ImportS, gb(r.Weaviate.MemBytes), perM(r.Weaviate.MemBytes))
		printSweep(w, r.Weaviate.Sweep)
	}
	if len(r.Faiss) > 0 {
		printFaiss(w, r)
	}
}

func printSweep(w io.Writer, s []annPoint) {
	fmt.Fprintf(w, "  %5s %9s %11s %9s %9s %13s %10s\n", "ef", "recall@10", "1t ms/q", "1t QPS", "p99 ms", "all-cores QPS", "vs exact")
	for _, p := range s {
		vs := "-" // not measured in this run
		if p.SpeedupExact > 0 {
			vs = fmt.Sprintf("%.1fx", p.SpeedupExact)
		}
		fmt.Fprintf(w, "  %5d %9.4f %11.3f %9.0f %9.3f %13.0f %10s\n", p.Ef, p.Recall10, p.OneThread.MsPerQuery, p.OneThread.QPS, p.OneThread.P99Ms, p.AllCoresBatch.QPS, vs)
	}
}

// faissOut is faiss_peer.py's report, in the fields of the Go side's.
type faissOut struct {
	Version string `json:"faiss_version"`
	Flat    struct {
		exactReport
		Recall float64 `json:"recall_vs_go_exact@100"`
	} `json:"flat"`
	HNSW hnswReport `json:"hnsw"`
}

func printFaiss(w io.Writer, r *scaleReport) {
	var f faissOut
	if err := json.Unmarshal(r.Faiss, &f); err != nil {
		fmt.Fprintf(w, "\nfaiss: unreadable output: %v\n", err)
		return
	}
	fmt.Fprintf(w, "\nfaiss %s, same vectors; ratios are Go time / faiss time (below 1: Go faster)\n", f.Version)
	e := r.Exact
	row := func(name string, g, fa timing) {
		fmt.Fprintf(w, "  %-26s Go %8.2f ms/q  faiss %8.2f ms/q  ratio %.2f\n", name, g.MsPerQuery, fa.MsPerQuery, g.MsPerQuery/fa.MsPerQuery)
	}
	fmt.Fprintf(w, "exact top-%d (faiss IndexFlatIP, memory %.2f GB, agreement with Go exact %.4f):\n", r.KTop, float64(f.Flat.MemBytes)/1e9, f.Flat.Recall)
	row("1 thread, one at a time", e.OneThread, f.Flat.OneThread)
	row("1 thread, batched", e.OneThreadBatch, f.Flat.OneThreadBatch)
	row("all cores, one at a time", e.AllCores, f.Flat.AllCores)
	row("all cores, batched", e.AllCoresBatch, f.Flat.AllCoresBatch)
	fmt.Fprintf(w, "HNSW (faiss IndexHNSWFlat M=%d efC=%d): build %.1fs (Go %.1fs, ratio %.2f), memory %.2f GB (Go %.2f GB)\n",
		r.M, r.EfC, f.HNSW.BuildS, r.HNSW.BuildS, r.HNSW.BuildS/f.HNSW.BuildS, float64(f.HNSW.MemBytes)/1e9, float64(r.HNSW.MemBytes)/1e9)
	fmt.Fprintf(w, "  %5s %10s %10s %12s %12s %10s %12s\n", "ef", "Go recall", "faiss rec", "Go 1t ms/q", "faiss 1t", "1t ratio", "batch ratio")
	for i, p := range f.HNSW.Sweep {
		if i >= len(r.HNSW.Sweep) {
			break
		}
		g := r.HNSW.Sweep[i]
		fmt.Fprintf(w, "  %5d %10.4f %10.4f %12.3f %12.3f %10.2f %12.2f\n", p.Ef, g.Recall10, p.Recall10, g.OneThread.MsPerQuery, p.OneThread.MsPerQuery,
			g.OneThread.MsPerQuery/p.OneThread.MsPerQuery, g.AllCoresBatch.MsPerQuery/p.AllCoresBatch.MsPerQuery)
	}
}
