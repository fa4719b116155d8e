package index

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/viterin/vek/vek32"
)

// HNSWConfig trades graph quality against build time and memory. Zero
// fields take the defaults noted.
type HNSWConfig struct {
	// M is the number of links a node keeps above level 0; level 0 keeps
	// 2*M, as in the paper and hnswlib. Default 16.
	M int
	// EfConstruction is the candidate list size while inserting. Default 128.
	EfConstruction int
	// EfSearch is the default candidate list size while searching; it is
	// raised to k when k is larger. Default 64.
	EfSearch int
	// Seed drives level draws, so that a build in a fixed order is repeatable.
	Seed uint64
	// Workers bounds AddBatch and SearchBatch parallelism. Default GOMAXPROCS.
	Workers int
}

func (c HNSWConfig) withDefaults() HNSWConfig {
	if c.M <= 0 {
		c.M = 16
	}
	if c.M < 2 {
		c.M = 2
	}
	if c.EfConstruction <= 0 {
		c.EfConstruction = 128
	}
	if c.EfSearch <= 0 {
		c.EfSearch = 64
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c
}

const (
	hnswSlabShift   = 12 // vectors and level-0 links live in slabs of 4096 nodes, so growth never copies gigabytes
	hnswSlabNodes   = 1 << hnswSlabShift
	hnswSlabMask    = hnswSlabNodes - 1
	hnswLockStripes = 1 << 12
	hnswMaxLevel    = 32
	hnswNone        = math.MaxUint32
)

// HNSW is an approximate nearest-neighbour index: a hierarchical navigable
// small-world graph (Malkov & Yashunin, 2016) with the heuristic neighbour
// selection of their Algorithm 4, scored by inner product (cosine on the
// L2-normalised descriptors that describe produces).
//
// Concurrency: any number of Search and Add calls may run at once. Node
// tables change only under mu's write lock (reserving nodes, Remove);
// linking and searching hold the read lock, and each node's links are
// guarded by a striped mutex. Removed references stay in the graph as
// tombstones that route searches but are never returned.
type HNSW struct {
	dim      int
	m, m0    int
	efC      int
	workers  int
	mL       float64
	seed     uint64
	efSearch atomic.Int64

	mu      sync.RWMutex
	ids     []string
	byID    map[string]uint32
	levels  []uint8
	deleted []uint64
	vecs    [][]float32 // slabs of hnswSlabNodes*dim
	links0  [][]uint32  // slabs of hnswSlabNodes*(m0+1): count, then neighbours
	upper   [][]uint32  // per node, level*(m+1) for levels 1..level; nil at level 0
	rng     *rand.Rand
	live    int

	epMu     sync.Mutex
	entry    uint32
	maxLevel int // -1 while the graph is empty

	locks   [hnswLockStripes]sync.Mutex
	scratch sync.Pool
}

var _ Index = (*HNSW)(nil)

// NewHNSW returns an empty graph for vectors of length dim.
func NewHNSW(dim int, cfg HNSWConfig) (*HNSW, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("index: hnsw: dimension %d must be positive", dim)
	}
	cfg = cfg.withDefaults()
	h := &HNSW{
		dim:      dim,
		m:        cfg.M,
		m0:       2 * cfg.M,
		efC:      cfg.EfConstruction,
		workers:  cfg.Workers,
		mL:       1 / math.Log(float64(cfg.M)),
		seed:     cfg.Seed,
		byID:     make(map[string]uint32),
		rng:      rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		maxLevel: -1,
	}
	h.efSearch.Store(int64(cfg.EfSearch))
	return h, nil
}

// SetEfSearch changes the default search breadth; larger is slower and
// closer to exact.
func (h *HNSW) SetEfSearch(ef int) {
	if ef > 0 {
		h.efSearch.Store(int64(ef))
	}
}

// EfSearch returns the default search breadth.
func (h *HNSW) EfSearch() int { return int(h.efSearch.Load()) }

// Dim returns the vector length.
func (h *HNSW) Dim() int { return h.dim }

// Len returns the number of live (not removed) references.
func (h *HNSW) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.live
}

// Nodes returns the number of graph nodes, tombstones included; Index
// values range over [0, Nodes()).
func (h *HNSW) Nodes() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.levels)
}

// ID returns the reference ID of node i, or "" if i is out of range.
func (h *HNSW) ID(i int) string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if i < 0 || i >= len(h.ids) {
		return ""
	}
	return h.ids[i]
}

// Vector returns node i's stored vector, or nil if i is out of range;
// callers must not modify it.
func (h *HNSW) Vector(i int) []float32 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if i < 0 || i >= len(h.ids) {
		return nil
	}
	return h.vec(uint32(i))
}

