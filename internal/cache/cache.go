// Package cache keeps backbone descriptors on disk keyed by (image content
// hash, describer key), so re-running infer, eval, tune or train with other
// search settings never re-runs the network. Like Go's build cache it is one
// small file per entry, written to a temporary name and renamed into place:
// any number of processes can share it without a lock, and a crash leaves
// either the whole entry or none.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"prodsearch/internal/vec"
)

// EnvDir overrides where the default cache lives.
const EnvDir = "PRODSEARCH_CACHE"

// Cache is a descriptor store. A nil *Cache is valid and caches nothing, so
// callers can switch caching off without branching.
type Cache struct {
	dir string
}

// DefaultDir is $PRODSEARCH_CACHE, else .cache/prodsearch under the working
// directory.
func DefaultDir() string {
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	return filepath.Join(".cache", "prodsearch")
}

// Open opens or creates the cache directory.
func Open(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &Cache{dir: dir}, nil
}

// Close exists so callers can treat the cache like other resources; the
// cache holds no open file between calls.
func (c *Cache) Close() error { return nil }

// ContentHash is the image part of a cache key: the same bytes under another
// name hit the same entry.
func ContentHash(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func (c *Cache) path(key, hash string) (string, error) {
	if !validPart(key) || !validPart(hash) || len(hash) < 3 {
		return "", fmt.Errorf("cache: malformed key %q/%q", key, hash)
	}
	return filepath.Join(c.dir, key, hash[:2], hash[2:]), nil
}

// validPart keeps keys to plain names so no key can point outside dir.
func validPart(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Get returns the descriptors stored for the content hashes under one
// describer key; missing entries (and empty hashes) are nil.
func (c *Cache) Get(key string, hashes []string) ([][]float32, error) {
	out := make([][]float32, len(hashes))
	if c == nil {
		return out, nil
	}
	for i, h := range hashes {
		if h == "" {
			continue
		}
		p, err := c.path(key, h)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		if out[i], err = decode(b); err != nil {
			return nil, fmt.Errorf("cache entry %s: %w", p, err)
		}
	}
	return out, nil
}

// Put stores descriptors; nil descriptors are skipped.
func (c *Cache) Put(key string, hashes []string, vecs [][]float32) error {
	if c == nil {
		return nil
	}
	if len(hashes) != len(vecs) {
		return errors.New("cache: hashes and vectors differ in length")
	}
	for i, h := range hashes {
		if vecs[i] == nil {
			continue
		}
		p, err := c.path(key, h)
		if err != nil {
			return err
		}
		if err := writeAtomic(p, encode(vecs[i])); err != nil {
			return fmt.Errorf("cache: %w", err)
		}
	}
	return nil
}

// writeAtomic writes a temporary file and renames it over path. No fsync: a
// lost cache entry after a power cut is recomputed, never wrong.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

func encode(v []float32) []byte {
	return vec.AppendF32(make([]byte, 0, 4*len(v)), v)
}

func decode(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("length %d is not a multiple of 4", len(b))
	}
	v := make([]float32, len(b)/4)
	vec.DecodeF32(v, b)
	return v, nil
}
