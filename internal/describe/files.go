package describe

import (
	"context"
	"fmt"
	"image"
	"runtime"
	"slices"
	"sync"
	"time"

	"prodsearch/internal/cache"
	"prodsearch/internal/imageio"
	"prodsearch/internal/vec"
)

// Store caches backbone descriptors by describer key and content hash;
// *cache.Cache implements it, and nil disables caching.
type Store interface {
	Get(key string, hashes []string) ([][]float32, error)
	Put(key string, hashes []string, vecs [][]float32) error
}

// FileOptions tune DescribeFiles; the zero value decodes with default limits
// on all cores in batches of 16, without a cache.
type FileOptions struct {
	Limits   imageio.Limits
	Cache    Store
	Batch    int                   // images per backbone call
	Workers  int                   // decoding goroutines
	Progress func(done, total int) // called after each batch
}

// Failure is an input that could not be described; batch commands report
// them at the end and go on with the rest.
type Failure struct {
	Path string
	Err  error
}

func (f Failure) Error() string { return fmt.Sprintf("%s: %v", f.Path, f.Err) }

// Stats say where the time went and how much the cache saved.
type Stats struct {
	Timing
	Read, Decode time.Duration // summed over workers
	Cached       int
	Described    int
	Wall         time.Duration
}

// chunk is one batch of files after reading, hashing, the cache lookup of
// every view and decoding of the images that miss a view.
type chunk struct {
	lo     int
	hashes []string
	views  [][][]float32 // [view][image] descriptor; nil where missing
	imgs   []image.Image
	errs   []error
	read   time.Duration
	decode time.Duration
	err    error
}

// DescribeFiles describes every path, in order. Failed files get a nil
// descriptor and a Failure; only context cancellation, a cache or a backbone
// error returns an error. Files of the next batch are read and decoded on
// Workers goroutines while the backbone runs on the current one.
func (d *Describer) DescribeFiles(ctx context.Context, paths []string, opt FileOptions) ([][]float32, []Failure, Stats, error) {
	out, fails, st, err := DescribeFilesWith(ctx, []*Describer{d}, paths, opt)
	if err != nil {
		return nil, nil, st, err
	}
	return out[0], fails, st, nil
}

// DescribeFilesWith is DescribeFiles for several describers at once (an
// ensemble's members): each file is read, hashed and decoded once, however
// many describers need it. out[k][i] is ds[k]'s descriptor of paths[i]; a
// file that fails, fails for all.
func DescribeFilesWith(ctx context.Context, ds []*Describer, paths []string, opt FileOptions) ([][][]float32, []Failure, Stats, error) {
	parts := make([]part, len(ds))
	for k, d := range ds {
		parts[k] = part{D: d, Views: d.Views()}
	}
	perView, fails, st, err := describeFileParts(ctx, paths, parts, opt)
	if err != nil {
		return nil, nil, st, err
	}
	out := make([][][]float32, len(ds))
	for k, d := range ds {
		out[k] = make([][]float32, len(paths))
		for i, vs := range perView[k] {
			if vs == nil {
				continue
			}
			acc := make([]float32, d.Dim())
			for _, v := range vs {
				addTo(acc, v)
			}
			vec.Normalize(acc)
			out[k][i] = acc
		}
	}
	return out, fails, st, nil
}

// DescribeFileViews returns, for every path, the normalised descriptor of
// each requested view (nil for a failed file). Training uses it to get
// augmented views (other scales, mirror images) from the same cache.
func (d *Describer) DescribeFileViews(ctx context.Context, paths []string, views []View, opt FileOptions) ([][][]float32, []Failure, Stats, error) {
	out, fails, st, err := describeFileParts(ctx, paths, []part{{D: d, Views: views}}, opt)
	if err != nil {
		return nil, nil, st, err
	}
	return out[0], fails, st, nil
}

// part is one describer and the views wanted from it (describeFileParts).
type part struct {
	D     *Describer
	Views []View
}

