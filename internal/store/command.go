package store

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"prodsearch/internal/dataset"
	"prodsearch/internal/imageio"
	"prodsearch/internal/index"
	"prodsearch/internal/progress"
)

// CommandEnv is what `prodsearch index ...` needs from the CLI.
type CommandEnv struct {
	Stdout, Stderr io.Writer
	// NewDescriber opens the describer for `index add`. bundleFlag is the
	// --bundle value (may be ""); storeBundleID is the bundle recorded in an
	// existing store ("" for a new one), so the CLI can pick the matching
	// bundle when the flag is omitted. A describer that is an io.Closer is
	// closed when the command ends.
	NewDescriber func(ctx context.Context, bundleFlag, storeBundleID string) (Describer, error)
	// DescriberFlags, when set, registers on `index add`'s flags the CLI's
	// own flags that NewDescriber reads (model directory, runtime library,
	// threads), so they are given like on every other command.
	DescriberFlags func(*flag.FlagSet)
}

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

// RunIndexCommand runs `prodsearch index <args...>`; args start with the
// subcommand. It returns flag.ErrHelp after printing help for -h.
func RunIndexCommand(ctx context.Context, args []string, env CommandEnv) error {
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if len(args) == 0 {
		fmt.Fprintln(env.Stderr, indexUsage)
		return errors.New("index: missing command")
	}
	switch args[0] {
	case "add":
		return runAdd(ctx, args[1:], env)
	case "remove", "rm":
		return runRemove(ctx, args[1:], env)
	case "list", "ls":
		return runList(ctx, args[1:], env)
	case "stats":
		return runStats(ctx, args[1:], env)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(env.Stdout, indexUsage)
		return flag.ErrHelp
	}
	fmt.Fprintln(env.Stderr, indexUsage)
	return fmt.Errorf("index: unknown command %q", args[0])
}

// storeFlags are the flags every index command takes.
type storeFlags struct {
	dir, vectors string
}

func newFlagSet(name, usage string, env CommandEnv) (*flag.FlagSet, *storeFlags) {
	fs := flag.NewFlagSet("prodsearch index "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	sf := &storeFlags{}
	fs.StringVar(&sf.dir, "store", "", "store `directory` (required): items, images and descriptors")
	index.Flag(fs, &sf.vectors, index.KindFlat)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: prodsearch index %s --store DIR [--index V] %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs, sf
}

func parse(fs *flag.FlagSet, sf *storeFlags, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if sf.dir == "" {
		fs.Usage()
		return errors.New("index: --store is required")
	}
	return nil
}

func (sf *storeFlags) open(ctx context.Context, bundleID string, dim int) (*Store, error) {
	return OpenWith(ctx, sf.dir, bundleID, dim, Options{Vectors: sf.vectors})
}

// source is one image to add.
type source struct {
	id, path, label string
}

// RefID is the reference ID of an image file: its name without directory or
// extension, as ranking files expect.
func RefID(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// ID schemes for `index add --ids`.
const (
	// IDsName is the file name without directory or extension, what
	// ranking files use; it needs unique names across the input.
	IDsName = "name"
	// IDsPath is the dataset's ID: the path as written in a manifest, or
	// the path relative to a class-folder root; unique when names repeat.
	IDsPath = "path"
)

// collect expands folders, manifests and single files into images, and
// refuses two files that would get the same ID.
func collect(args []string, label, ids, root string) ([]source, error) {
	var out []source
	from := map[string]string{}
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("index add: %w", err)
		}
		var items []dataset.Item
		if fi.Mode().IsRegular() && dataset.IsImage(a) {
			if root != "" {
				if err := dataset.Confine(root, a); err != nil {
					return nil, fmt.Errorf("index add: %w", err)
				}
			}
			items = []dataset.Item{{ID: a, Path: a}}
		} else {
			set, err := dataset.LoadWith(a, dataset.Options{Root: root})
			if err != nil {
				return nil, fmt.Errorf("index add: %w", err)
			}
			items = set.Items
		}
		for _, it := range items {
			s := source{id: RefID(it.Path), path: it.Path, label: it.Label}
			if ids == IDsPath {
				s.id = it.ID
			}
			if s.label == "" {
				s.label = label
			}
			if err := ValidateID(s.id); err != nil {
				return nil, fmt.Errorf("index add: %s: %w", it.Path, err)
			}
			if prev, dup := from[s.id]; dup {
				hint := "rename one or add them to separate stores"
				if ids == IDsName {
					hint = "use --ids path to name items by their path"
				}
				return nil, fmt.Errorf("index add: %s and %s would both get ID %q; %s", prev, it.Path, s.id, hint)
			}
			from[s.id] = it.Path
			out = append(out, s)
		}
	}
	return out, nil
}

