// Package testenv finds the runtime, models, data and go tool that
// integration tests need, skipping visibly when they are missing, except
// under CI=true, where a missing piece is a failure (a green CI must not
// hide a skipped test).
package testenv

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"prodsearch/internal/backbone"
	"prodsearch/internal/dataset"
	"prodsearch/internal/onnxgraph"
)

// Require skips (or, under CI=true, fails) the test when err is not nil.
func Require(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v", what, err)
	}
	t.Skipf("SKIP: %s missing: %v (run `make setup` with ../shared beside the clone)", what, err)
}

// Models returns the verified model directory and runtime library.
func Models(t testing.TB) (dir, lib string) {
	t.Helper()
	lib, err := backbone.FindLibrary("")
	Require(t, "ONNX Runtime library", err)
	dir, err = backbone.FindModelDir("")
	Require(t, "model directory", err)
	return dir, lib
}

// Builtins returns the shipped backbones with the model directory and the
// runtime library, skipping as Models does when those are missing.
func Builtins(t testing.TB) (specs []backbone.Spec, dir, lib string) {
	t.Helper()
	dir, lib = Models(t)
	specs, err := backbone.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return specs, dir, lib
}

// FineTunable returns the shipped backbones whose specs list tail blocks to
// fine-tune, with the model directory and runtime library, skipping as
// Models does when those are missing.
func FineTunable(t testing.TB) (specs []backbone.Spec, dir, lib string) {
	t.Helper()
	specs, dir, lib = Builtins(t)
	return slices.DeleteFunc(specs, func(s backbone.Spec) bool { return len(s.Blocks) == 0 }), dir, lib
}

// Graph loads the ONNX graph of a shipped backbone from the model directory.
func Graph(t testing.TB, spec backbone.Spec, dir string) *onnxgraph.Model {
	t.Helper()
	path, err := spec.ModelPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnxgraph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// NewGraph starts an ONNX graph (opset 13) with one float input "x" for a
// test to build on, and must, which fails t on an error while building.
func NewGraph(t testing.TB) (m *onnxgraph.Model, must func(error)) {
	t.Helper()
	m, err := onnxgraph.New(13, onnxgraph.FloatValue("x"))
	if err != nil {
		t.Fatal(err)
	}
	return m, func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Trunk opens in ONNX Runtime, on one thread, the part of a shipped
// backbone's graph m that ends at block cut; the caller destroys it.
func Trunk(t testing.TB, m *onnxgraph.Model, spec backbone.Spec, cut, lib string) *backbone.Graph {
	t.Helper()
	trunk, _, err := m.Cut(cut, spec.Output)
	if err != nil {
		t.Fatal(err)
	}
	data, err := trunk.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := backbone.OpenGraph(data, trunk.InputNames(), []string{cut}, backbone.Options{Library: lib, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// GroceryStore returns the splits directory of ../shared/data/grocerystore.
func GroceryStore(t testing.TB) string {
	t.Helper()
	models, err := backbone.FindModelDir("")
	Require(t, "shared directory", err)
	dir := filepath.Join(filepath.Dir(models), "data", "grocerystore", "splits")
	_, err = os.Stat(filepath.Join(dir, "query.tsv"))
	Require(t, "GroceryStore data", err)
	return dir
}

// Split loads one file of GroceryStore's splits folder (such as
// "train.tsv"), skipping as GroceryStore does without the data.
func Split(t testing.TB, name string) *dataset.Set {
	t.Helper()
	set, err := dataset.Load(filepath.Join(GroceryStore(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return set
}