// describeFileParts returns out[k][i][v]: the normalised descriptor of view
// parts[k].Views[v] of paths[i] by parts[k].D (nil for a failed file).
func describeFileParts(ctx context.Context, paths []string, parts []part, opt FileOptions) ([][][][]float32, []Failure, Stats, error) {
	start := time.Now()
	var st Stats
	if opt.Limits == (imageio.Limits{}) {
		opt.Limits = imageio.DefaultLimits()
	}
	if opt.Batch <= 0 {
		opt.Batch = 16
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU()
	}
	if len(parts) == 0 {
		return nil, nil, st, fmt.Errorf("describe: no describers given")
	}
	// keys is every part's view keys end to end; part k's start at offs[k].
	var keys []string
	offs := make([]int, len(parts))
	for k, p := range parts {
		if len(p.Views) == 0 {
			return nil, nil, st, fmt.Errorf("describe: no views requested")
		}
		offs[k] = len(keys)
		for _, vw := range p.Views {
			keys = append(keys, p.D.ViewKey(vw))
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk, 1)
	go func() {
		defer close(chunks)
		for lo := 0; lo < len(paths); lo += opt.Batch {
			ch := load(paths[lo:min(lo+opt.Batch, len(paths))], keys, opt)
			ch.lo = lo
			select {
			case chunks <- ch:
			case <-ctx.Done():
				return
			}
			if ch.err != nil {
				return
			}
		}
	}()

	out := make([][][][]float32, len(parts))
	for k := range out {
		out[k] = make([][][]float32, len(paths))
	}
	var fails []Failure
	done := 0
	for ch := range chunks {
		if ch.err != nil {
			return nil, nil, st, ch.err
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, st, err
		}
		st.Read += ch.read
		st.Decode += ch.decode
		needed := make([]bool, len(ch.hashes))
		for k, p := range parts {
			if err := p.D.fillMissingViews(ctx, &ch, offs[k], p.Views, keys, opt.Cache, &st, needed); err != nil {
				return nil, nil, st, err
			}
		}
		for _, n := range needed {
			if n {
				st.Described++
			}
		}
		for i := range ch.hashes {
			if ch.errs[i] != nil {
				fails = append(fails, Failure{Path: paths[ch.lo+i], Err: ch.errs[i]})
				continue
			}
			for k, p := range parts {
				vs := make([][]float32, len(p.Views))
				for v := range p.Views {
					got := ch.views[offs[k]+v][i]
					if len(got) != p.D.Dim() {
						return nil, nil, st, fmt.Errorf("describe: cached descriptor of %s has %d values, want %d", paths[ch.lo+i], len(got), p.D.Dim())
					}
					vs[v] = got
				}
				out[k][ch.lo+i] = vs
			}
		}
		done += len(ch.hashes)
		if opt.Progress != nil {
			opt.Progress(done, len(paths))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, st, err
	}
	st.Cached = len(paths) - len(fails) - st.Described
	st.Wall = time.Since(start)
	return out, fails, st, nil
}

// fillMissingViews runs the backbone, one scale at a time, on the images of a
// chunk that miss one of views (whose descriptors and keys start at off in
// the chunk's), caches what it computed and marks those images in needed.
func (d *Describer) fillMissingViews(ctx context.Context, ch *chunk, off int, views []View, keys []string, c Store, st *Stats, needed []bool) error {
	scales, flip := []int{}, map[int]bool{}
	for _, vw := range views {
		if !slices.Contains(scales, vw.Scale) {
			scales = append(scales, vw.Scale)
		}
		flip[vw.Scale] = flip[vw.Scale] || vw.Mirror
	}
	for _, s := range scales {
		var idx []int
		for i := range ch.hashes {
			if ch.errs[i] != nil {
				continue
			}
			for v, vw := range views {
				if vw.Scale == s && ch.views[off+v][i] == nil {
					idx = append(idx, i)
					break
				}
			}
		}
		if len(idx) == 0 {
			continue
		}
		imgs := make([]image.Image, len(idx))
		hs := make([]string, len(idx))
		for j, i := range idx {
			imgs[j], hs[j] = ch.imgs[i], ch.hashes[i]
			needed[i] = true
		}
		plain, mirrored, tm, err := d.DescribeScale(ctx, imgs, s, flip[s])
		st.Timing.Add(tm)
		if err != nil {
			return err
		}
		for v, vw := range views {
			if vw.Scale != s {
				continue
			}
			got := plain
			if vw.Mirror {
				got = mirrored
			}
			for j, i := range idx {
				ch.views[off+v][i] = got[j]
			}
			if c != nil {
				if err := c.Put(keys[off+v], hs, got); err != nil {
					return fmt.Errorf("describe: caching: %w", err)
				}
			}
		}
	}
	return nil
}

// load reads and hashes a batch of files, looks every view up in the cache,
// and decodes the images that miss one.
func load(paths []string, keys []string, opt FileOptions) chunk {
	n := len(paths)
	ch := chunk{hashes: make([]string, n), imgs: make([]image.Image, n), errs: make([]error, n), views: make([][][]float32, len(keys))}
	data := make([][]byte, n)
	reads := make([]time.Duration, n)
	decodes := make([]time.Duration, n)
	parallel(n, opt.Workers, func(i int) {
		t0 := time.Now()
		data[i], ch.errs[i] = imageio.ReadBytes(paths[i], opt.Limits.MaxBytes)
		if ch.errs[i] == nil {
			ch.hashes[i] = cache.ContentHash(data[i])
		}
		reads[i] = time.Since(t0)
	})
	for v, k := range keys {
		ch.views[v] = make([][]float32, n)
		if opt.Cache == nil {
			continue
		}
		if ch.views[v], ch.err = opt.Cache.Get(k, ch.hashes); ch.err != nil {
			ch.err = fmt.Errorf("describe: cache lookup: %w", ch.err)
			return ch
		}
	}
	parallel(n, opt.Workers, func(i int) {
		if ch.errs[i] != nil {
			return
		}
		for v := range keys {
			if ch.views[v][i] == nil {
				t0 := time.Now()
				ch.imgs[i], ch.errs[i] = imageio.Decode(data[i], opt.Limits)
				decodes[i] = time.Since(t0)
				return
			}
		}
	})
	for i := range reads {
		ch.read += reads[i]
		ch.decode += decodes[i]
	}
	return ch
}

// parallel runs f(0..n-1) on up to w goroutines.
func parallel(n, w int, f func(i int)) {
	if w > n {
		w = n
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