// Position returns the node holding id, as Flat.Position does.
func (h *HNSW) Position(id string) (int, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	i, ok := h.byID[id]
	return int(i), ok
}

// Close releases nothing; it exists so HNSW satisfies Index.
func (h *HNSW) Close() error { return nil }

// Add inserts one reference. Like Flat, it refuses an ID already present
// (ErrDuplicateID); Remove it first to replace it.
func (h *HNSW) Add(id string, vec []float32) error {
	if err := checkEntry(h.dim, id, vec); err != nil {
		return err
	}
	first, err := h.reserve([]string{id}, [][]float32{vec})
	if err != nil {
		return err
	}
	s := h.getScratch()
	defer h.scratch.Put(s)
	h.mu.RLock()
	defer h.mu.RUnlock()
	h.link(first, s)
	return nil
}

// AddBatch inserts references in parallel (Workers goroutines). On
// cancellation the references not yet linked are dropped and ctx's error
// returned; those already linked stay.
func (h *HNSW) AddBatch(ctx context.Context, ids []string, vecs [][]float32) error {
	if len(ids) != len(vecs) {
		return fmt.Errorf("index: hnsw: %d ids for %d vectors", len(ids), len(vecs))
	}
	for i, v := range vecs {
		if err := checkEntry(h.dim, ids[i], v); err != nil {
			return err
		}
	}
	if len(ids) == 0 {
		return ctx.Err()
	}
	first, err := h.reserve(ids, vecs)
	if err != nil {
		return err
	}
	n := uint32(len(ids))
	var next atomic.Uint32
	done := make([]bool, n) // each slot written by the one worker that claimed it
	var wg sync.WaitGroup
	workers := min(h.workers, len(ids))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := h.getScratch()
			defer h.scratch.Put(s)
			for {
				if ctx.Err() != nil {
					return
				}
				j := next.Add(1) - 1
				if j >= n {
					return
				}
				// The read lock is taken per node so that a Remove or
				// another Add waits for one insertion, not the batch (and
				// searches do not queue behind that waiting writer).
				h.mu.RLock()
				h.link(first+j, s)
				h.mu.RUnlock()
				done[j] = true
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		h.mu.Lock()
		for j, ok := range done {
			if !ok {
				h.removeNode(first + uint32(j))
			}
		}
		h.mu.Unlock()
		return err
	}
	return nil
}

// reserve appends nodes (vector, level, empty links) under the write lock
// and returns the first new node; linking happens afterwards under the
// read lock, so searches are blocked only while memory is laid out. It
// changes nothing if any ID is already present or repeated.
func (h *HNSW) reserve(ids []string, vecs [][]float32) (uint32, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	first := len(h.levels)
	if uint64(first)+uint64(len(ids)) >= hnswNone {
		return 0, fmt.Errorf("index: hnsw: more than %d nodes", uint32(hnswNone-1))
	}
	var seen map[string]bool
	if len(ids) > 1 {
		seen = make(map[string]bool, len(ids))
	}
	for _, id := range ids {
		if _, dup := h.byID[id]; dup || seen[id] {
			return 0, fmt.Errorf("%w: %q", ErrDuplicateID, id)
		}
		if seen != nil {
			seen[id] = true
		}
	}
	for k, id := range ids {
		i := uint32(first + k)
		switch s := int(i >> hnswSlabShift); {
		case s == len(h.vecs):
			h.vecs = append(h.vecs, make([]float32, hnswSlabNodes*h.dim))
			h.links0 = append(h.links0, make([]uint32, hnswSlabNodes*(h.m0+1)))
		case len(h.vecs[s]) < hnswSlabNodes*h.dim:
			// A slab read from a file holds only the nodes it had.
			h.vecs[s] = fullSlab(h.vecs[s], hnswSlabNodes*h.dim)
			h.links0[s] = fullSlab(h.links0[s], hnswSlabNodes*(h.m0+1))
		}
		copy(h.vec(i), vecs[k])
		lvl := h.drawLevel()
		h.levels = append(h.levels, uint8(lvl))
		if lvl > 0 {
			h.upper = append(h.upper, make([]uint32, lvl*(h.m+1)))
		} else {
			h.upper = append(h.upper, nil)
		}
		h.ids = append(h.ids, id)
		h.byID[id] = i
		if int(i)>>6 == len(h.deleted) {
			h.deleted = append(h.deleted, 0)
		}
		h.live++
	}
	return uint32(first), nil
}

