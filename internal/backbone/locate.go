package backbone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Environment variables that override where the runtime and models are found.
const (
	EnvLibrary = "PRODSEARCH_ORT_LIB" // path to libonnxruntime.so.1
	EnvModels  = "PRODSEARCH_MODELS"  // directory holding the .onnx files
)

// LibraryName is the file that `make setup` extracts from the npm package
// onnxruntime-node into lib/.
const LibraryName = "libonnxruntime.so.1"

// FindLibrary returns the ONNX Runtime shared library: the explicit path, else
// $PRODSEARCH_ORT_LIB, else lib/libonnxruntime.so.1 in the first ancestor of
// the executable's or the working directory that has one. Searching ancestors
// is what lets bin/prodsearch and `go test ./internal/...` work after
// `make setup` with no flag.
func FindLibrary(explicit string) (string, error) {
	if explicit == "" {
		explicit = os.Getenv(EnvLibrary)
	}
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("onnxruntime library %s unusable (set --ort-lib or %s, or run `make setup`): %w", explicit, EnvLibrary, err)
		}
		return explicit, nil
	}
	if p := findUp(filepath.Join("lib", LibraryName)); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("onnxruntime library %s not found: run `make setup` (or set %s)", LibraryName, EnvLibrary)
}

// FindModelDir returns the model directory: the explicit one, else
// $PRODSEARCH_MODELS, else shared/models in the first ancestor of the
// executable's or the working directory (a clone with ../shared beside it).
func FindModelDir(explicit string) (string, error) {
	if explicit == "" {
		explicit = os.Getenv(EnvModels)
	}
	if explicit != "" {
		st, err := os.Stat(explicit)
		if err != nil {
			return "", fmt.Errorf("model directory: %w", err)
		}
		if !st.IsDir() {
			return "", fmt.Errorf("model directory %s is not a directory", explicit)
		}
		return explicit, nil
	}
	if p := findUp(filepath.Join("shared", "models")); p != "" {
		return p, nil
	}
	return "", errors.New("model directory not found: expected ../shared/models beside the clone (set --models or " + EnvModels + ")")
}

// findUp looks for rel under every ancestor of the executable's directory and
// of the working directory, nearest first.
func findUp(rel string) string {
	var starts []string
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		starts = append(starts, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, rel)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ""
}
