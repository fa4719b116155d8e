package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"prodsearch/internal/bundle"
	"prodsearch/internal/index"
	"prodsearch/internal/ingest"
	"prodsearch/internal/store"
)

const indexUsage = `usage: prodsearch index <command> --store DIR [--index flat|hnsw|weaviate://...] [flags]

--store DIR keeps items and images; --index chooses where descriptors are
searched (flat by default; hnsw keeps a graph in DIR; weaviate:// a remote
collection that add and remove keep in step).

commands:
  add     describe images and add them (folders, TSV manifests, single files)
  remove  remove items by ID
  list    list items in ID order
  stats   summarise the store

run 'prodsearch index <command> -h' for its flags`

// openDescriber opens the describer for `index add`: bundleFlag is --bundle
// (may be ""), storeID the bundle an existing store recorded ("" for a new
// store), shape the catalogue shape whose recipe says how references are
// described ("" = as the queries). Tests pass a fake; the CLI opens a bundle.
type openDescriber func(ctx context.Context, bundleFlag, storeID, shape string) (store.Describer, error)

func cmdIndex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// `index add` also takes the runtime flags (--models, --ort-lib, ...):
	// runIndex registers them on its flag set, bound to ef.
	ef := addEngineFlags(flag.NewFlagSet("index", flag.ContinueOnError))
	open := func(ctx context.Context, bundleFlag, storeID, shape string) (store.Describer, error) {
		b, err := storeBundle(ef, bundleFlag, storeID)
		if err != nil {
			return nil, err
		}
		if shape != "" {
			eng, err := openRefEngine(b, shape, ef.engineOptions(), stderr)
			if err != nil {
				return nil, err
			}
			if eng != nil {
				return refEngine{eng, b.ID()}, nil
			}
		}
		return bundle.Open(b, ef.engineOptions())
	}
	return runIndex(ctx, args, stdout, stderr, open, ef.addRuntimeFlags)
}

// refEngine describes a catalogue's references as the bundle's recipe for
// its shape says, and is recorded under the bundle's ID: the store's
// queries are described by the bundle itself.
type refEngine struct {
	*bundle.Engine
	id string
}

func (e refEngine) BundleID() string { return e.id }

// runIndex dispatches `index <command>`; runtimeFlags, when set, registers
// the flags open reads on `index add`.
func runIndex(ctx context.Context, args []string, stdout, stderr io.Writer, open openDescriber, runtimeFlags func(*flag.FlagSet)) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, indexUsage)
		return errors.New("index: missing command")
	}
	switch args[0] {
	case "add":
		return indexAdd(ctx, args[1:], stdout, stderr, open, runtimeFlags)
	case "remove", "rm":
		return indexRemove(ctx, args[1:], stdout, stderr)
	case "list", "ls":
		return indexList(ctx, args[1:], stdout, stderr)
	case "stats":
		return indexStats(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, indexUsage)
		return errHelp
	}
	fmt.Fprintln(stderr, indexUsage)
	return fmt.Errorf("index: unknown command %q", args[0])
}

// storeFlags are the flags every index command takes.
type storeFlags struct {
	fs           *flag.FlagSet
	dir, backend string
}

func newStoreFlags(name, synopsis string, stderr io.Writer) *storeFlags {
	sf := &storeFlags{fs: newFlagSet("index "+name, "--store DIR [--index V] "+synopsis, stderr)}
	sf.fs.StringVar(&sf.dir, "store", "", "store `directory` (required): items, images and descriptors")
	index.Flag(sf.fs, &sf.backend, index.KindFlat)
	return sf
}

// parse parses args, positional arguments allowed, and requires --store.
func (sf *storeFlags) parse(args []string) error {
	if err := parseAny(sf.fs, args); err != nil {
		return err
	}
	if sf.dir == "" {
		sf.fs.Usage()
		return errors.New("index: --store is required")
	}
	return nil
}

func (sf *storeFlags) open(ctx context.Context, bundleID string, dim int) (*store.Store, error) {
	return store.OpenWith(ctx, sf.dir, bundleID, dim, store.Options{Vectors: sf.backend})
}

// openExisting parses a command that takes no positional arguments and opens
// the store, which must exist.
func (sf *storeFlags) openExisting(ctx context.Context, args []string) (*store.Store, error) {
	if err := sf.parse(args); err != nil {
		return nil, err
	}
	if err := noArgs(sf.fs); err != nil {
		return nil, err
	}
	return sf.open(ctx, "", 0)
}

