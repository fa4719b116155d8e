package dataset

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// confiner checks item paths against a data root resolved once.
type confiner struct {
	given string // absolute, as given
	root  string // absolute, symbolic links resolved
}

func newConfiner(root string) (*confiner, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("dataset: data root %s: %w", root, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("dataset: data root: %w", err)
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("dataset: data root %s is not a directory", root)
	}
	return &confiner{given: abs, root: real}, nil
}

// Confine returns an error unless path, once made absolute and with `..`
// and symbolic links resolved, lies inside root. A path that does not
// exist yet is resolved through its nearest existing parent, so a missing
// file inside root is left for the reader to report; a symbolic link that
// leads nowhere (dangling, or a loop) is an error, since where it would
// lead cannot be checked.
func Confine(root, path string) error {
	c, err := newConfiner(root)
	if err != nil {
		return err
	}
	if err := c.check(path, path); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	return nil
}

// check confines path, calling it shown in errors (a manifest's path as
// written, not as resolved).
func (c *confiner) check(path, shown string) error {
	real, err := resolve(path)
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	if inside(c.root, real) {
		return nil
	}
	if lexical, err := filepath.Abs(path); err == nil && (inside(c.given, lexical) || inside(c.root, lexical)) {
		return fmt.Errorf("%s leads through a symbolic link to %s, outside the data root %s", shown, real, c.given)
	}
	if shown == real {
		return fmt.Errorf("%s is outside the data root %s", shown, c.given)
	}
	return fmt.Errorf("%s resolves to %s, outside the data root %s", shown, real, c.given)
}

// inside reports whether path is root or lies below it; both are clean and
// absolute.
func inside(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// resolve makes path absolute and resolves every symbolic link in it,
// going through the nearest existing parent for a path that does not exist.
func resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err == nil {
		return real, nil
	}
	if _, lerr := os.Lstat(abs); lerr == nil {
		// It exists, yet cannot be resolved: a dangling link or a loop.
		return "", fmt.Errorf("symbolic link leads nowhere: %w", err)
	} else if !errors.Is(lerr, fs.ErrNotExist) {
		return "", lerr
	}
	parent := filepath.Dir(abs)
	if parent == abs {
		return abs, nil
	}
	rp, err := resolve(parent)
	if err != nil {
		return "", err
	}
	return filepath.Join(rp, filepath.Base(abs)), nil
}
