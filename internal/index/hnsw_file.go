package index

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"prodsearch/internal/vec"
)

// The graph file holds everything a search needs, so a restart reads it
// instead of rebuilding. Layout, little-endian:
//
//	magic "PSHNSW01"
//	u32 dim, m, efConstruction, efSearch, nodes, entry; i32 maxLevel; u64 seed
//	nodes x u8 level
//	nodes x (u32 length, bytes) ID
//	ceil(nodes/64) x u64 tombstone bits
//	nodes x dim x f32 vectors
//	nodes x (2m+1) x u32 level-0 links (count, then neighbours)
//	for each node with level > 0: level x (m+1) x u32
//	u32 CRC-32C of all the above
const hnswMagic = "PSHNSW01"

// ErrCorrupt reports a graph file that fails validation.
var ErrCorrupt = errors.New("index: corrupt hnsw file")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Save writes the graph to path atomically (temporary file, fsync, rename).
func (h *HNSW) Save(path string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("index: hnsw save: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = h.WriteTo(f); err != nil {
		return fmt.Errorf("index: hnsw save %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("index: hnsw save %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("index: hnsw save %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("index: hnsw save: %w", err)
	}
	return nil
}

// LoadHNSW reads a graph written by Save. cfg supplies Workers; the graph's
// own M, efConstruction and efSearch come from the file.
func LoadHNSW(path string, cfg HNSWConfig) (*HNSW, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("index: hnsw load: %w", err)
	}
	defer f.Close()
	h, err := ReadHNSW(bufio.NewReaderSize(f, 1<<20), cfg)
	if err != nil {
		return nil, fmt.Errorf("index: hnsw load %s: %w", path, err)
	}
	return h, nil
}

type crcWriter struct {
	w   *bufio.Writer
	crc hash.Hash32
	buf []byte
	err error
}

func (c *crcWriter) flushBuf() {
	if c.err == nil && len(c.buf) > 0 {
		c.crc.Write(c.buf)
		_, c.err = c.w.Write(c.buf)
	}
	c.buf = c.buf[:0]
}

func (c *crcWriter) grow(n int) {
	if len(c.buf)+n > cap(c.buf) {
		c.flushBuf()
	}
}

func (c *crcWriter) u32(v uint32) { c.grow(4); c.buf = binary.LittleEndian.AppendUint32(c.buf, v) }
func (c *crcWriter) u64(v uint64) { c.grow(8); c.buf = binary.LittleEndian.AppendUint64(c.buf, v) }
func (c *crcWriter) bytes(b []byte) {
	c.flushBuf()
	if c.err == nil {
		c.crc.Write(b)
		_, c.err = c.w.Write(b)
	}
}

// WriteTo serialises the graph; Adds and Removes wait until it is done.
func (h *HNSW) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<20)
	c := &crcWriter{w: bw, crc: crc32.New(castagnoli), buf: make([]byte, 0, 1<<16)}

	h.mu.RLock()
	defer h.mu.RUnlock()
	h.epMu.Lock()
	entry, maxLevel := h.entry, h.maxLevel
	h.epMu.Unlock()
	n := uint32(len(h.levels))

	c.bytes([]byte(hnswMagic))
	for _, v := range []uint32{uint32(h.dim), uint32(h.m), uint32(h.efC), uint32(h.EfSearch()), n, entry, uint32(int32(maxLevel))} {
		c.u32(v)
	}
	c.u64(h.seed)
	c.bytes(h.levels)
	for _, id := range h.ids {
		c.u32(uint32(len(id)))
		c.bytes([]byte(id))
	}
	for _, b := range h.deleted[:(n+63)/64] {
		c.u64(b)
	}
	for i := range n {
		for _, x := range h.vec(i) {
			c.u32(math.Float32bits(x))
		}
	}
	for i := range n {
		for _, x := range h.linksAt(i, 0) {
			c.u32(x)
		}
	}
	for i := range n {
		for _, x := range h.upper[i] {
			c.u32(x)
		}
	}
	c.flushBuf()
	if c.err == nil {
		_, c.err = c.w.Write(binary.LittleEndian.AppendUint32(nil, c.crc.Sum32()))
	}
	if c.err == nil {
		c.err = bw.Flush()
	}
	return cw.n, c.err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type crcReader struct {
	r   io.Reader
	crc hash.Hash32
	buf [8]byte
	err error
}

