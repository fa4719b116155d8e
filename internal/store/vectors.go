package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"prodsearch/internal/index"
)

// The vector index a store searches is derived from the descriptors in
// bbolt and can always be rebuilt from them; bbolt alone defines what is
// acknowledged. Writes commit to bbolt first and then update the index, so
// an index update that fails after the commit is reported (ErrVectorIndex)
// and repaired the next time the store is opened:
//
//   - flat is rebuilt from bbolt at every Open;
//   - hnsw reloads GraphFile only when the graph saved there was written at
//     the store's current write sequence (a counter every Add and Remove
//     transaction bumps in the meta bucket) with the recorded size, and
//     otherwise rebuilds it; the graph is saved at Close and after a rebuild,
//     so after a crash the next Open rebuilds;
//   - a weaviate collection lives elsewhere, so each write also journals its
//     IDs in bbolt, in the same transaction; a journaled ID is cleared by a
//     later write once the collection has it, and Open replays whatever is
//     left (put if stored, delete if not). Open re-imports everything when
//     the collection's count differs from the store's, or when the store was
//     written without the collection (another --index) since last synced.
//
// One collection must serve one store: objects another store put there are
// never returned (hits unknown to bbolt are dropped), but they are counted.

// GraphFile is the HNSW graph saved next to FileName.
const GraphFile = "vectors.hnsw"

// ErrVectorIndex reports items committed to the catalogue that the vector
// index could not take; they are durable and become searchable once the
// store is reopened.
var ErrVectorIndex = errors.New("vector index out of step with the catalogue")

var (
	bucketPending = []byte("vector-pending") // IDs the remote index may not have yet
	keyGraph      = []byte("hnsw")           // "seq size" of the saved graph
	keyRemoteSeq  = []byte("remote-seq")     // write sequence the remote journal covers from
)

// Options choose how an opened store searches.
type Options struct {
	// Vectors selects the vector index, an index.Kind spec: "" or "flat",
	// "hnsw" (its graph saved in DIR/GraphFile), "auto" (flat or hnsw by the
	// number of items at open, see index.Resolve), or a weaviate:// URL (see
	// index.ParseWeaviateURL).
	Vectors string
	// HNSW tunes a graph built from scratch; a saved graph keeps its own
	// parameters except Workers.
	HNSW index.HNSWConfig

	// openRemote replaces index.OpenURL in tests.
	openRemote func(ctx context.Context, rawURL string, dim int) (index.Index, error)
	// autoScale multiplies the item count auto is resolved with, so that
	// tests cross index.AutoHNSWMin with a small store (0 = 1).
	autoScale int
}

func (o Options) kind() (string, error) {
	k, err := index.Kind(o.Vectors)
	if err != nil {
		return "", fmt.Errorf("store: %w: %w", err, ErrInvalid)
	}
	return k, nil
}

// localIndex is an in-process index whose hit positions name IDs, so the
// label filter runs inside the search. Writes to it hold Store.mu.
type localIndex interface {
	Add(id string, vec []float32) error
	Remove(id string) bool
	Search(ctx context.Context, q []float32, k int, filter func(i int) bool) ([]index.Hit, error)
	ID(i int) string
}

// remoteIndex is a server-side index that keeps labels and filters on them
// itself (index.Weaviate). It is called without Store.mu held.
type remoteIndex interface {
	Put(ctx context.Context, objs []index.WeaviateObject) error
	Delete(ctx context.Context, id string) (bool, error)
	Count(ctx context.Context) (int, error)
	SearchLabel(ctx context.Context, q []float32, k int, label string) ([]index.LabeledHit, error)
	Close() error
}

// batchAdder is implemented by indexes that link a batch in parallel.
type batchAdder interface {
	AddBatch(ctx context.Context, ids []string, vecs [][]float32) error
}

// openVectors builds or loads the vector index after the labels are loaded;
// ids are the stored IDs in key order.
func (s *Store) openVectors(ctx context.Context, ids []string) error {
	switch s.info.Vectors {
	case index.KindHNSW:
		return s.openHNSW(ctx, ids)
	case index.KindWeaviate:
		return s.openRemote(ctx, ids)
	}
	vecs, err := s.loadMatrix(ctx, ids)
	if err != nil {
		return err
	}
	idx, err := index.NewFlatFrom(s.info.Dim, ids, vecs)
	if err != nil {
		return fmt.Errorf("store: %s: %w", s.info.Dir, err)
	}
	s.local = idx
	s.info.Reindexed = len(ids)
	return nil
}

// graphState reads what the meta bucket says about the saved graph.
func (s *Store) graphState() (seq uint64, size int64, ok bool) {
	_ = s.db.View(func(tx *bolt.Tx) error {
		f := strings.Fields(string(tx.Bucket(bucketMeta).Get(keyGraph)))
		if len(f) != 2 {
			return nil
		}
		var err1, err2 error
		seq, err1 = strconv.ParseUint(f[0], 10, 64)
		size, err2 = strconv.ParseInt(f[1], 10, 64)
		ok = err1 == nil && err2 == nil
		return nil
	})
	return seq, size, ok
}