// fullSlab extends a short slab to n elements, the new ones zero.
func fullSlab[E any](s []E, n int) []E {
	return slices.Grow(s, n-len(s))[:n]
}

func (h *HNSW) drawLevel() int {
	u := 1 - h.rng.Float64() // (0, 1]
	l := int(-math.Log(u) * h.mL)
	return min(l, hnswMaxLevel)
}

// Remove drops id from results; its node stays in the graph as a tombstone.
func (h *HNSW) Remove(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	i, ok := h.byID[id]
	if !ok {
		return false
	}
	h.removeNode(i)
	return true
}

// removeNode tombstones node i; mu must be write-locked.
func (h *HNSW) removeNode(i uint32) {
	if h.isDeleted(i) {
		return
	}
	h.deleted[i>>6] |= 1 << (i & 63)
	if j, ok := h.byID[h.ids[i]]; ok && j == i {
		delete(h.byID, h.ids[i])
	}
	h.live--
}

func (h *HNSW) isDeleted(i uint32) bool { return h.deleted[i>>6]&(1<<(i&63)) != 0 }

func (h *HNSW) vec(i uint32) []float32 {
	s := h.vecs[i>>hnswSlabShift]
	off := int(i&hnswSlabMask) * h.dim
	return s[off : off+h.dim : off+h.dim]
}

// linksAt returns node i's link block at level l: count, then neighbours.
func (h *HNSW) linksAt(i uint32, l int) []uint32 {
	if l == 0 {
		s := h.links0[i>>hnswSlabShift]
		off := int(i&hnswSlabMask) * (h.m0 + 1)
		return s[off : off+h.m0+1 : off+h.m0+1]
	}
	u := h.upper[i]
	off := (l - 1) * (h.m + 1)
	return u[off : off+h.m+1 : off+h.m+1]
}

func (h *HNSW) lock(i uint32) *sync.Mutex { return &h.locks[i&(hnswLockStripes-1)] }

// neighbours copies node i's links at level l into buf.
func (h *HNSW) neighbours(i uint32, l int, buf []uint32) []uint32 {
	mu := h.lock(i)
	mu.Lock()
	blk := h.linksAt(i, l)
	buf = append(buf[:0], blk[1:1+blk[0]]...)
	mu.Unlock()
	return buf
}

// dist is 1 - inner product: an order-preserving distance for searches.
func (h *HNSW) dist(q []float32, i uint32) float32 { return 1 - vek32.Dot(q, h.vec(i)) }

type hnswCand struct {
	d  float32
	id uint32
}

// hnswScratch is per-goroutine search state, pooled to avoid allocation.
type hnswScratch struct {
	visited []uint32
	epoch   uint32
	cand    heap[hnswCand] // nearest first
	res     heap[hnswCand] // farthest first
	nb      []uint32
	sorted  []hnswCand
	sel     []hnswCand
	sel2    []hnswCand
	tmp     []hnswCand
}

func (h *HNSW) getScratch() *hnswScratch {
	if s, ok := h.scratch.Get().(*hnswScratch); ok {
		return s
	}
	return &hnswScratch{cand: heap[hnswCand]{less: nearer}, res: heap[hnswCand]{less: farther}}
}

func (s *hnswScratch) resetVisited(n int) {
	if len(s.visited) < n {
		s.visited = make([]uint32, n+n/4)
		s.epoch = 0
	}
	s.epoch++
	if s.epoch == 0 {
		clear(s.visited)
		s.epoch = 1
	}
}

func (s *hnswScratch) visit(i uint32) bool {
	if s.visited[i] == s.epoch {
		return false
	}
	s.visited[i] = s.epoch
	return true
}

// nearer orders candidates nearest first (the beam's queue); farther orders
// them farthest first (its bounded result set, whose root is the worst kept).
func nearer(a, b hnswCand) bool  { return a.d < b.d }
func farther(a, b hnswCand) bool { return a.d > b.d }

// greedy walks level l towards q one best neighbour at a time (ef = 1).
func (h *HNSW) greedy(q []float32, cur hnswCand, l int, s *hnswScratch) hnswCand {
	for changed := true; changed; {
		changed = false
		s.nb = h.neighbours(cur.id, l, s.nb)
		for _, e := range s.nb {
			if d := h.dist(q, e); d < cur.d {
				cur = hnswCand{d, e}
				changed = true
			}
		}
	}
	return cur
}

