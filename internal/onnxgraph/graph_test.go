package onnxgraph_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"prodsearch/internal/backbone"
	"prodsearch/internal/onnxgraph"
	"prodsearch/internal/testenv"
	"prodsearch/internal/vec/vectest"
)

// tinyModel builds y = Relu(x·A)·B with an extra output h = Relu(x·A).
func tinyModel(t *testing.T) *onnxgraph.Model {
	t.Helper()
	m, must := testenv.NewGraph(t)
	must(m.AddInitializer("A", []int64{3, 4}, []float32{1, 0, -1, 2, 0, 1, 1, -2, 1, 1, 0, 0}))
	must(m.AddInitializer("B", []int64{4, 2}, []float32{1, 0, 0, 1, 1, 1, -1, 1}))
	must(m.AddNode(onnxgraph.NewNode("MatMul", "mm1", []string{"x", "A"}, []string{"a"})))
	must(m.AddNode(onnxgraph.NewNode("Relu", "relu", []string{"a"}, []string{"h"})))
	must(m.AddNode(onnxgraph.NewNode("MatMul", "mm2", []string{"h", "B"}, []string{"y"})))
	must(m.AddOutput("y"))
	return m
}

func TestEditRoundTrip(t *testing.T) {
	m := tinyModel(t)
	if err := m.AddNode(onnxgraph.NewNode("Relu", "bad", []string{"nope"}, []string{"z"})); !errors.Is(err, onnxgraph.ErrNotFound) {
		t.Fatalf("node with a missing input: %v", err)
	}
	if err := m.AddNode(onnxgraph.NewNode("Relu", "dup", []string{"a"}, []string{"h"})); err == nil {
		t.Fatal("node redefining h accepted")
	}
	if err := m.ReplaceFloats("A", []float32{1}); err == nil {
		t.Fatal("replacement of the wrong size accepted")
	}
	if err := m.ReplaceFloats("missing", nil); !errors.Is(err, onnxgraph.ErrNotFound) {
		t.Fatalf("replacing a missing initializer: %v", err)
	}
	want := []float32{2, 2, 2, 2, 2, 2, 2, 2}
	if err := m.ReplaceFloats("B", want); err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := m.Marshal()
	if err != nil || string(again) != string(data) {
		t.Fatal("marshalling is not deterministic")
	}
	back, err := onnxgraph.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	got, dims, err := back.Floats("B")
	if err != nil || len(dims) != 2 || dims[0] != 4 || dims[1] != 2 {
		t.Fatalf("B after round trip: dims %v, %v", dims, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("B[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if p, i := back.Producer("h"); p == nil || p.Name != "relu" || i != 1 {
		t.Fatalf("producer of h: %v at %d", p, i)
	}
	if p, i := back.Producer("x"); p != nil || i != -1 {
		t.Fatal("a graph input has no producer")
	}
	if c := back.Consumers("a"); len(c) != 1 || c[0].Name != "relu" {
		t.Fatalf("consumers of a: %v", c)
	}
	if _, err := onnxgraph.Parse([]byte{0xff, 0xff}); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestCutTiny(t *testing.T) {
	m := tinyModel(t)
	trunk, tail, err := m.Cut("h")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(trunk.Graph().Node); n != 2 {
		t.Errorf("trunk has %d nodes, want 2", n)
	}
	if n := len(tail.Graph().Node); n != 1 || tail.Initializer("A") != nil || tail.Initializer("B") == nil {
		t.Errorf("tail has %d nodes and the wrong initializers", n)
	}
	if in := tail.InputNames(); len(in) != 1 || in[0] != "h" {
		t.Errorf("tail inputs %v", in)
	}
	// A cut that a branch bypasses cannot make a self-contained tail.
	if err := m.AddNode(onnxgraph.NewNode("Add", "skip", []string{"y", "a"}, []string{"s"})); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Extract([]string{"h"}, []string{"s"}); err == nil {
		t.Fatal("tail bypassed by a residual branch accepted")
	}
	if _, _, err := m.Cut("nope"); !errors.Is(err, onnxgraph.ErrNotFound) {
		t.Fatalf("cut at a missing tensor: %v", err)
	}
}

func run(t *testing.T, m *onnxgraph.Model, lib string, inputs []string, outputs []string, in ...backbone.Tensor) []backbone.Tensor {
	t.Helper()
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := backbone.OpenGraph(data, inputs, outputs, backbone.Options{Library: lib, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Destroy()
	out, err := g.Run(context.Background(), in...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTinyRunsInORT(t *testing.T) {
	_, lib := testenv.Models(t)
	m := tinyModel(t)
	x := backbone.Tensor{Data: []float32{1, 2, 3, -1, 0, 2}, Shape: []int64{2, 3}}
	whole := run(t, m, lib, []string{"x"}, []string{"y"}, x)
	// x·A row 0: [4,5,1,-2] -> relu [4,5,1,0] -> ·B = [4+1, 5+1] = [5, 6]
	if whole[0].Data[0] != 5 || whole[0].Data[1] != 6 {
		t.Fatalf("tiny model row 0 = %v, want [5 6]", whole[0].Data[:2])
	}
	trunk, tail, err := m.Cut("h")
	if err != nil {
		t.Fatal(err)
	}
	h := run(t, trunk, lib, []string{"x"}, []string{"h"}, x)
	y := run(t, tail, lib, []string{"h"}, []string{"y"}, h[0])
	for i := range y[0].Data {
		if y[0].Data[i] != whole[0].Data[i] {
			t.Fatalf("trunk+tail %v, whole %v", y[0].Data, whole[0].Data)
		}
	}
}

// TestCutShippedModels runs each shipped backbone whole, then as trunk and
// tail cut at its fine-tuning block boundaries, on a random image.
func TestCutShippedModels(t *testing.T) {
	specs, dir, lib := testenv.Builtins(t)
	for _, spec := range specs {
		t.Run(spec.Name, func(t *testing.T) {
			m := testenv.Graph(t, spec, dir)
			shape := []int64{1, 3, 160, 192}
			if spec.Layout == "NHWC" {
				shape = []int64{1, 160, 192, 3}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			img := backbone.Tensor{Data: make([]float32, 160*192*3), Shape: shape}
			for i := range img.Data {
				img.Data[i] = float32(rng.Float64()*2 - 1)
			}
			whole := run(t, m, lib, m.InputNames(), []string{spec.Output}, img)[0]
			cuts, outs := spec.Blocks, []string{spec.Output, "embedding"}
			if len(cuts) == 0 {
				// The int8 model's inner tensors are uint8 and its
				// embedding branches off before featmap: cut at the
				// quantised input of the last quantised conv.
				last, _ := m.Producer(spec.Output)
				conv, _ := m.Producer(last.Input[0])
				if conv == nil {
					t.Fatalf("%s: featmap is not dequantised from a node output", spec.Name)
				}
				cuts, outs = []string{conv.Input[0]}, []string{spec.Output}
			}
			for _, cut := range cuts {
				trunk, tail, err := m.Cut(cut, outs...)
				if err != nil {
					t.Fatalf("cut at %s: %v", cut, err)
				}
				if a, b, all := len(trunk.Graph().Node), len(tail.Graph().Node), len(m.Graph().Node); a+b != all && len(outs) == 2 {
					t.Errorf("cut at %s: %d + %d nodes, model has %d", cut, a, b, all)
				}
				mid := run(t, trunk, lib, trunk.InputNames(), []string{cut}, img)[0]
				out := run(t, tail, lib, []string{cut}, outs, mid)
				if len(out[0].Data) != len(whole.Data) {
					t.Fatalf("cut at %s: tail output %v", cut, out[0].Shape)
				}
				if c := vectest.Cosine(out[0].Data, whole.Data); c < 0.9999 {
					t.Errorf("cut at %s: trunk+tail vs whole cosine %.6f", cut, c)
				}
				t.Logf("cut at %s: trunk %d nodes, tail %d nodes, %v -> %v, cosine %.7f", cut, len(trunk.Graph().Node), len(tail.Graph().Node), mid.Shape, out[0].Shape, vectest.Cosine(out[0].Data, whole.Data))
			}
			// Written back unchanged, the model is the same network.
			data, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := onnxgraph.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			again := run(t, back, lib, back.InputNames(), []string{spec.Output}, img)[0]
			if c := vectest.Cosine(again.Data, whole.Data); c < 0.999999 {
				t.Errorf("re-serialised model differs: cosine %.7f", c)
			}
		})
	}
}