func (s *Store) openHNSW(ctx context.Context, ids []string) error {
	path := filepath.Join(s.info.Dir, GraphFile)
	if seq, size, ok := s.graphState(); ok && seq == s.seq {
		if fi, err := os.Stat(path); err == nil && fi.Size() == size {
			h, err := index.LoadHNSW(path, s.opt.HNSW)
			if err == nil && h.Dim() == s.info.Dim && h.Len() == len(ids) {
				s.local, s.hnsw, s.savedSeq = h, h, seq
				return nil
			}
			// A damaged or mismatched graph is only a cache miss.
		}
	}
	h, err := index.NewHNSW(s.info.Dim, s.opt.HNSW)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	err = s.eachVector(ctx, 4096, func(ids []string, vecs [][]float32) error {
		return h.AddBatch(ctx, ids, vecs)
	})
	if err != nil {
		return fmt.Errorf("store: building hnsw graph: %w", err)
	}
	s.local, s.hnsw = h, h
	s.info.Reindexed = len(ids)
	// Saved now so that a crash later does not cost another rebuild.
	return s.saveGraph()
}

// saveGraph writes the graph, then records the write sequence it matches;
// a crash between the two leaves an old record, so the graph is rebuilt.
func (s *Store) saveGraph() error {
	path := filepath.Join(s.info.Dir, GraphFile)
	if err := s.hnsw.Save(path); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyGraph, fmt.Appendf(nil, "%d %d", s.seq, fi.Size()))
	})
	if err != nil {
		return fmt.Errorf("store: recording %s: %w", GraphFile, err)
	}
	s.savedSeq = s.seq
	return nil
}

func (s *Store) openRemote(ctx context.Context, ids []string) error {
	open := index.OpenURL
	if s.opt.openRemote != nil {
		open = s.opt.openRemote
	}
	idx, err := open(ctx, s.opt.Vectors, s.info.Dim)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	r, ok := idx.(remoteIndex)
	if !ok {
		idx.Close()
		return fmt.Errorf("store: %s cannot filter by label: %w", s.opt.Vectors, ErrInvalid)
	}
	s.remote = r
	if err := s.resync(ctx, len(ids)); err != nil {
		r.Close()
		return fmt.Errorf("store: resyncing %s: %w", s.opt.Vectors, err)
	}
	return nil
}

// resync brings the remote index in step with bbolt: it replays the
// journal, then re-imports everything if the counts still differ or the
// store was written while the remote index was not attached.
func (s *Store) resync(ctx context.Context, n int) error {
	var pending []string
	var synced uint64
	var haveSeq bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyRemoteSeq); v != nil {
			synced, _ = strconv.ParseUint(string(v), 10, 64)
			haveSeq = true
		}
		return tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			pending = append(pending, string(k))
			return nil
		})
	})
	var put []string
	for _, id := range pending {
		if _, ok := s.labels[id]; ok {
			put = append(put, id)
		} else if _, err := s.remote.Delete(ctx, id); err != nil {
			return err
		}
	}
	if err := s.putRemote(ctx, put); err != nil {
		return err
	}
	s.info.Reindexed = len(put)
	count, err := s.remote.Count(ctx)
	if err != nil {
		return err
	}
	if count != n || !haveSeq || synced != s.seq {
		if err := s.eachVector(ctx, 1024, func(ids []string, vecs [][]float32) error {
			return s.remote.Put(ctx, s.objects(ids, vecs))
		}); err != nil {
			return err
		}
		s.info.Reindexed = n
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketPending); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
		if _, err := tx.CreateBucket(bucketPending); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyRemoteSeq, strconv.AppendUint(nil, s.seq, 10))
	})
}