func runAdd(ctx context.Context, args []string, env CommandEnv) error {
	fs, sf := newFlagSet("add", "[flags] (FOLDER | MANIFEST.tsv | IMAGE)...", env)
	bundleFlag := fs.String("bundle", "", "model bundle (default: the one recorded in the store, else the default bundle)")
	label := fs.String("label", "", "label for images that have none from a manifest or class folder")
	ids := fs.String("ids", IDsName, "item IDs: name (file name without extension) or path (as written in the manifest, or relative to the folder)")
	dataRoot := fs.String("data-root", "", "refuse any image whose path, once '..' and symbolic links are resolved, lies outside this `directory` (default: follow paths wherever they lead)")
	replace := fs.Bool("replace", false, "re-describe and overwrite items already in the store (default: skip them)")
	noImages := fs.Bool("no-images", false, "store descriptors only, not the photos (GET /v1/items/{id}/image then answers 404)")
	batch := fs.Int("batch", 64, "items per transaction; each committed batch is durable, and listed on stderr when that is not a terminal")
	workers := fs.Int("workers", max(1, runtime.GOMAXPROCS(0)/2), "images decoded and described in parallel")
	if env.DescriberFlags != nil {
		env.DescriberFlags(fs)
	}
	if err := parse(fs, sf, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("index add: nothing to add")
	}
	if *ids != IDsName && *ids != IDsPath {
		return fmt.Errorf("index add: --ids %q: want %s or %s", *ids, IDsName, IDsPath)
	}
	if *batch < 1 || *workers < 1 {
		return errors.New("index add: --batch and --workers must be at least 1")
	}
	if env.NewDescriber == nil {
		return errors.New("index add: no describer available in this build")
	}
	srcs, err := collect(fs.Args(), *label, *ids, *dataRoot)
	if err != nil {
		return err
	}
	recorded := ""
	if info, err := ReadInfo(sf.dir); err == nil {
		recorded = info.BundleID
	} else if !errors.Is(err, ErrNoStore) {
		return err
	}
	d, err := env.NewDescriber(ctx, *bundleFlag, recorded)
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
		if *replace || !s.Has(src.id) {
			todo = append(todo, src)
		}
	}
	if skipped := len(srcs) - len(todo); skipped > 0 {
		fmt.Fprintf(env.Stderr, "%d of %d images already in the store, skipped (--replace to redo them)\n", skipped, len(srcs))
	}
	st, err := addAll(ctx, s, d, todo, addConfig{batch: *batch, workers: *workers, replace: *replace, noImages: *noImages}, env.Stderr)
	fmt.Fprintf(env.Stdout, "added %d, failed %d in %v (%.1f images/s); %s now holds %d items\n",
		st.added, st.failed, st.elapsed.Round(time.Millisecond), float64(st.added)/max(st.elapsed.Seconds(), 1e-9), sf.dir, s.Len())
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("index add: interrupted after %d committed items; run the same command again to continue: %w", st.added, err)
		}
		return fmt.Errorf("index add: %w", err)
	}
	if st.failed > 0 {
		return fmt.Errorf("index add: %d of %d images could not be added (listed above)", st.failed, len(todo))
	}
	return nil
}

type addConfig struct {
	batch, workers    int
	replace, noImages bool
}

type addStats struct {
	added, failed int
	elapsed       time.Duration
}

type described struct {
	entry Entry
	path  string
	err   error
}

