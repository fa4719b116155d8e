// bench load measures search throughput and latency over HTTP on
// loopback, split into the server's decode, describe and search time.
//
// By default it builds everything in-process: a temporary store holding the
// GroceryStore references (described by the colour-histogram stand-in, or
// by a real backbone with -backbone) plus synthetic descriptors up to -refs,
// a server on 127.0.0.1, and clients posting the query photos.
//
//	go run ./cmd/bench load -refs 2626,100000 -c 1,4
//	go run ./cmd/bench load -backbone coral_mnv1 -refs 100000
//
// Against a running `prodsearch serve` (store prepared beforehand):
//
//	prodsearch index add --store S --ids path ../shared/data/grocerystore/splits/reference.tsv
//	go run ./cmd/bench load -prepare S -refs 100000        # pads S with synthetic descriptors
//	prodsearch serve --store S --addr 127.0.0.1:8080 &
//	go run ./cmd/bench load -url http://127.0.0.1:8080 -c 1,4

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"prodsearch/internal/bundle"
	"prodsearch/internal/dataset"
	"prodsearch/internal/index"
	"prodsearch/internal/ingest"
	"prodsearch/internal/server"
	"prodsearch/internal/store"
	"prodsearch/internal/store/storetest"
	"prodsearch/internal/vec/vectest"
)

type loadOptions struct {
	url        string
	prepare    string
	refs       []int
	conc       []int
	n          int
	k          int
	dim        int
	backbone   string
	threads    int
	vectors    string
	references string
	queries    string
	jsonOut    string
}

func loadCmd(fs *flag.FlagSet) runFunc {
	var o loadOptions
	splits := filepath.Join("..", "shared", "data", "grocerystore", "splits")
	refsFlag := fs.String("refs", "2626,100000", "comma-separated reference counts to test (real references first, then synthetic descriptors)")
	concFlag := fs.String("c", "1,4", "comma-separated client concurrency levels")
	fs.StringVar(&o.url, "url", "", "test a running server instead of an in-process one")
	fs.StringVar(&o.prepare, "prepare", "", "pad the store in this directory with synthetic descriptors up to -refs, then exit")
	fs.IntVar(&o.n, "n", 1000, "measured requests per concurrency level (after 50 warm-up requests)")
	fs.IntVar(&o.k, "k", 10, "results per search")
	fs.IntVar(&o.dim, "dim", 1280, "descriptor length of the stand-in describer")
	fs.StringVar(&o.backbone, "backbone", "", "describe with this builtin backbone (ONNX) instead of the stand-in")
	fs.IntVar(&o.threads, "threads", 0, "ONNX Runtime intra-op threads per describe (0 = all cores)")
	index.Flag(fs, &o.vectors, index.KindFlat) // the in-process store's, as serve's default
	fs.StringVar(&o.references, "references", filepath.Join(splits, "reference.tsv"), "real reference photos (TSV manifest)")
	fs.StringVar(&o.queries, "queries", filepath.Join(splits, "query.tsv"), "query photos (TSV manifest)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	return func(ctx context.Context, stdout io.Writer) error {
		var err error
		if o.refs, err = parseInts(*refsFlag); err != nil {
			return fmt.Errorf("-refs: %w", err)
		}
		if o.conc, err = parseInts(*concFlag); err != nil {
			return fmt.Errorf("-c: %w", err)
		}
		if o.prepare != "" {
			return prepare(ctx, o.prepare, slices.Max(o.refs), stdout)
		}
		queries, err := loadQueries(o.queries)
		if err != nil {
			return err
		}
		var rs []loadResult
		if o.url != "" {
			rs, err = measureLevels(ctx, o, o.url, queries, -1, "", nil, stdout)
		} else {
			rs, err = inProcess(ctx, o, queries, stdout)
		}
		if err != nil {
			return err
		}
		return writeJSON(o.jsonOut, rs)
	}
}

// measureLevels measures the server at url at each -c concurrency level,
// appending to out; refs and bundle label the results (refs -1: remote).
func measureLevels(ctx context.Context, o loadOptions, url string, queries []loadQuery, refs int, bundle string, out []loadResult, stdout io.Writer) ([]loadResult, error) {
	for _, c := range o.conc {
		r, err := measureLoad(ctx, url, queries, c, o.n, o.k)
		if err != nil {
			return nil, err
		}
		r.Refs, r.Bundle = refs, bundle
		r.print(stdout)
		out = append(out, r)
	}
	return out, nil
}