// putRemote imports the stored vectors of ids.
func (s *Store) putRemote(ctx context.Context, ids []string) error {
	for lo := 0; lo < len(ids); lo += 1024 {
		chunk := ids[lo:min(lo+1024, len(ids))]
		vecs := make([][]float32, len(chunk))
		for i, id := range chunk {
			v, err := s.Vector(id)
			if err != nil {
				return err
			}
			vecs[i] = v
		}
		if err := s.remote.Put(ctx, s.objects(chunk, vecs)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) objects(ids []string, vecs [][]float32) []index.WeaviateObject {
	objs := make([]index.WeaviateObject, len(ids))
	s.mu.RLock()
	for i, id := range ids {
		objs[i] = index.WeaviateObject{ID: id, Label: s.labels[id], Vector: vecs[i]}
	}
	s.mu.RUnlock()
	return objs
}

// journal runs inside every write transaction: it bumps the write sequence
// and, with a remote index, records ids as possibly missing there and
// clears those a previous write has since delivered.
func (s *Store) journal(tx *bolt.Tx, ids []string) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	seq, err := meta.NextSequence()
	if err != nil || s.remote == nil {
		return seq, err
	}
	pb := tx.Bucket(bucketPending)
	for _, id := range s.delivered {
		if err := pb.Delete([]byte(id)); err != nil {
			return 0, err
		}
	}
	for _, id := range ids {
		if err := pb.Put([]byte(id), nil); err != nil {
			return 0, err
		}
	}
	return seq, meta.Put(keyRemoteSeq, strconv.AppendUint(nil, seq, 10))
}

// eachVector streams the stored descriptors in key order, chunk at a time;
// fn must not keep ids or vecs beyond the call.
func (s *Store) eachVector(ctx context.Context, chunk int, fn func(ids []string, vecs [][]float32) error) error {
	dim := s.info.Dim
	buf := make([]float32, chunk*dim)
	ids := make([]string, 0, chunk)
	vecs := make([][]float32, 0, chunk)
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fn(ids, vecs)
		ids, vecs = ids[:0], vecs[:0]
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketVecs).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			i := len(ids)
			dst := buf[i*dim : (i+1)*dim : (i+1)*dim]
			if err := decodeVector(dst, v); err != nil {
				return fmt.Errorf("store: item %q: %w", k, err)
			}
			ids = append(ids, string(k))
			vecs = append(vecs, dst)
			if len(ids) == chunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	})
}

// indexAdd applies committed entries to the labels and the vector index.
func (s *Store) indexAdd(ctx context.Context, entries []Entry) error {
	ctx = context.WithoutCancel(ctx) // the commit happened; finish following it
	if s.remote != nil {
		objs := make([]index.WeaviateObject, len(entries))
		for i, e := range entries {
			objs[i] = index.WeaviateObject{ID: e.ID, Label: e.Label, Vector: e.Vector}
		}
		err := s.remote.Put(ctx, objs)
		s.mu.Lock()
		for _, e := range entries {
			s.setLabel(e.ID, e.Label)
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("store: %d items committed; %w until reopened: %w", len(entries), ErrVectorIndex, err)
		}
		for _, e := range entries {
			s.delivered = append(s.delivered, e.ID)
		}
		return nil
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(entries))
	vecs := make([][]float32, len(entries))
	for i, e := range entries {
		if _, ok := s.labels[e.ID]; ok {
			s.local.Remove(e.ID)
		}
		s.setLabel(e.ID, e.Label)
		ids[i], vecs[i] = e.ID, e.Vector
	}
	var err error
	if b, ok := s.local.(batchAdder); ok && len(ids) > 1 {
		err = b.AddBatch(ctx, ids, vecs)
	} else {
		for i := range ids {
			if err = s.local.Add(ids[i], vecs[i]); err != nil {
				break
			}
		}
	}
	if err != nil {
		// Validation makes this unreachable. A stale graph is not saved, and
		// the write sequence has moved past the saved one, so the next Open
		// rebuilds.
		s.stale = true
		return fmt.Errorf("store: %d items committed; %w until reopened: %w", len(entries), ErrVectorIndex, err)
	}
	return nil
}

// setLabel records id's label and keeps the per-label counts; mu must be
// write-locked.
func (s *Store) setLabel(id, label string) {
	if old, ok := s.labels[id]; ok {
		s.uncount(old)
	}
	s.labels[id] = label
	s.counts[label]++
	s.countsGen.Add(1)
}

// indexRemove drops removed IDs from the labels and the vector index.
func (s *Store) indexRemove(ctx context.Context, gone []string) error {
	s.mu.Lock()
	for _, id := range gone {
		if label, ok := s.labels[id]; ok {
			if s.local != nil {
				s.local.Remove(id)
			}
			delete(s.labels, id)
			s.uncount(label)
		}
	}
	s.mu.Unlock()
	if s.remote == nil {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	var errs []error
	for _, id := range gone {
		if _, err := s.remote.Delete(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		s.delivered = append(s.delivered, id)
	}
	if len(errs) > 0 {
		return fmt.Errorf("store: %d items removed; %w until reopened: %w", len(gone), ErrVectorIndex, errors.Join(errs...))
	}
	return nil
}

// closeVectors saves what must outlive the process; wmu must be held.
func (s *Store) closeVectors() error {
	var errs []error
	if s.hnsw != nil && !s.stale && s.seq != s.savedSeq {
		errs = append(errs, s.saveGraph())
	}
	if s.remote != nil {
		if len(s.delivered) > 0 {
			errs = append(errs, s.db.Update(func(tx *bolt.Tx) error {
				pb := tx.Bucket(bucketPending)
				for _, id := range s.delivered {
					if err := pb.Delete([]byte(id)); err != nil {
						return err
					}
				}
				return nil
			}))
			s.delivered = nil
		}
		errs = append(errs, s.remote.Close())
	}
	return errors.Join(errs...)
}