func indexAdd(ctx context.Context, args []string, stdout, stderr io.Writer, open openDescriber, runtimeFlags func(*flag.FlagSet)) error {
	sf := newStoreFlags("add", "[flags] (FOLDER | MANIFEST.tsv | IMAGE)...", stderr)
	fs := sf.fs
	bundleFlag := fs.String("bundle", "", "model bundle (default: the one recorded in the store, else the default bundle)")
	label := fs.String("label", "", "label for images that have none from a manifest or class folder")
	ids := fs.String("ids", ingest.IDsName, "item IDs: name (file name without extension) or path (as written in the manifest, or relative to the folder)")
	dataRoot := fs.String("data-root", "", "refuse any image whose path, once '..' and symbolic links are resolved, lies outside this `directory` (default: follow paths wherever they lead)")
	replace := fs.Bool("replace", false, "re-describe and overwrite items already in the store (default: skip them)")
	noImages := fs.Bool("no-images", false, "store descriptors only, not the photos (GET /v1/items/{id}/image then answers 404)")
	batch := fs.Int("batch", 64, "items per transaction; each committed batch is durable, and listed on stderr when that is not a terminal")
	workers := fs.Int("workers", max(1, runtime.GOMAXPROCS(0)/2), "images decoded and described in parallel")
	shape := fs.String("shape", "", "describe the images as the bundle's recipe for a catalogue of this shape says (one: one studio image per product, e.g. at the recipe's reference crop; few; many); empty: as queries are described")
	namesFile := fs.String("names", "", "TSV `file` of label<TAB>product name: each item added with a listed label gets metadata {\"name\": ...}, which the web page shows")
	if runtimeFlags != nil {
		runtimeFlags(fs)
	}
	if err := sf.parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("index add: nothing to add")
	}
	if *batch < 1 || *workers < 1 {
		return errors.New("index add: --batch and --workers must be at least 1")
	}
	if *shape != "" && !slices.Contains(bundle.Shapes, *shape) {
		return fmt.Errorf("index add: --shape %q: want one, few or many", *shape)
	}
	srcs, err := ingest.Collect(fs.Args(), *label, *ids, *dataRoot)
	if err != nil {
		return fmt.Errorf("index add: %w", err)
	}
	var names map[string]string
	if *namesFile != "" {
		if names, err = ingest.ReadNames(*namesFile); err != nil {
			return fmt.Errorf("index add: --names: %w", err)
		}
	}
	recorded := ""
	if info, err := store.ReadInfo(sf.dir); err == nil {
		recorded = info.BundleID
	} else if !errors.Is(err, store.ErrNoStore) {
		return err
	}
	d, err := open(ctx, *bundleFlag, recorded, *shape)
	if err != nil {
		return fmt.Errorf("index add: %w", err)
	}
	if c, ok := d.(io.Closer); ok {
		defer c.Close()
	}
	s, err := sf.open(ctx, d.BundleID(), d.Dim())
	if err != nil {
		return err
	}
	defer s.Close()

	todo := srcs[:0:0]
	for _, src := range srcs {
		if *replace || !s.Has(src.ID) {
			todo = append(todo, src)
		}
	}
	if skipped := len(srcs) - len(todo); skipped > 0 {
		fmt.Fprintf(stderr, "%d of %d images already in the store, skipped (--replace to redo them)\n", skipped, len(srcs))
	}
	st, err := ingest.Add(ctx, s, d, todo, ingest.Options{Batch: *batch, Workers: *workers, Replace: *replace, NoImages: *noImages, Names: names}, stderr)
	fmt.Fprintf(stdout, "added %d, failed %d in %v (%.1f images/s); %s now holds %d items\n",
		st.Added, st.Failed, st.Elapsed.Round(time.Millisecond), float64(st.Added)/max(st.Elapsed.Seconds(), 1e-9), sf.dir, s.Len())
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("index add: interrupted after %d committed items; run the same command again to continue: %w", st.Added, err)
		}
		return fmt.Errorf("index add: %w", err)
	}
	if st.Failed > 0 {
		return fmt.Errorf("index add: %d of %d images could not be added (listed above)", st.Failed, len(todo))
	}
	return nil
}

func indexRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sf := newStoreFlags("remove", "ID...", stderr)
	if err := sf.parse(args); err != nil {
		return err
	}
	fs := sf.fs
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("index remove: no IDs given")
	}
	s, err := sf.open(ctx, "", 0)
	if err != nil {
		return err
	}
	defer s.Close()
	gone, err := s.Remove(ctx, fs.Args()...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %d; %s now holds %d items\n", len(gone), sf.dir, s.Len())
	if missing := len(fs.Args()) - len(gone); missing > 0 {
		found := make(map[string]bool, len(gone))
		for _, id := range gone {
			found[id] = true
		}
		var names []string
		for _, id := range fs.Args() {
			if !found[id] {
				names = append(names, id)
			}
		}
		return fmt.Errorf("index remove: not in the store: %s: %w", strings.Join(names, ", "), store.ErrNotFound)
	}
	return nil
}

func indexList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sf := newStoreFlags("list", "[--offset N] [--limit N] [--label L] [--json]", stderr)
	offset := sf.fs.Int("offset", 0, "items to skip")
	limit := sf.fs.Int("limit", 50, "items to show (0: all)")
	label := sf.fs.String("label", "", "only items with this label")
	asJSON := sf.fs.Bool("json", false, "JSON lines instead of a table")
	s, err := sf.openExisting(ctx, args)
	if err != nil {
		return err
	}
	defer s.Close()
	lim := *limit
	if lim == 0 {
		lim = s.Len()
	}
	items, total, err := s.List(ctx, store.ListOptions{Offset: *offset, Limit: lim, Label: *label})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, it := range items {
			if err := enc.Encode(it); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tFILE\tADDED\tIMAGE")
	for _, it := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d B\n", it.ID, it.Label, it.FileName, it.Added.Local().Format(time.DateTime), it.ImageSize)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "items %d-%d of %d\n", min(*offset+1, total), min(*offset+len(items), total), total)
	return nil
}

func indexStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sf := newStoreFlags("stats", "[--json] [--check]", stderr)
	asJSON := sf.fs.Bool("json", false, "JSON output")
	check := sf.fs.Bool("check", false, "also verify every page and item (reads the whole file)")
	s, err := sf.openExisting(ctx, args)
	if err != nil {
		return err
	}
	defer s.Close()
	info := s.Info()
	var checkErr error
	if *check {
		checkErr = s.Check(ctx)
	}
	if *asJSON {
		out := struct {
			store.Info
			LabelCounts map[string]int `json:"label_counts"`
			Check       string         `json:"check,omitempty"`
		}{Info: info, LabelCounts: s.Labels()}
		if *check {
			out.Check = "ok"
			if checkErr != nil {
				out.Check = checkErr.Error()
			}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
		return checkErr
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "store\t%s\n", info.Dir)
	fmt.Fprintf(tw, "bundle\t%s\n", info.BundleID)
	fmt.Fprintf(tw, "dimension\t%d\n", info.Dim)
	fmt.Fprintf(tw, "items\t%d\n", info.Items)
	fmt.Fprintf(tw, "labels\t%d\n", info.Labels)
	fmt.Fprintf(tw, "file\t%s\n", humanBytes(info.FileBytes))
	fmt.Fprintf(tw, "created\t%s\n", info.Created.Local().Format(time.DateTime))
	fmt.Fprintf(tw, "load time\t%v\n", info.LoadTime.Round(100*time.Microsecond))
	fmt.Fprintf(tw, "vectors\t%s (%d indexed at open)\n", info.Vectors, info.Reindexed)
	if *check {
		res := "ok"
		if checkErr != nil {
			res = checkErr.Error()
		}
		fmt.Fprintf(tw, "check\t%s\n", res)
	}
	counts := s.Labels()
	labels := make([]string, 0, len(counts))
	for l := range counts {
		labels = append(labels, l)
	}
	sort.Slice(labels, func(i, j int) bool {
		return counts[labels[i]] > counts[labels[j]] || counts[labels[i]] == counts[labels[j]] && labels[i] < labels[j]
	})
	if len(labels) > 0 {
		var top []string
		for _, l := range labels[:min(5, len(labels))] {
			top = append(top, fmt.Sprintf("%s (%d)", orNone(l), counts[l]))
		}
		fmt.Fprintf(tw, "largest labels\t%s\n", strings.Join(top, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return checkErr
}

func orNone(label string) string {
	if label == "" {
		return "<none>"
	}
	return label
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}