// searchLayer is the paper's Algorithm 2: a best-first beam of width ef on
// level l. Nodes that accept rejects still route the search but stay out of
// the results. It stops early, returning false, once budget nodes are
// visited (budget <= 0: unbounded). Results are left in s.res.
func (h *HNSW) searchLayer(q []float32, ep hnswCand, ef, l int, accept func(uint32) bool, budget int, s *hnswScratch) bool {
	s.resetVisited(len(h.levels))
	s.cand.reset()
	s.res.reset()
	s.visit(ep.id)
	s.cand.push(ep)
	if accept == nil || accept(ep.id) {
		s.res.push(ep)
	}
	visited := 1
	for s.cand.len() > 0 {
		c := s.cand.pop()
		if s.res.len() >= ef && c.d > s.res.top().d {
			break
		}
		s.nb = h.neighbours(c.id, l, s.nb)
		for _, e := range s.nb {
			if !s.visit(e) {
				continue
			}
			visited++
			d := h.dist(q, e)
			if s.res.len() < ef || d < s.res.top().d {
				s.cand.push(hnswCand{d, e})
				if accept == nil || accept(e) {
					s.res.push(hnswCand{d, e})
					if s.res.len() > ef {
						s.res.pop()
					}
				}
			}
		}
		if budget > 0 && visited > budget {
			return false
		}
	}
	return true
}

// selectNeighbours is the paper's Algorithm 4 without extension: walking
// candidates nearest first, keep one only if it is nearer to the base than
// to every one kept, which spreads links across directions and keeps the
// graph navigable on clustered data. cands must be sorted ascending.
func (h *HNSW) selectNeighbours(cands []hnswCand, m int, out []hnswCand) []hnswCand {
	out = out[:0]
	if len(cands) <= m {
		return append(out, cands...)
	}
	for _, c := range cands {
		good := true
		vc := h.vec(c.id)
		for _, r := range out {
			if 1-vek32.Dot(vc, h.vec(r.id)) < c.d {
				good = false
				break
			}
		}
		if good {
			out = append(out, c)
			if len(out) == m {
				break
			}
		}
	}
	return out
}

func byDist(a, b hnswCand) int {
	switch {
	case a.d < b.d:
		return -1
	case a.d > b.d:
		return 1
	}
	return int(a.id) - int(b.id)
}

// link is the paper's Algorithm 1 for reserved node q; mu must be read-locked.
func (h *HNSW) link(q uint32, s *hnswScratch) {
	vq := h.vec(q)
	lq := int(h.levels[q])
	h.epMu.Lock()
	if h.maxLevel < 0 {
		h.entry, h.maxLevel = q, lq
		h.epMu.Unlock()
		return
	}
	ep, top := h.entry, h.maxLevel
	h.epMu.Unlock()

	cur := hnswCand{h.dist(vq, ep), ep}
	for l := top; l > lq; l-- {
		cur = h.greedy(vq, cur, l, s)
	}
	for l := min(lq, top); l >= 0; l-- {
		h.searchLayer(vq, cur, h.efC, l, nil, 0, s)
		s.sorted = append(s.sorted[:0], s.res.items...)
		slices.SortFunc(s.sorted, byDist)
		if len(s.sorted) > 0 && s.sorted[0].id == q {
			s.sorted = s.sorted[1:]
		}
		if len(s.sorted) == 0 {
			continue
		}
		cur = s.sorted[0]
		s.sel = h.selectNeighbours(s.sorted, h.m, s.sel)
		maxLinks := h.m
		if l == 0 {
			maxLinks = h.m0
		}

		mu := h.lock(q)
		mu.Lock()
		blk := h.linksAt(q, l)
		if blk[0] > 0 {
			s.sel = h.keepLinksIn(q, blk, s.sel, maxLinks, s)
		}
		blk[0] = uint32(len(s.sel))
		for k, c := range s.sel {
			blk[1+k] = c.id
		}
		mu.Unlock()

		for _, c := range s.sel {
			h.addLink(c.id, q, c.d, l, maxLinks, s)
		}
	}
	if lq > top {
		h.epMu.Lock()
		if lq > h.maxLevel {
			h.entry, h.maxLevel = q, lq
		}
		h.epMu.Unlock()
	}
}

// keepLinksIn merges into sel the links that blk, q's own block, already
// holds. Nodes of the same batch link in parallel: one that found q before
// q was linked has added itself to q's block, and may have no other way in,
// so overwriting the block would leave it unreachable. Past maxLinks the
// neighbour heuristic chooses. mu of q must be held.
func (h *HNSW) keepLinksIn(q uint32, blk []uint32, sel []hnswCand, maxLinks int, s *hnswScratch) []hnswCand {
	vq := h.vec(q)
	s.tmp = append(s.tmp[:0], sel...)
	for _, e := range blk[1 : 1+blk[0]] {
		if !slices.ContainsFunc(sel, func(c hnswCand) bool { return c.id == e }) {
			s.tmp = append(s.tmp, hnswCand{1 - vek32.Dot(vq, h.vec(e)), e})
		}
	}
	slices.SortFunc(s.tmp, byDist)
	return h.selectNeighbours(s.tmp, maxLinks, sel)
}