type loadQuery struct {
	label string
	data  []byte
}

// loadQueries reads the photos a manifest (or class folder) lists.
func loadQueries(path string) ([]loadQuery, error) {
	set, err := dataset.Load(path)
	if err != nil {
		return nil, fmt.Errorf("queries: %w", err)
	}
	qs := make([]loadQuery, 0, len(set.Items))
	for _, it := range set.Items {
		data, err := os.ReadFile(it.Path)
		if err != nil {
			return nil, fmt.Errorf("queries: %w", err)
		}
		qs = append(qs, loadQuery{label: it.Label, data: data})
	}
	if len(qs) == 0 {
		return nil, errors.New("queries: none")
	}
	return qs, nil
}

// inProcess builds one store and grows it through the -refs sizes, serving
// it on loopback and measuring at each size and concurrency.
func inProcess(ctx context.Context, o loadOptions, queries []loadQuery, stdout io.Writer) ([]loadResult, error) {
	var d store.Describer = storetest.NewColourDescriber(o.dim)
	if o.backbone != "" {
		b, err := bundle.Default(o.backbone)
		if err != nil {
			return nil, err
		}
		eng, err := bundle.Open(b, bundle.Options{Threads: o.threads})
		if err != nil {
			return nil, err
		}
		defer eng.Close()
		d = eng
	}
	tmp, err := os.MkdirTemp("", "prodsearch-loadtest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "store")

	t0 := time.Now()
	if err := fill(ctx, dir, d, o.references); err != nil {
		return nil, fmt.Errorf("indexing references: %w", err)
	}
	fmt.Fprintf(stdout, "indexed the real references in %v with %s\n", time.Since(t0).Round(time.Millisecond), d.BundleID())

	var out []loadResult
	for _, n := range o.refs {
		if err := prepare(ctx, dir, n, stdout); err != nil {
			return nil, err
		}
		st, err := store.OpenWith(ctx, dir, d.BundleID(), d.Dim(), store.Options{Vectors: o.vectors})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "opened %d references in %v (%s index)\n", st.Len(), st.Info().LoadTime.Round(time.Millisecond), st.Info().Vectors)
		srv, err := server.New(server.Config{Store: st, Describer: d, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			st.Close()
			return nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			st.Close()
			return nil, err
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(sctx, ln) }()
		out, err = measureLevels(ctx, o, "http://"+ln.Addr().String(), queries, st.Len(), d.BundleID(), out, stdout)
		cancel()
		<-done
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fill adds the photos a manifest lists to a new store at dir, the way
// `prodsearch index add --ids path` does.
func fill(ctx context.Context, dir string, d store.Describer, manifest string) error {
	srcs, err := ingest.Collect([]string{manifest}, "", ingest.IDsPath, "")
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, dir, d.BundleID(), d.Dim())
	if err != nil {
		return err
	}
	_, err = ingest.Add(ctx, st, d, srcs, ingest.Options{Batch: 64, Workers: runtime.GOMAXPROCS(0)}, os.Stderr)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return err
}

// prepare pads the store in dir with random unit descriptors (label
// "synthetic", no image) until it holds n items. They cost a search what
// real descriptors cost; being random, they rarely rank high.
func prepare(ctx context.Context, dir string, n int, stdout io.Writer) error {
	st, err := store.Open(ctx, dir, "", 0)
	if err != nil {
		return err
	}
	defer st.Close()
	have := st.Len()
	if have >= n {
		return nil
	}
	t0 := time.Now()
	r := rand.New(rand.NewPCG(uint64(have), uint64(n)))
	dim := st.Dim()
	const batch = 2000
	for i := have; i < n; {
		es := make([]store.Entry, 0, min(batch, n-i))
		for ; i < n && len(es) < batch; i++ {
			es = append(es, store.Entry{ID: fmt.Sprintf("synthetic-%07d", i), Label: "synthetic", Vector: vectest.Unit(r, dim)})
		}
		if err := st.Add(ctx, es, store.AddOptions{}); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "added %d synthetic descriptors in %v; %s holds %d\n", n-have, time.Since(t0).Round(time.Millisecond), dir, st.Len())
	return nil
}

// result is one measured configuration; durations in milliseconds.
type loadResult struct {
	Refs        int                `json:"refs"`
	Bundle      string             `json:"bundle,omitempty"`
	Concurrency int                `json:"concurrency"`
	Requests    int                `json:"requests"`
	Errors      int                `json:"errors"`
	RPS         float64            `json:"requests_per_second"`
	Top1Label   float64            `json:"top1_label_agreement"`
	Latency     map[string]summary `json:"latency_ms"`
}

var loadStages = []string{"client", "server", "decode", "queue", "resize", "describe", "search"}

func (r loadResult) print(w io.Writer) {
	refs := strconv.Itoa(r.Refs)
	if r.Refs < 0 {
		refs = "(remote)"
	}
	fmt.Fprintf(w, "\nreferences %s, concurrency %d: %d requests, %d errors, %.1f req/s, top-1 label agreement %.0f%%\n",
		refs, r.Concurrency, r.Requests, r.Errors, r.RPS, 100*r.Top1Label)
	fmt.Fprintf(w, "  %-9s %8s %8s %8s %8s  (ms)\n", "", "p50", "p95", "p99", "mean")
	for _, s := range loadStages {
		l := r.Latency[s]
		fmt.Fprintf(w, "  %-9s %8.2f %8.2f %8.2f %8.2f\n", s, l.P50, l.P95, l.P99, l.Mean)
	}
}

type loadSample struct {
	client float64
	timing server.Timing
	top1   bool
	err    error
}

// measure posts n raw-body searches from c clients after a warm-up.
func measureLoad(ctx context.Context, url string, queries []loadQuery, c, n, k int) (loadResult, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c}, Timeout: time.Minute}
	one := func(q loadQuery) loadSample {
		t0 := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/v1/search?k=%d", url, k), bytes.NewReader(q.data))
		if err != nil {
			return loadSample{err: err}
		}
		req.Header.Set("Content-Type", "image/jpeg")
		resp, err := client.Do(req)
		if err != nil {
			return loadSample{err: err}
		}
		defer resp.Body.Close()
		var sr server.SearchResponse
		if err := json.NewDecoder(resp.Body).Decode(&sr); err != nil || resp.StatusCode != http.StatusOK {
			return loadSample{err: fmt.Errorf("status %d: %v", resp.StatusCode, err)}
		}
		return loadSample{client: float64(time.Since(t0).Microseconds()) / 1000, timing: sr.TimingMS,
			top1: len(sr.Results) > 0 && sr.Results[0].Label == q.label}
	}
	for i := range 50 {
		if s := one(queries[i%len(queries)]); s.err != nil {
			return loadResult{}, fmt.Errorf("warm-up: %w", s.err)
		}
	}
	samples := make([]loadSample, n)
	t0 := time.Now()
	parallelFor(n, c, func(i int) {
		if ctx.Err() == nil {
			samples[i] = one(queries[i%len(queries)])
		}
	})
	elapsed := time.Since(t0)
	if err := ctx.Err(); err != nil {
		return loadResult{}, err
	}
	r := loadResult{Concurrency: c, Requests: n, RPS: float64(n) / elapsed.Seconds(), Latency: map[string]summary{}}
	cols := map[string][]float64{}
	top1 := 0
	for _, s := range samples {
		if s.err != nil {
			r.Errors++
			continue
		}
		if s.top1 {
			top1++
		}
		for name, v := range map[string]float64{"client": s.client, "server": s.timing.Total, "decode": s.timing.Decode,
			"queue": s.timing.Queue, "resize": s.timing.Resize, "describe": s.timing.Describe, "search": s.timing.Search} {
			cols[name] = append(cols[name], v)
		}
	}
	if ok := n - r.Errors; ok > 0 {
		r.Top1Label = float64(top1) / float64(ok)
	}
	for _, s := range loadStages {
		r.Latency[s] = summarise(cols[s])
	}
	if r.Errors > 0 {
		for _, s := range samples {
			if s.err != nil {
				fmt.Fprintln(os.Stderr, "first error:", s.err)
				break
			}
		}
	}
	return r, nil
}
