// Package cache keeps backbone descriptors on disk keyed by (image content
// hash, describer key), so re-running infer, eval, tune or train with other
// search settings never re-runs the network. It is a single bbolt file: one
// writer process at a time, crash-safe, readable while written.
package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// EnvDir overrides where the default cache file lives.
const EnvDir = "PRODSEARCH_CACHE"

// Cache is a descriptor store. A nil *Cache is valid and caches nothing, so
// callers can switch caching off without branching.
type Cache struct {
	db *bolt.DB
}

// DefaultPath is $PRODSEARCH_CACHE/descriptors.db, else
// .cache/prodsearch/descriptors.db under the working directory.
func DefaultPath() string {
	if d := os.Getenv(EnvDir); d != "" {
		return filepath.Join(d, "descriptors.db")
	}
	return filepath.Join(".cache", "prodsearch", "descriptors.db")
}

// Open opens or creates the cache file.
func Open(path string) (*Cache, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w (another prodsearch process may hold it; use --cache off)", path, err)
	}
	return &Cache{db: db}, nil
}

// Close releases the file.
func (c *Cache) Close() error {
	if c == nil {
		return nil
	}
	return c.db.Close()
}

// ContentHash is the image part of a cache key: the same bytes under another
// name hit the same entry.
func ContentHash(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// Get returns the descriptors stored for the content hashes under one
// describer key; missing entries are nil.
func (c *Cache) Get(key string, hashes []string) ([][]float32, error) {
	out := make([][]float32, len(hashes))
	if c == nil {
		return out, nil
	}
	err := c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(key))
		if b == nil {
			return nil
		}
		for i, h := range hashes {
			if v := b.Get([]byte(h)); v != nil {
				d, err := decode(v)
				if err != nil {
					return fmt.Errorf("cache entry %s/%s: %w", key, h, err)
				}
				out[i] = d
			}
		}
		return nil
	})
	return out, err
}

// Put stores descriptors in one transaction.
func (c *Cache) Put(key string, hashes []string, vecs [][]float32) error {
	if c == nil {
		return nil
	}
	if len(hashes) != len(vecs) {
		return errors.New("cache: hashes and vectors differ in length")
	}
	return c.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(key))
		if err != nil {
			return err
		}
		for i, h := range hashes {
			if vecs[i] == nil {
				continue
			}
			if err := b.Put([]byte(h), encode(vecs[i])); err != nil {
				return err
			}
		}
		return nil
	})
}

func encode(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func decode(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("length %d is not a multiple of 4", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}
