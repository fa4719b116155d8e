// Package store is the persistent product catalogue: one bbolt file holding,
// per reference, its descriptor, label, file name, added time, optional JSON
// metadata and the original image bytes, plus the model bundle that produced
// the descriptors.
//
// Invariants:
//   - every item is written in one bbolt transaction across all buckets, and a
//     call returns only after that transaction is committed and synced, so an
//     acknowledged item survives kill -9 and an interrupted one leaves nothing;
//   - the items and vectors buckets always hold the same keys (Check verifies);
//   - descriptors are searched through a vector index derived from the file
//     (exact in memory, HNSW, or Weaviate; see Options and vectors.go) that
//     later writes keep in step with the file, in commit order.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"prodsearch/internal/index"
	"prodsearch/internal/vec"
)

// FileName is the bbolt file inside a store directory.
const FileName = "catalogue.db"

// formatVersion is bumped on incompatible layout changes; Open refuses newer.
const formatVersion = 1

// Limits on what one item may carry; the HTTP layer enforces its own, smaller
// body limits first, these keep the file sane whatever the caller.
const (
	MaxIDLen       = 200
	MaxLabelLen    = 200
	MaxMetadataLen = 64 << 10
)

var (
	bucketMeta   = []byte("meta")
	bucketItems  = []byte("items")
	bucketVecs   = []byte("vectors")
	bucketImages = []byte("images")

	keyFormat  = []byte("format")
	keyBundle  = []byte("bundle")
	keyDim     = []byte("dim")
	keyCreated = []byte("created")
)

// Errors callers map to exit codes or HTTP statuses with errors.Is.
var (
	ErrNotFound       = errors.New("not found")
	ErrExists         = errors.New("already exists")
	ErrInvalid        = errors.New("invalid item")
	ErrBundleMismatch = errors.New("bundle mismatch")
	ErrNoStore        = errors.New("no store")
	ErrInUse          = errors.New("store in use")
)