// addLink adds q to n's links at level l, re-selecting with the heuristic
// when n is full.
func (h *HNSW) addLink(n, q uint32, d float32, l, maxLinks int, s *hnswScratch) {
	mu := h.lock(n)
	mu.Lock()
	defer mu.Unlock()
	blk := h.linksAt(n, l)
	cnt := int(blk[0])
	for _, e := range blk[1 : 1+cnt] {
		if e == q {
			return
		}
	}
	if cnt < maxLinks {
		blk[1+cnt] = q
		blk[0]++
		return
	}
	vn := h.vec(n)
	s.tmp = append(s.tmp[:0], hnswCand{d, q})
	for _, e := range blk[1 : 1+cnt] {
		s.tmp = append(s.tmp, hnswCand{1 - vek32.Dot(vn, h.vec(e)), e})
	}
	slices.SortFunc(s.tmp, byDist)
	s.sel2 = h.selectNeighbours(s.tmp, maxLinks, s.sel2)
	blk[0] = uint32(len(s.sel2))
	for k, c := range s.sel2 {
		blk[1+k] = c.id
	}
}

// Search returns up to k live references nearest to q, best first.
// filter, if not nil, keeps only nodes i (Hit.Index) for which it returns
// true; a filter that passes few nodes falls back to an exact scan.
func (h *HNSW) Search(ctx context.Context, q []float32, k int, filter func(i int) bool) ([]Hit, error) {
	return h.SearchEf(ctx, q, k, 0, filter)
}

// SearchEf is Search with an explicit beam width (ef <= 0: the default).
func (h *HNSW) SearchEf(ctx context.Context, q []float32, k, ef int, filter func(i int) bool) ([]Hit, error) {
	if err := checkVec(h.dim, q); err != nil {
		return nil, fmt.Errorf("index: search: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ef <= 0 {
		ef = h.EfSearch()
	}
	ef = max(ef, k)
	s := h.getScratch()
	defer h.scratch.Put(s)

	h.mu.RLock()
	defer h.mu.RUnlock()
	h.epMu.Lock()
	ep, top := h.entry, h.maxLevel
	h.epMu.Unlock()
	if top < 0 || h.live == 0 {
		return []Hit{}, nil
	}
	accept := func(i uint32) bool { return !h.isDeleted(i) && (filter == nil || filter(int(i))) }
	if k <= 0 || k >= h.live {
		return h.scan(ctx, q, h.live, accept) // all of them, as Flat does
	}
	cur := hnswCand{h.dist(q, ep), ep}
	for l := top; l > 0; l-- {
		cur = h.greedy(q, cur, l, s)
	}
	budget := 0
	if filter != nil {
		// A graph walk touches vectors at random; past a quarter of the
		// graph a sequential scan is cheaper and exact.
		budget = len(h.levels) / 4
	}
	complete := h.searchLayer(q, cur, ef, 0, accept, budget, s)
	if !complete || s.res.len() < k {
		return h.scan(ctx, q, k, accept)
	}
	return h.hits(s.res.items, k), nil
}

// hits converts candidates to the best k hits, ordered as Flat orders them.
func (h *HNSW) hits(cands []hnswCand, k int) []Hit {
	out := make([]Hit, len(cands))
	for j, c := range cands {
		out[j] = Hit{ID: h.ids[c.id], Index: int(c.id), Score: 1 - c.d}
	}
	SortHits(out)
	return out[:min(k, len(out))]
}

// scan is the exact fallback for selective filters; mu must be read-locked.
func (h *HNSW) scan(ctx context.Context, q []float32, k int, accept func(uint32) bool) ([]Hit, error) {
	res := heap[hnswCand]{less: farther}
	for i := range uint32(len(h.levels)) {
		if i&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if !accept(i) {
			continue
		}
		res.offer(hnswCand{h.dist(q, i), i}, k)
	}
	return h.hits(res.items, k), nil
}

// SearchBatch runs Search for each query on Workers goroutines.
func (h *HNSW) SearchBatch(ctx context.Context, qs [][]float32, k int) ([][]Hit, error) {
	out := make([][]Hit, len(qs))
	errs := make([]error, len(qs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(h.workers, len(qs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= len(qs) {
					return
				}
				out[j], errs[j] = h.Search(ctx, qs[j], k, nil)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