func (c *crcReader) full(b []byte) {
	if c.err != nil {
		return
	}
	if _, err := io.ReadFull(c.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: truncated", ErrCorrupt)
		}
		c.err = err
		return
	}
	c.crc.Write(b)
}

func (c *crcReader) u32() uint32 {
	c.full(c.buf[:4])
	return binary.LittleEndian.Uint32(c.buf[:4])
}

func (c *crcReader) u64() uint64 {
	c.full(c.buf[:8])
	return binary.LittleEndian.Uint64(c.buf[:8])
}

// u32s fills dst, decoding in chunks so gigabytes need no second copy.
func (c *crcReader) u32s(dst []uint32) {
	var chunk [4096]byte
	for len(dst) > 0 && c.err == nil {
		k := min(len(dst), len(chunk)/4)
		c.full(chunk[:4*k])
		for j := range k {
			dst[j] = binary.LittleEndian.Uint32(chunk[4*j:])
		}
		dst = dst[k:]
	}
}

func (c *crcReader) f32s(dst []float32) {
	var chunk [4096]byte
	for len(dst) > 0 && c.err == nil {
		k := min(len(dst), len(chunk)/4)
		c.full(chunk[:4*k])
		vec.DecodeF32(dst[:k], chunk[:4*k])
		dst = dst[k:]
	}
}

// readSlabs reads n blocks of blk elements into slabs of hnswSlabNodes
// blocks, stopping when read reports an error. Memory follows the bytes
// read rather than the header's claims: the first slab grows, doubling,
// as its blocks arrive (a small file claiming dim 65536 must not cost a
// 1 GiB slab), and each later slab is allocated whole and read into
// directly, since the full slab before it already proved as many bytes.
// The last slab may stay short; reserve completes it when the graph grows.
func readSlabs[E any](n uint32, blk int, read func([]E) bool) [][]E {
	var slabs [][]E
	for i := uint32(0); i < n; i++ {
		switch {
		case i < hnswSlabNodes:
			if i == 0 {
				// Start at 4 MiB or so, then at most double what was read.
				slabs = append(slabs, make([]E, 0, min(hnswSlabNodes*blk, max(blk, 1<<20))))
			}
			s := slabs[0]
			if len(s)+blk > cap(s) {
				// Double (append would grow a large slice by only 1.25x,
				// copying the slab many times over).
				g := make([]E, len(s), min(hnswSlabNodes*blk, max(2*cap(s), len(s)+blk)))
				copy(g, s)
				s = g
			}
			s = s[:len(s)+blk]
			if !read(s[len(s)-blk:]) {
				return slabs
			}
			slabs[0] = s
		default:
			if i&hnswSlabMask == 0 {
				slabs = append(slabs, make([]E, hnswSlabNodes*blk))
			}
			off := int(i&hnswSlabMask) * blk
			if !read(slabs[len(slabs)-1][off : off+blk]) {
				return slabs
			}
		}
	}
	return slabs
}

