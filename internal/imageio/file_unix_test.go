//go:build unix

package imageio

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"prodsearch/internal/imageio/imagetest"
)

// readWithin runs ReadBytes, failing the test instead of hanging with it.
func readWithin(t *testing.T, path string, maxBytes int64) ([]byte, error) {
	t.Helper()
	type result struct {
		data []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		d, err := ReadBytes(path, maxBytes)
		ch <- result{d, err}
	}()
	select {
	case r := <-ch:
		return r.data, r.err
	case <-time.After(5 * time.Second):
		t.Fatalf("ReadBytes(%s) hangs", path)
		return nil, nil
	}
}

// TestReadBytesSpecialFiles covers what a manifest or folder may point at
// besides photos: each is refused at once with an error naming the path.
func TestReadBytesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.png")
	png := imagetest.PNG(t, imagetest.Quadrants(8, 6))
	if err := os.WriteFile(good, png, 0o644); err != nil {
		t.Fatal(err)
	}
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Skipf("symlinks unavailable: %v", err)
		}
		return p
	}
	loopA := link("loop-a.jpg", "loop-b.jpg")
	link("loop-b.jpg", "loop-a.jpg")
	dangling := link("dangling.jpg", "gone.jpg")
	toGood := link("alias.png", "good.png")
	fifo := filepath.Join(dir, "pipe.jpg")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	subdir := filepath.Join(dir, "folder.jpg")
	if err := os.Mkdir(subdir, 0o755); err != nil {
		t.Fatal(err)
	}

	for _, p := range []string{good, toGood} {
		data, err := readWithin(t, p, 1<<20)
		if err != nil || string(data) != string(png) {
			t.Errorf("%s: %d bytes, %v", p, len(data), err)
		}
	}
	cases := []struct {
		name, path, msg string
		is              error
		max             int64
	}{
		{"symlink loop", loopA, "too many levels of symbolic links", nil, 1 << 20},
		{"dangling symlink", dangling, "no such file", fs.ErrNotExist, 1 << 20},
		{"fifo", fifo, "not a regular file", nil, 1 << 20},
		{"directory", subdir, "not a regular file", nil, 1 << 20},
		{"over the limit", good, "exceeds limit of 10", ErrTooLarge, 10},
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		cases = append(cases, struct {
			name, path, msg string
			is              error
			max             int64
		}{"endless device", link("zero.jpg", "/dev/zero"), "not a regular file", nil, 0})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readWithin(t, c.path, c.max)
			if err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want one naming %s and saying %q", err, c.path, c.msg)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("err = %v, want %v", err, c.is)
			}
			t.Logf("refused: %v", err)
		})
	}
}
