package testenv

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
)

// GoBuild builds the command package pkg (an import path) into dir with the
// go tool and returns the binary's path. It builds without the race
// detector even under -race: the tests that run such a binary check their
// own goroutines, and the child (ONNX Runtime, training, bbolt) would run
// about five times slower instrumented. Without a go tool the error wraps
// exec.ErrNotFound.
func GoBuild(dir, pkg string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, filepath.Base(pkg))
	if out, err := exec.Command(goTool, "build", "-o", path, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return path, nil
}

// RequireBuilt checks GoBuild's error: it skips as Require does when the go
// tool is missing and fails the test on any other error.
func RequireBuilt(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, exec.ErrNotFound) {
		Require(t, "the go command", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}