// ReadHNSW decodes a graph written by WriteTo, validating every link so a
// damaged file yields ErrCorrupt rather than a panic at search time.
func ReadHNSW(r io.Reader, cfg HNSWConfig) (*HNSW, error) {
	c := &crcReader{r: r, crc: crc32.New(castagnoli)}
	var magic [len(hnswMagic)]byte
	c.full(magic[:])
	if c.err != nil {
		return nil, c.err
	}
	if string(magic[:]) != hnswMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorrupt, magic[:])
	}
	dim, m, efC, efS, n, entry := c.u32(), c.u32(), c.u32(), c.u32(), c.u32(), c.u32()
	maxLevel := int(int32(c.u32()))
	seed := c.u64()
	if c.err != nil {
		return nil, c.err
	}
	const maxDim, maxM = 1 << 16, 1 << 10
	if dim == 0 || dim > maxDim || m < 2 || m > maxM || n >= hnswNone || maxLevel < -1 || maxLevel > hnswMaxLevel ||
		(n == 0) != (maxLevel < 0) || (n > 0 && entry >= n) {
		return nil, fmt.Errorf("%w: bad header (dim %d, m %d, nodes %d, entry %d, max level %d)", ErrCorrupt, dim, m, n, entry, maxLevel)
	}
	cfg.M, cfg.EfConstruction, cfg.EfSearch, cfg.Seed = int(m), int(efC), int(efS), seed
	h, err := NewHNSW(int(dim), cfg)
	if err != nil {
		return nil, err
	}
	h.rng = rand.New(rand.NewPCG(seed, uint64(n))) // fresh draws, not a replay of the build's
	h.entry, h.maxLevel = entry, maxLevel

	// Grow tables as data arrives, so a header claiming huge counts
	// cannot make us allocate before the bytes prove it.
	for i := uint32(0); i < n && c.err == nil; i++ {
		var b [1]byte
		c.full(b[:])
		if b[0] > hnswMaxLevel || int(b[0]) > maxLevel {
			return nil, fmt.Errorf("%w: node %d level %d above max %d", ErrCorrupt, i, b[0], maxLevel)
		}
		h.levels = append(h.levels, b[0])
	}
	if c.err == nil && n > 0 && int(h.levels[entry]) != maxLevel {
		return nil, fmt.Errorf("%w: entry %d is not on the top level", ErrCorrupt, entry)
	}
	for i := uint32(0); i < n && c.err == nil; i++ {
		l := c.u32()
		if l > 1<<16 {
			return nil, fmt.Errorf("%w: id %d length %d", ErrCorrupt, i, l)
		}
		b := make([]byte, l)
		c.full(b)
		h.ids = append(h.ids, string(b))
	}
	for range (n + 63) / 64 {
		if c.err != nil {
			break
		}
		h.deleted = append(h.deleted, c.u64())
	}
	if c.err == nil {
		h.vecs = readSlabs(n, h.dim, func(b []float32) bool { c.f32s(b); return c.err == nil })
	}
	if c.err == nil {
		h.links0 = readSlabs(n, h.m0+1, func(b []uint32) bool { c.u32s(b); return c.err == nil })
	}
	h.upper = make([][]uint32, 0, min(int(n), 1<<20))
	for i := uint32(0); i < n && c.err == nil; i++ {
		var u []uint32
		if h.levels[i] > 0 {
			u = make([]uint32, int(h.levels[i])*(h.m+1))
			c.u32s(u)
		}
		h.upper = append(h.upper, u)
	}
	if c.err != nil {
		return nil, c.err
	}
	want := c.crc.Sum32()
	var tail [4]byte
	if _, err := io.ReadFull(r, tail[:]); err != nil {
		return nil, fmt.Errorf("%w: missing checksum", ErrCorrupt)
	}
	if got := binary.LittleEndian.Uint32(tail[:]); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, got, want)
	}

	for i := range n {
		for l := 0; l <= int(h.levels[i]); l++ {
			blk := h.linksAt(i, l)
			limit := h.m
			if l == 0 {
				limit = h.m0
			}
			if int(blk[0]) > limit {
				return nil, fmt.Errorf("%w: node %d has %d links at level %d", ErrCorrupt, i, blk[0], l)
			}
			for _, e := range blk[1 : 1+blk[0]] {
				if e >= n || int(h.levels[e]) < l {
					return nil, fmt.Errorf("%w: node %d links to %d at level %d", ErrCorrupt, i, e, l)
				}
			}
		}
		if h.isDeleted(i) {
			continue
		}
		if j, dup := h.byID[h.ids[i]]; dup {
			return nil, fmt.Errorf("%w: id %q on nodes %d and %d", ErrCorrupt, h.ids[i], j, i)
		}
		h.byID[h.ids[i]] = i
		h.live++
	}
	if n%64 != 0 && len(h.deleted) > 0 && h.deleted[len(h.deleted)-1]>>(n%64) != 0 {
		return nil, fmt.Errorf("%w: tombstone bits past the last node", ErrCorrupt)
	}
	return h, nil
}
