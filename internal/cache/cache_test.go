package cache

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTripAndMisses(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := ContentHash([]byte("a")), ContentHash([]byte("b"))
	if err := c.Put("abc123", []string{h1, h2}, [][]float32{{1, -2.5, 3}, nil}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get("abc123", []string{h1, h2, ""})
	if err != nil {
		t.Fatal(err)
	}
	if len(got[0]) != 3 || got[0][1] != -2.5 || got[1] != nil || got[2] != nil {
		t.Fatalf("got %v", got)
	}
	other, err := c.Get("def456", []string{h1})
	if err != nil || other[0] != nil {
		t.Fatalf("another key must miss: %v %v", other, err)
	}
}

func TestRejectsMalformedKeysAndEntries(t *testing.T) {
	dir := t.TempDir()
	c, _ := Open(dir)
	if _, err := c.Get("../etc", []string{"aaaa"}); err == nil {
		t.Fatal("path-like key accepted")
	}
	if err := c.Put("k", []string{"a", "b"}, [][]float32{{1}}); err == nil {
		t.Fatal("length mismatch accepted")
	}
	h := ContentHash([]byte("x"))
	p := filepath.Join(dir, "abc", h[:2], h[2:])
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte{1, 2, 3}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("abc", []string{h}); err == nil {
		t.Fatal("torn entry accepted")
	}
}

func TestNilCacheIsOff(t *testing.T) {
	var c *Cache
	if err := c.Put("k", []string{"aa"}, [][]float32{{1}}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get("k", []string{"aa"})
	if err != nil || got[0] != nil {
		t.Fatalf("nil cache returned %v, %v", got, err)
	}
}
