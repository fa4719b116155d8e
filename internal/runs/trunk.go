package runs

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"prodsearch/internal/backbone"
	"prodsearch/internal/bundle"
	"prodsearch/internal/describe"
	"prodsearch/internal/imageio"
	"prodsearch/internal/train"
	"prodsearch/internal/vec"
)

// trunkEntry locates one image's trunk output in a view's file.
type trunkEntry struct {
	Off int64 `json:"off"` // in float16 values
	H   int   `json:"h"`
	W   int   `json:"w"`
}

// trunkStore serves cached trunk outputs (float16 on disk, one file per
// view) to fine-tuning: read with ReadAt, so the page cache, not the Go heap,
// holds the gigabyte of feature maps.
type trunkStore struct {
	c     int
	files []*os.File
	idx   [][]trunkEntry // [view][image]
	bytes int64
}

// Views is the number of views of image i (every image has all views).
func (s *trunkStore) Views(i int) int { return len(s.files) }

// Trunk reads image i, view v as C×h×w float32.
func (s *trunkStore) Trunk(i, v int) ([]float32, int, int, error) {
	e := s.idx[v][i]
	n := s.c * e.H * e.W
	raw := make([]byte, 2*n)
	if _, err := s.files[v].ReadAt(raw, 2*e.Off); err != nil {
		return nil, 0, 0, fmt.Errorf("trunk cache view %d image %d: %w", v, i, err)
	}
	out := make([]float32, n)
	for j := range out {
		out[j] = vec.FromHalf(binary.LittleEndian.Uint16(raw[2*j:]))
	}
	return out, e.H, e.W, nil
}

// Close closes the view files.
func (s *trunkStore) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// trunkKey names the cache of one trunk and image list: the model, the cut,
// the describer's view key and the images' paths, sizes and times.
func trunkKey(modelSHA, cut, viewKey string, paths []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", modelSHA, cut, viewKey)
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", p, st.Size(), st.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}

// openTrunkStore returns the trunk outputs of every image and view, running
// the trunk (an in-memory ONNX graph) for views not cached under dir. A view
// is written to a temporary file and renamed with its index, so a killed run
// leaves no half cache. Unreadable images fail the run: the caller passes
// images that the describer already decoded.
func openTrunkStore(ctx context.Context, d *describe.Describer, trunk *backbone.Graph, layout, modelSHA, cut string, c int, dir string, paths []string, views []describe.View, lim imageio.Limits, progress func(done, total int)) (*trunkStore, error) {
	s := &trunkStore{c: c}
	fail := func(err error) (*trunkStore, error) {
		s.Close()
		return nil, err
	}
	for vi, v := range views {
		key, err := trunkKey(modelSHA, cut, d.ViewKey(v), paths)
		if err != nil {
			return fail(err)
		}
		base := filepath.Join(dir, key)
		idx, err := readTrunkIndex(base+".json", len(paths))
		if err != nil {
			if idx, err = writeTrunkView(ctx, d, trunk, layout, c, base, paths, v, lim, func(done int) {
				if progress != nil {
					progress(vi*len(paths)+done, len(views)*len(paths))
				}
			}); err != nil {
				return fail(err)
			}
		}
		f, err := os.Open(base + ".f16")
		if err != nil {
			return fail(err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return fail(err)
		}
		s.files, s.idx, s.bytes = append(s.files, f), append(s.idx, idx), s.bytes+st.Size()
	}
	return s, nil
}

func readTrunkIndex(path string, n int) ([]trunkEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var idx []trunkEntry
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, err
	}
	if len(idx) != n {
		return nil, fmt.Errorf("trunk index %s has %d entries, want %d", path, len(idx), n)
	}
	return idx, nil
}

// writeTrunkView runs the trunk on one view of every image, decoding on a
// second goroutine while ONNX Runtime runs.
func writeTrunkView(ctx context.Context, d *describe.Describer, trunk *backbone.Graph, layout string, c int, base string, paths []string, v describe.View, lim imageio.Limits, progress func(done int)) ([]trunkEntry, error) {
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(base), bundle.TempPrefix+"*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	type prepared struct {
		in   []float32
		h, w int
		err  error
	}
	ch := make(chan prepared, 4)
	var wg sync.WaitGroup
	wg.Add(1)
	stop := make(chan struct{})
	defer func() { close(stop); wg.Wait() }()
	go func() {
		defer wg.Done()
		defer close(ch)
		for _, p := range paths {
			var pr prepared
			img, err := imageio.ReadFile(p, lim)
			if err == nil {
				pr.in, pr.h, pr.w, err = d.ViewTensor(img, v)
			}
			pr.err = err
			if err != nil {
				pr.err = fmt.Errorf("%s: %w", p, err)
			}
			select {
			case ch <- pr:
			case <-stop:
				return
			}
		}
	}()
	idx := make([]trunkEntry, 0, len(paths))
	var off int64
	buf := make([]byte, 0, 1<<20)
	for pr := range ch {
		if pr.err != nil {
			return nil, pr.err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		shape := []int64{1, 3, int64(pr.h), int64(pr.w)}
		if layout == "NHWC" {
			shape = []int64{1, int64(pr.h), int64(pr.w), 3}
		}
		out, err := trunk.Run(ctx, backbone.Tensor{Data: pr.in, Shape: shape})
		if err != nil {
			return nil, err
		}
		t := out[0]
		if len(t.Shape) != 4 || t.Shape[1] != int64(c) {
			return nil, fmt.Errorf("trunk output shape %v, want 1×%d×h×w", t.Shape, c)
		}
		h, w := int(t.Shape[2]), int(t.Shape[3])
		buf = buf[:0]
		for _, f := range t.Data {
			buf = binary.LittleEndian.AppendUint16(buf, vec.Half(f))
		}
		if _, err := tmp.Write(buf); err != nil {
			return nil, err
		}
		idx = append(idx, trunkEntry{Off: off, H: h, W: w})
		off += int64(len(t.Data))
		if progress != nil {
			progress(len(idx))
		}
	}
	if len(idx) != len(paths) {
		return nil, io.ErrUnexpectedEOF
	}
	if err := tmp.Sync(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), base+".f16"); err != nil {
		return nil, err
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return nil, err
	}
	return idx, bundle.WriteFileAtomic(base+".json", data)
}

// subSource views some images of a source under new indices.
type subSource struct {
	src train.TrunkSource
	idx []int
}

func (s subSource) Views(i int) int { return s.src.Views(s.idx[i]) }
func (s subSource) Trunk(i, v int) ([]float32, int, int, error) {
	return s.src.Trunk(s.idx[i], v)
}