// addAll decodes and describes in parallel, outside any store lock, and
// commits in batches from one goroutine, so only whole committed batches
// count as added.
func addAll(ctx context.Context, s *Store, d Describer, srcs []source, cfg addConfig, errw io.Writer) (addStats, error) {
	start := time.Now()
	var st addStats
	bar := progress.New(errw, "index add")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan source)
	results := make(chan described, cfg.workers)
	lim := imageio.DefaultLimits()
	go func() {
		defer close(jobs)
		for _, src := range srcs {
			select {
			case jobs <- src:
			case <-ctx.Done():
				return
			}
		}
	}()
	done := make(chan struct{})
	for range cfg.workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for src := range jobs {
				e, err := describeFile(ctx, d, src, lim, cfg.noImages)
				results <- described{entry: e, path: src.path, err: err}
			}
		}()
	}
	go func() {
		for range cfg.workers {
			<-done
		}
		close(results)
	}()

	var pending []Entry
	var commitErr error
	commit := func() {
		if len(pending) == 0 || commitErr != nil {
			return
		}
		// A commit in progress finishes even when ctx is cancelled: the
		// batch is already described and the cost is one fsync.
		if err := s.Add(context.WithoutCancel(ctx), pending, AddOptions{Replace: cfg.replace}); err != nil {
			commitErr = err
			cancel()
			return
		}
		st.added += len(pending)
		if bar == nil {
			// Without a terminal (logs, CI, supervisors) each durable batch
			// gets a receipt: after a crash these IDs are known to be stored.
			// IDs are quoted because they may contain spaces.
			var ids strings.Builder
			for _, e := range pending {
				ids.WriteString(" " + strconv.Quote(e.ID))
			}
			fmt.Fprintf(errw, "committed %d items (%d in all):%s\n", len(pending), st.added, ids.String())
		}
		pending = pending[:0]
	}
	seen := 0
	for r := range results {
		seen++
		if r.err != nil {
			if ctx.Err() == nil {
				st.failed++
				fmt.Fprintf(errw, "\rskip %s: %v\n", r.path, r.err)
			}
		} else {
			pending = append(pending, r.entry)
			if len(pending) >= cfg.batch {
				commit()
			}
		}
		bar.Update(seen, len(srcs))
	}
	commit()
	st.elapsed = time.Since(start)
	if commitErr != nil {
		return st, commitErr
	}
	return st, ctx.Err()
}

func describeFile(ctx context.Context, d Describer, src source, lim imageio.Limits, noImage bool) (Entry, error) {
	data, err := imageio.ReadBytes(src.path, lim.MaxBytes)
	if err != nil {
		return Entry{}, err
	}
	img, err := imageio.Decode(data, lim)
	if err != nil {
		return Entry{}, err
	}
	vec, err := d.Describe(ctx, img)
	if err != nil {
		return Entry{}, fmt.Errorf("describe: %w", err)
	}
	e := Entry{ID: src.id, Label: src.label, FileName: filepath.Base(src.path), Vector: vec}
	if !noImage {
		e.Image = data
	}
	return e, nil
}

func runRemove(ctx context.Context, args []string, env CommandEnv) error {
	fs, sf := newFlagSet("remove", "ID...", env)
	if err := parse(fs, sf, args); err != nil {
		return err
	}
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
	fmt.Fprintf(env.Stdout, "removed %d; %s now holds %d items\n", len(gone), sf.dir, s.Len())
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
		return fmt.Errorf("index remove: not in the store: %s: %w", strings.Join(names, ", "), ErrNotFound)
	}
	return nil
}

func runList(ctx context.Context, args []string, env CommandEnv) error {
	fs, sf := newFlagSet("list", "[--offset N] [--limit N] [--label L] [--json]", env)
	offset := fs.Int("offset", 0, "items to skip")
	limit := fs.Int("limit", 50, "items to show (0: all)")
	label := fs.String("label", "", "only items with this label")
	asJSON := fs.Bool("json", false, "JSON lines instead of a table")
	if err := parse(fs, sf, args); err != nil {
		return err
	}
	s, err := sf.open(ctx, "", 0)
	if err != nil {
		return err
	}
	defer s.Close()
	lim := *limit
	if lim == 0 {
		lim = s.Len()
	}
	items, total, err := s.List(ctx, ListOptions{Offset: *offset, Limit: lim, Label: *label})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		for _, it := range items {
			if err := enc.Encode(it); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tFILE\tADDED\tIMAGE")
	for _, it := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d B\n", it.ID, it.Label, it.FileName, it.Added.Local().Format(time.DateTime), it.ImageSize)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "items %d-%d of %d\n", min(*offset+1, total), min(*offset+len(items), total), total)
	return nil
}

func runStats(ctx context.Context, args []string, env CommandEnv) error {
	fs, sf := newFlagSet("stats", "[--json] [--check]", env)
	asJSON := fs.Bool("json", false, "JSON output")
	check := fs.Bool("check", false, "also verify every page and item (reads the whole file)")
	if err := parse(fs, sf, args); err != nil {
		return err
	}
	s, err := sf.open(ctx, "", 0)
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
			Info
			LabelCounts map[string]int `json:"label_counts"`
			Check       string         `json:"check,omitempty"`
		}{Info: info, LabelCounts: s.Labels()}
		if *check {
			out.Check = "ok"
			if checkErr != nil {
				out.Check = checkErr.Error()
			}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
		return checkErr
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
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
