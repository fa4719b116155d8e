package describe

import (
	"context"
	"fmt"
	"image"
	"os"
	"runtime"
	"sync"
	"time"

	"prodsearch/internal/cache"
	"prodsearch/internal/imageio"
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

// chunk is one batch of files after reading, hashing, the cache lookup and
// decoding of the misses.
type chunk struct {
	lo     int
	hashes []string
	vecs   [][]float32 // cache hits; nil where missing
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk, 1)
	go func() {
		defer close(chunks)
		for lo := 0; lo < len(paths); lo += opt.Batch {
			ch := d.load(paths[lo:min(lo+opt.Batch, len(paths))], opt)
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

	out := make([][]float32, len(paths))
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
		var todo []int
		var imgs []image.Image
		for i := range ch.hashes {
			switch {
			case ch.errs[i] != nil:
				fails = append(fails, Failure{Path: paths[ch.lo+i], Err: ch.errs[i]})
			case ch.vecs[i] != nil:
				if len(ch.vecs[i]) != d.Dim() {
					return nil, nil, st, fmt.Errorf("describe: cached descriptor of %s has %d values, want %d", paths[ch.lo+i], len(ch.vecs[i]), d.Dim())
				}
				out[ch.lo+i] = ch.vecs[i]
				st.Cached++
			default:
				todo = append(todo, i)
				imgs = append(imgs, ch.imgs[i])
			}
		}
		if len(imgs) > 0 {
			vecs, tm, err := d.DescribeBatch(ctx, imgs)
			st.Timing.Add(tm)
			if err != nil {
				return nil, nil, st, err
			}
			hs := make([]string, len(todo))
			for j, i := range todo {
				out[ch.lo+i] = vecs[j]
				hs[j] = ch.hashes[i]
			}
			if opt.Cache != nil {
				if err := opt.Cache.Put(d.key, hs, vecs); err != nil {
					return nil, nil, st, fmt.Errorf("describe: caching: %w", err)
				}
			}
			st.Described += len(imgs)
		}
		done += len(ch.hashes)
		if opt.Progress != nil {
			opt.Progress(done, len(paths))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, st, err
	}
	st.Wall = time.Since(start)
	return out, fails, st, nil
}

// load reads and hashes a batch of files, looks them up in the cache, and
// decodes the misses.
func (d *Describer) load(paths []string, opt FileOptions) chunk {
	n := len(paths)
	ch := chunk{hashes: make([]string, n), imgs: make([]image.Image, n), errs: make([]error, n)}
	data := make([][]byte, n)
	reads := make([]time.Duration, n)
	decodes := make([]time.Duration, n)
	parallel(n, opt.Workers, func(i int) {
		t0 := time.Now()
		data[i], ch.errs[i] = readLimited(paths[i], opt.Limits.MaxBytes)
		if ch.errs[i] == nil {
			ch.hashes[i] = cache.ContentHash(data[i])
		}
		reads[i] = time.Since(t0)
	})
	if opt.Cache != nil {
		ch.vecs, ch.err = opt.Cache.Get(d.key, ch.hashes)
		if ch.err != nil {
			ch.err = fmt.Errorf("describe: cache lookup: %w", ch.err)
			return ch
		}
	} else {
		ch.vecs = make([][]float32, n)
	}
	parallel(n, opt.Workers, func(i int) {
		if ch.errs[i] != nil || ch.vecs[i] != nil {
			return
		}
		t0 := time.Now()
		ch.imgs[i], ch.errs[i] = imageio.Decode(data[i], opt.Limits)
		decodes[i] = time.Since(t0)
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

// readLimited reads a file, refusing one over max bytes before reading it.
func readLimited(path string, maxBytes int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if maxBytes > 0 && st.Size() > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", imageio.ErrTooLarge, st.Size(), maxBytes)
	}
	return os.ReadFile(path)
}
