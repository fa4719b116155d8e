package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"time"

	"prodsearch/internal/bundle"
	"prodsearch/internal/index"
	"prodsearch/internal/runs"
	"prodsearch/internal/server"
	"prodsearch/internal/store"
)

// storeBundle picks the bundle for a catalogue store: --bundle when given,
// else the one whose ID the store recorded among the shipped model, the
// frozen default and the checkpoints in the runs dir, so `serve` and `index
// add` need no flag after the first add. A new store gets the shipped model
// (or the frozen default where none ships).
func storeBundle(ef *engineFlags, bundleFlag, storeID string) (bundle.Bundle, error) {
	if bundleFlag != "" {
		return resolveBundleRef(bundleFlag, ef.runsDir)
	}
	ef.shipped = true
	def, err := ef.resolveBundle()
	if err != nil || storeID == "" || def.ID() == storeID {
		return def, err
	}
	ef.shipped = false
	if frozen, err := ef.resolveBundle(); err == nil && frozen.ID() == storeID {
		return frozen, nil
	}
	dir := runs.Dir(ef.runsDir)
	names, _ := runs.Runs(dir)
	for _, n := range names {
		cps, _ := runs.List(dir, n)
		for _, c := range cps {
			if b, err := bundle.Load(c.BundlePath()); err == nil && b.ID() == storeID {
				return b, nil
			}
		}
	}
	return bundle.Bundle{}, fmt.Errorf("the store was filled with bundle %s, which is neither the shipped model, the frozen default nor a checkpoint in %s: pass --bundle", storeID, dir)
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "--store DIR [--index flat|hnsw|auto|weaviate://host:port?...] [--addr HOST:PORT] [--bundle B] [--token T]", stderr)
	ef := addEngineFlags(fs)
	dir := fs.String("store", "", "catalogue store directory (created on first use); it keeps items and images whatever --index says")
	var vectors string
	index.Flag(fs, &vectors, index.KindFlat)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	token := fs.String("token", os.Getenv("PRODSEARCH_TOKEN"), "bearer token required by write endpoints (default $PRODSEARCH_TOKEN)")
	slots := fs.Int("describe-slots", runtime.NumCPU(), "images described at once across requests")
	budget := fs.Int64("decode-budget", 768, "`MiB` of decoded pixels held at once across requests (estimated from each image's header: pixels x bytes per pixel); past it an upload gets 503 with Retry-After, and one that alone needs more gets 413")
	if err := parse(fs, args, "store"); err != nil {
		return err
	}
	// A server describes one photo per request: one ONNX Runtime thread per
	// request with one request per core measured p99 43 ms at 100k
	// references, where two spinning threads per request contend badly.
	threadsSet := false
	fs.Visit(func(f *flag.Flag) { threadsSet = threadsSet || f.Name == "threads" })
	if !threadsSet {
		ef.threads = 1
	}
	var storeID string
	if info, err := store.ReadInfo(*dir); err == nil {
		storeID = info.BundleID
	} else if !errors.Is(err, store.ErrNoStore) {
		return err
	}
	b, err := storeBundle(ef, ef.bundle, storeID)
	if err != nil {
		return err
	}
	eng, err := bundle.Open(b, ef.engineOptions())
	if err != nil {
		return err
	}
	defer eng.Close()
	st, err := store.OpenWith(ctx, *dir, eng.BundleID(), eng.Dim(), store.Options{Vectors: vectors})
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := server.New(server.Config{
		Store: st, Describer: eng, Recipes: eng.Bundle(), Token: *token, DescribeConcurrency: *slots, DecodeBudget: *budget << 20,
		Leaderboard: leaderboardPath(ef.runsDir),
		Logger:      slog.New(slog.NewTextHandler(stderr, nil)),
	})
	if err != nil {
		return err
	}
	info := st.Info()
	fmt.Fprintf(stdout, "serving %s (%d items, bundle %s, %s vectors, %d indexed at start in %v) on http://%s\n",
		*dir, info.Items, eng.BundleID(), info.Vectors, info.Reindexed, info.LoadTime.Round(time.Millisecond), *addr)
	return srv.Run(ctx, *addr)
}