// Item is what the catalogue knows about one reference, without its vector
// or image bytes.
type Item struct {
	ID          string          `json:"id"`
	Label       string          `json:"label,omitempty"`
	FileName    string          `json:"file_name,omitempty"`
	Added       time.Time       `json:"added"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	ContentType string          `json:"content_type,omitempty"`
	ImageSize   int             `json:"image_size"`
}

// Entry is one item to add.
type Entry struct {
	ID       string
	Label    string
	FileName string
	// Metadata is optional and must be valid JSON when set.
	Metadata json.RawMessage
	Vector   []float32
	// Image is the encoded photo kept for GET .../image; optional.
	Image []byte
	// ContentType of Image; sniffed when empty.
	ContentType string
}

// Info describes a store as a whole.
type Info struct {
	Dir      string    `json:"dir"`
	BundleID string    `json:"bundle"`
	Dim      int       `json:"dim"`
	Created  time.Time `json:"created"`
	Items    int       `json:"items"`
	Labels   int       `json:"labels"`
	// FileBytes is the size of the bbolt file on disk.
	FileBytes int64 `json:"file_bytes"`
	// LoadTime is how long Open took to read all descriptors.
	LoadTime time.Duration `json:"load_ns"`
	// Vectors is the vector index kind: flat, hnsw or weaviate (auto is
	// resolved to flat or hnsw by the catalogue's size when the store opens).
	Vectors string `json:"vectors"`
	// Reindexed is how many references Open had to index from the
	// catalogue: all for flat, none for a saved HNSW graph or a Weaviate
	// collection already in step.
	Reindexed int `json:"reindexed"`
}

// Store is safe for concurrent use. Searches run concurrently with each
// other and with the slow part of writes (the disk commit); they only wait
// for the brief in-memory update that follows a commit.
type Store struct {
	db   *bolt.DB
	info Info
	opt  Options

	// wmu serialises writers so the vector index applies changes in the
	// order bbolt committed them; it guards the fields up to mu.
	wmu       sync.Mutex
	seq       uint64   // write sequence of the last commit (meta bucket sequence)
	savedSeq  uint64   // write sequence the saved HNSW graph matches
	stale     bool     // an index update failed after its commit
	delivered []string // journaled IDs the remote index now has
	closed    bool

	// Exactly one of local and remote is set; hnsw is local when it is a
	// graph that Close saves.
	local  localIndex
	remote remoteIndex
	hnsw   *index.HNSW

	// mu guards labels, counts and writes to local, and is never held
	// during disk or network I/O.
	mu     sync.RWMutex
	labels map[string]string // id -> label
	counts map[string]int    // label -> items

	// countsGen changes with counts; perLabel caches the median items per
	// label for the generation it was computed at, so a search reads the
	// catalogue's shape without sorting every label.
	countsGen atomic.Uint64
	perLabel  atomic.Pointer[perLabel]
}

type perLabel struct {
	gen    uint64
	median int
}

// Open opens the store in dir with the exact in-memory index, loading every
// descriptor into memory; OpenWith chooses another vector index.
//
// A new store is created only when bundleID is set; it then records bundleID
// and dim. On an existing store a non-empty bundleID (or non-zero dim) must
// match what was recorded: descriptors from different bundles are not
// comparable, so mixing them would silently ruin every search. Pass "" and 0
// to accept whatever the store holds (list, stats, remove, serve --bundle
// omitted).
func Open(ctx context.Context, dir, bundleID string, dim int) (*Store, error) {
	return OpenWith(ctx, dir, bundleID, dim, Options{})
}

// OpenWith is Open with the vector index that opt selects. Building or
// resyncing that index from the catalogue happens here, under ctx.
func OpenWith(ctx context.Context, dir, bundleID string, dim int, opt Options) (*Store, error) {
	start := time.Now()
	kind, err := opt.kind()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if bundleID == "" {
			return nil, fmt.Errorf("store: %w at %s (create it with 'prodsearch index add --store %s ...')", ErrNoStore, dir, dir)
		}
		if dim <= 0 {
			return nil, fmt.Errorf("store: creating %s: descriptor dimension %d: %w", dir, dim, ErrInvalid)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType, MmapFlags: mmapFlags})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("store: %s: %w: another process holds it open (a running 'prodsearch serve'?); stop it or use its HTTP API", dir, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, opt: opt, labels: make(map[string]string), counts: make(map[string]int)}
	s.info.Dir, s.info.Vectors = dir, kind
	if err := s.initMeta(bundleID, dim); err != nil {
		db.Close()
		return nil, err
	}
	ids, err := s.loadLabels(ctx)
	if err == nil {
		// auto is decided by the catalogue's size at each open: a store
		// that grew past index.AutoHNSWMin is searched by HNSW from its
		// next open on.
		s.info.Vectors = index.Resolve(s.info.Vectors, len(ids)*max(1, s.opt.autoScale))
		err = s.openVectors(ctx, ids)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	s.info.LoadTime = time.Since(start)
	return s, nil
}

// initMeta records or checks the bundle, dimension and format version.
func (s *Store) initMeta(bundleID string, dim int) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketItems, bucketVecs, bucketImages, bucketPending} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if meta.Get(keyBundle) == nil {
			if bundleID == "" || dim <= 0 {
				return fmt.Errorf("store: %s has no bundle recorded; pass a bundle to create it: %w", s.info.Dir, ErrNoStore)
			}
			now := time.Now().UTC()
			for k, v := range map[string]string{
				string(keyFormat):  strconv.Itoa(formatVersion),
				string(keyBundle):  bundleID,
				string(keyDim):     strconv.Itoa(dim),
				string(keyCreated): now.Format(time.RFC3339Nano),
			} {
				if err := meta.Put([]byte(k), []byte(v)); err != nil {
					return fmt.Errorf("store: %w", err)
				}
			}
		}
		ver, _ := strconv.Atoi(string(meta.Get(keyFormat)))
		if ver != formatVersion {
			return fmt.Errorf("store: %s has format version %q; this build reads version %d", s.info.Dir, meta.Get(keyFormat), formatVersion)
		}
		s.info.BundleID = string(meta.Get(keyBundle))
		s.info.Dim, _ = strconv.Atoi(string(meta.Get(keyDim)))
		s.info.Created, _ = time.Parse(time.RFC3339Nano, string(meta.Get(keyCreated)))
		s.seq = meta.Sequence()
		if s.info.Dim <= 0 {
			return fmt.Errorf("store: %s records dimension %q: %w", s.info.Dir, meta.Get(keyDim), errRecord)
		}
		if bundleID != "" && bundleID != s.info.BundleID {
			return fmt.Errorf("store: %s was built with bundle %q, refusing to use bundle %q "+
				"(descriptors from different bundles are not comparable): "+
				"serve it with --bundle %q, or index into a new --store: %w",
				s.info.Dir, s.info.BundleID, bundleID, s.info.BundleID, ErrBundleMismatch)
		}
		if dim > 0 && dim != s.info.Dim {
			return fmt.Errorf("store: %s holds %d-d descriptors, the describer makes %d-d: %w",
				s.info.Dir, s.info.Dim, dim, ErrBundleMismatch)
		}
		return nil
	})
}

// loadLabels reads every item's label and returns the IDs in key order,
// checking that the vectors bucket holds the same number of keys.
func (s *Store) loadLabels(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		ib := tx.Bucket(bucketItems)
		n := tx.Bucket(bucketVecs).Stats().KeyN
		ids = make([]string, 0, n)
		c := ib.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(ids)%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			id := string(k)
			label, err := decodeLabel(v)
			if err != nil {
				return fmt.Errorf("store: item %q: %w", id, err)
			}
			ids = append(ids, id)
			s.labels[id] = label
			s.counts[label]++
		}
		s.countsGen.Add(1)
		if len(ids) != n {
			return fmt.Errorf("store: %s: %d items, %d vectors: %w", s.info.Dir, len(ids), n, errRecord)
		}
		return nil
	})
	return ids, err
}

// loadMatrix reads the descriptors of ids (all stored, in key order)
// straight into one contiguous matrix, which an exact index then owns.
func (s *Store) loadMatrix(ctx context.Context, ids []string) ([]float32, error) {
	dim := s.info.Dim
	vecs := make([]float32, len(ids)*dim)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketVecs).Cursor()
		i := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if i == len(ids) || string(k) != ids[i] {
				return fmt.Errorf("store: %s is inconsistent near vector %q: %w", s.info.Dir, k, errRecord)
			}
			if i%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := decodeVector(vecs[i*dim:(i+1)*dim], v); err != nil {
				return fmt.Errorf("store: item %q: %w", k, err)
			}
			i++
		}
		if i != len(ids) {
			return fmt.Errorf("store: %s: %d vectors for %d items: %w", s.info.Dir, i, len(ids), errRecord)
		}
		return nil
	})
	return vecs, err
}

// Close saves the HNSW graph when it changed, flushes a remote index and
// releases the file; the Store must not be used afterwards.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.closeVectors()
	if cerr := s.db.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Info returns the store's identity and current size.
func (s *Store) Info() Info {
	s.mu.RLock()
	info := s.info
	info.Items = len(s.labels)
	info.Labels = len(s.counts)
	s.mu.RUnlock()
	if fi, err := os.Stat(s.db.Path()); err == nil {
		info.FileBytes = fi.Size()
	}
	return info
}

// BundleID is the bundle whose descriptors this store holds.
func (s *Store) BundleID() string { return s.info.BundleID }

// Dim is the descriptor length.
func (s *Store) Dim() int { return s.info.Dim }

// Len is the number of items in the catalogue.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.labels)
}

// Has reports whether id is stored.
func (s *Store) Has(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.labels[id]
	return ok
}

// Labels returns the number of items per label.
func (s *Store) Labels() map[string]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		m[k] = v
	}
	return m
}

// RefID is the reference ID of an image file: its name without directory or
// extension, as ranking files expect.
func RefID(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// ValidateID says why id cannot name an item, or nil. IDs appear in URL
// paths (escaped, so '/' is fine) and ranking files (TSV), so control
// characters, backslashes and the dot segments browsers rewrite are out.
func ValidateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty id", ErrInvalid)
	case len(id) > MaxIDLen:
		return fmt.Errorf("%w: id longer than %d bytes", ErrInvalid, MaxIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: id is not UTF-8", ErrInvalid)
	case id == "." || id == "..":
		return fmt.Errorf("%w: id %q", ErrInvalid, id)
	case strings.TrimSpace(id) != id:
		return fmt.Errorf("%w: id %q has leading or trailing space", ErrInvalid, id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("%w: id %q contains %q", ErrInvalid, id, r)
		}
	}
	return nil
}

func (s *Store) validate(e *Entry) error {
	if err := ValidateID(e.ID); err != nil {
		return err
	}
	if len(e.Label) > MaxLabelLen || !utf8.ValidString(e.Label) || strings.ContainsFunc(e.Label, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: %q: bad label", ErrInvalid, e.ID)
	}
	if len(e.FileName) > 1024 || !utf8.ValidString(e.FileName) {
		return fmt.Errorf("%w: %q: bad file name", ErrInvalid, e.ID)
	}
	if len(e.Vector) != s.info.Dim {
		return fmt.Errorf("%w: %q: descriptor has %d values, the store holds %d", ErrInvalid, e.ID, len(e.Vector), s.info.Dim)
	}
	if vec.FirstNonFinite(e.Vector) >= 0 {
		return fmt.Errorf("%w: %q: descriptor is not finite", ErrInvalid, e.ID)
	}
	if len(e.Metadata) > 0 {
		if len(e.Metadata) > MaxMetadataLen {
			return fmt.Errorf("%w: %q: metadata over %d bytes", ErrInvalid, e.ID, MaxMetadataLen)
		}
		if !json.Valid(e.Metadata) {
			return fmt.Errorf("%w: %q: metadata is not valid JSON", ErrInvalid, e.ID)
		}
	}
	return nil
}

// AddOptions tune Add.
type AddOptions struct {
	// Replace overwrites items whose ID exists; otherwise the whole batch
	// fails with ErrExists.
	Replace bool
}

// Add stores entries in one transaction: when it returns nil all of them
// are durable and searchable, and when it fails none is stored, except that
// ErrVectorIndex means they are durable but not yet searchable. The caller
// describes the images first, outside any lock.
func (s *Store) Add(ctx context.Context, entries []Entry, opt AddOptions) error {
	if len(entries) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(entries))
	items := make([]Item, len(entries))
	now := time.Now().UTC()
	for i := range entries {
		e := &entries[i]
		if err := s.validate(e); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if seen[e.ID] {
			return fmt.Errorf("store: %w: id %q twice in one batch", ErrInvalid, e.ID)
		}
		seen[e.ID] = true
		ct := e.ContentType
		if ct == "" && len(e.Image) > 0 {
			ct = http.DetectContentType(e.Image)
		}
		meta := e.Metadata
		if len(meta) == 0 {
			meta = nil
		}
		items[i] = Item{ID: e.ID, Label: e.Label, FileName: e.FileName, Added: now, Metadata: meta, ContentType: ct, ImageSize: len(e.Image)}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !opt.Replace {
		s.mu.RLock()
		var dup string
		for _, e := range entries {
			if _, ok := s.labels[e.ID]; ok {
				dup = e.ID
				break
			}
		}
		s.mu.RUnlock()
		if dup != "" {
			return fmt.Errorf("store: item %q: %w", dup, ErrExists)
		}
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	var seq uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if seq, err = s.journal(tx, ids); err != nil {
			return err
		}
		ib, vb, gb := tx.Bucket(bucketItems), tx.Bucket(bucketVecs), tx.Bucket(bucketImages)
		for i, e := range entries {
			k := []byte(e.ID)
			if err := ib.Put(k, encodeItem(&items[i])); err != nil {
				return err
			}
			if err := vb.Put(k, encodeVector(e.Vector)); err != nil {
				return err
			}
			if len(e.Image) > 0 {
				if err := gb.Put(k, e.Image); err != nil {
					return err
				}
			} else if err := gb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add: %w", err)
	}
	s.seq, s.delivered = seq, s.delivered[:0]
	return s.indexAdd(ctx, entries)
}

func (s *Store) uncount(label string) {
	s.countsGen.Add(1)
	if s.counts[label]--; s.counts[label] <= 0 {
		delete(s.counts, label)
	}
}

// MedianPerLabel is the median number of items per labelled product (0 for
// a store without labels): how a model picks the re-ranking recipe that
// fits the catalogue's shape. It is recomputed only after the labels
// changed.
func (s *Store) MedianPerLabel() int {
	gen := s.countsGen.Load()
	if c := s.perLabel.Load(); c != nil && c.gen == gen {
		return c.median
	}
	s.mu.RLock()
	gen = s.countsGen.Load() // writers change it under the write lock
	per := make([]int, 0, len(s.counts))
	for l, n := range s.counts {
		if l != "" {
			per = append(per, n)
		}
	}
	s.mu.RUnlock()
	m := 0
	if len(per) > 0 {
		slices.Sort(per)
		m = per[len(per)/2]
	}
	s.perLabel.Store(&perLabel{gen: gen, median: m})
	return m
}

// Remove deletes items in one transaction and returns the IDs that existed;
// with ErrVectorIndex they are gone from the catalogue (and from results)
// but the remote index still holds some until the store is reopened.
func (s *Store) Remove(ctx context.Context, ids ...string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// Under wmu the labels are exactly what bbolt holds. When none of ids is
	// stored, nothing is committed: a request that changes nothing costs no
	// disk sync and does not move the write sequence (which would make a
	// saved HNSW graph stale).
	s.mu.RLock()
	stored := slices.ContainsFunc(ids, func(id string) bool { _, ok := s.labels[id]; return ok })
	s.mu.RUnlock()
	if !stored && !s.closed {
		return nil, nil
	}
	var gone []string
	var seq uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		gone = gone[:0]
		ib, vb, gb := tx.Bucket(bucketItems), tx.Bucket(bucketVecs), tx.Bucket(bucketImages)
		for _, id := range ids {
			k := []byte(id)
			if ib.Get(k) == nil {
				continue
			}
			gone = append(gone, id)
			for _, b := range []*bolt.Bucket{ib, vb, gb} {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		var err error
		seq, err = s.journal(tx, gone)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: remove: %w", err)
	}
	s.seq, s.delivered = seq, s.delivered[:0]
	return gone, s.indexRemove(ctx, gone)
}

// Get returns one item's record.
func (s *Store) Get(id string) (Item, error) {
	var it Item
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketItems).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("store: item %q: %w", id, ErrNotFound)
		}
		var err error
		it, err = decodeItem(id, v)
		return err
	})
	return it, err
}

// Image returns a copy of the stored photo and its content type.
func (s *Store) Image(id string) ([]byte, string, error) {
	var data []byte
	var ct string
	err := s.db.View(func(tx *bolt.Tx) error {
		iv := tx.Bucket(bucketItems).Get([]byte(id))
		if iv == nil {
			return fmt.Errorf("store: item %q: %w", id, ErrNotFound)
		}
		it, err := decodeItem(id, iv)
		if err != nil {
			return err
		}
		v := tx.Bucket(bucketImages).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("store: image of %q: %w", id, ErrNotFound)
		}
		data, ct = slices.Clone(v), it.ContentType
		return nil
	})
	return data, ct, err
}

// Vector returns a copy of one stored descriptor.
func (s *Store) Vector(id string) ([]float32, error) {
	vec := make([]float32, s.info.Dim)
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketVecs).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("store: vector of %q: %w", id, ErrNotFound)
		}
		return decodeVector(vec, v)
	})
	return vec, err
}

// ListOptions page through the catalogue in ID order.
type ListOptions struct {
	Offset, Limit int
	Label         string // only this label when set
}

// List returns one page of items and the total matching ListOptions.Label.
func (s *Store) List(ctx context.Context, opt ListOptions) ([]Item, int, error) {
	if opt.Offset < 0 || opt.Limit < 0 {
		return nil, 0, fmt.Errorf("store: list: negative offset or limit: %w", ErrInvalid)
	}
	var out []Item
	total := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketItems).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if total%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if opt.Label != "" {
				l, err := decodeLabel(v)
				if err != nil {
					return fmt.Errorf("store: item %q: %w", k, err)
				}
				if l != opt.Label {
					continue
				}
			}
			if total >= opt.Offset && len(out) < opt.Limit {
				it, err := decodeItem(string(k), v)
				if err != nil {
					return err
				}
				out = append(out, it)
			}
			total++
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// Check verifies the file's page structure and that every item is whole:
// a record, a descriptor of the right length, and an image when the record
// says it has one, with nothing orphaned in any bucket.
func (s *Store) Check(ctx context.Context) error {
	return s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("store: check: %w", err)
		}
		ib, vb, gb := tx.Bucket(bucketItems), tx.Bucket(bucketVecs), tx.Bucket(bucketImages)
		n := 0
		vec := make([]float32, s.info.Dim)
		err := ib.ForEach(func(k, v []byte) error {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			it, err := decodeItem(string(k), v)
			if err != nil {
				return err
			}
			if err := decodeVector(vec, vb.Get(k)); err != nil {
				return fmt.Errorf("item %q: %w", k, err)
			}
			img := gb.Get(k)
			if len(img) != it.ImageSize {
				return fmt.Errorf("item %q: image of %d bytes, record says %d: %w", k, len(img), it.ImageSize, errRecord)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: check: %w", err)
		}
		for _, b := range []*bolt.Bucket{vb, gb} {
			if err := b.ForEach(func(k, _ []byte) error {
				if ib.Get(k) == nil {
					return fmt.Errorf("orphaned entry %q: %w", k, errRecord)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("store: check: %w", err)
			}
		}
		return nil
	})
}

// ReadInfo reads a store's bundle and dimension without loading it, so the
// CLI can pick the matching bundle before opening the store for real.
func ReadInfo(dir string) (Info, error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Info{}, fmt.Errorf("store: %w at %s", ErrNoStore, dir)
		}
		return Info{}, fmt.Errorf("store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return Info{}, fmt.Errorf("store: %s: %w: another process holds it open (a running 'prodsearch serve'?); stop it or use its HTTP API", dir, ErrInUse)
	}
	if err != nil {
		return Info{}, fmt.Errorf("store: open %s: %w", path, err)
	}
	defer db.Close()
	info := Info{Dir: dir}
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || meta.Get(keyBundle) == nil {
			return fmt.Errorf("store: %w at %s (no bundle recorded)", ErrNoStore, dir)
		}
		info.BundleID = string(meta.Get(keyBundle))
		info.Dim, _ = strconv.Atoi(string(meta.Get(keyDim)))
		info.Created, _ = time.Parse(time.RFC3339Nano, string(meta.Get(keyCreated)))
		if b := tx.Bucket(bucketItems); b != nil {
			info.Items = b.Stats().KeyN
		}
		return nil
	})
	if fi, err := os.Stat(path); err == nil {
		info.FileBytes = fi.Size()
	}
	return info, err
}
