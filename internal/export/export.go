// Package export writes a model bundle as one plain ONNX graph: per member
// the pixel normalisation, the backbone (fine-tuned tail included), flip
// test-time augmentation, pooling, L2, the learned heads and the weight,
// then the ensemble's concatenation and final L2. Any ONNX runtime then
// computes prodsearch's descriptor without prodsearch.
//
// ONNX has no resize that matches prodsearch's resampler exactly, so the
// crop and resize stay outside: the graph takes one input per distinct
// (centre crop, short side) the bundle uses, each an N×H×W×3 float32 RGB
// image in 0..255 prepared as Input says.
package export

import (
	"fmt"
	"math"
	"strconv"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"prodsearch/internal/backbone"
	"prodsearch/internal/bundle"
	"prodsearch/internal/describe"
	"prodsearch/internal/imageio"
	"prodsearch/internal/onnxgraph"
)

// Opset is the default-domain opset of the exported graph (the shipped
// backbones use 12 and 13; every operator added here exists in 13).
const Opset = 13

// Output names the exported graph's descriptor, N×D.
const Output = "descriptor"

// Input is one graph input and how to prepare it: centre-crop Crop of each
// side (0 = none), resize to short side Scale keeping the aspect ratio with
// the long side capped at MaxLong (0 = twice the short side), RGB in 0..255.
type Input struct {
	Name    string  `json:"name"`
	Crop    float64 `json:"crop,omitempty"`
	Scale   int     `json:"short_side"`
	MaxLong int     `json:"max_long,omitempty"`
}

type viewKey struct {
	crop    float64
	scale   int
	maxLong int
}

// Graph builds the descriptor graph of b, reading each member's backbone
// from modelDir (checked against its sha256).
func Graph(b bundle.Bundle, modelDir string) (*onnxgraph.Model, []Input, error) {
	if err := b.Validate(); err != nil {
		return nil, nil, err
	}
	members := b.Members
	if !b.IsEnsemble() {
		members = []bundle.Member{{Bundle: b, Weight: 1}}
	}
	var inputs []Input
	names := map[viewKey]string{}
	for _, m := range members {
		d := m.Bundle.Describe
		for _, s := range d.Scales {
			k := viewKey{d.Crop, s, d.MaxLong}
			if _, ok := names[k]; !ok {
				names[k] = ""
				inputs = append(inputs, Input{Crop: d.Crop, Scale: s, MaxLong: d.MaxLong})
			}
		}
	}
	for i := range inputs {
		in := &inputs[i]
		in.Name = "image"
		if len(inputs) > 1 {
			crop := in.Crop
			if crop == 0 {
				crop = 1
			}
			in.Name = fmt.Sprintf("image_crop%s_%d", strconv.FormatFloat(crop, 'g', -1, 64), in.Scale)
			if in.MaxLong > 0 {
				in.Name += "_max" + strconv.Itoa(in.MaxLong)
			}
		}
		names[viewKey{in.Crop, in.Scale, in.MaxLong}] = in.Name
	}
	vals := make([]*onnx.ValueInfoProto, len(inputs))
	for i, in := range inputs {
		vals[i] = onnxgraph.FloatValue(in.Name)
	}
	g, err := onnxgraph.New(Opset, vals...)
	if err != nil {
		return nil, nil, err
	}
	w := &writer{m: g}
	var parts []string
	for i, m := range members {
		out, err := w.member(i, m.Bundle, modelDir, names)
		if err != nil {
			return nil, nil, fmt.Errorf("export: member %d (%s): %w", i, m.Bundle.Name, err)
		}
		if b.IsEnsemble() {
			out = w.op("Mul", []string{out, w.constant(fmt.Sprintf("m%d/weight", i), nil, float32(m.Weight))})
		}
		parts = append(parts, out)
	}
	last := parts[0]
	if len(parts) > 1 {
		last = w.op("Concat", parts, onnxgraph.IntAttr("axis", 1))
	}
	w.node("LpNormalization", []string{last}, Output, onnxgraph.IntAttr("axis", 1), onnxgraph.IntAttr("p", 2))
	if w.err != nil {
		return nil, nil, fmt.Errorf("export: %w", w.err)
	}
	if err := g.AddOutput(Output); err != nil {
		return nil, nil, fmt.Errorf("export: %w", err)
	}
	return g, inputs, nil
}

// writer appends nodes, naming their outputs uniquely; the first error
// sticks, so the graph can be written as straight-line code.
type writer struct {
	m   *onnxgraph.Model
	n   int
	err error
}

// op adds a node with a fresh output name and returns it.
func (w *writer) op(kind string, inputs []string, attrs ...*onnx.AttributeProto) string {
	w.n++
	out := fmt.Sprintf("t%d_%s", w.n, kind)
	w.node(kind, inputs, out, attrs...)
	return out
}

func (w *writer) node(kind string, inputs []string, out string, attrs ...*onnx.AttributeProto) {
	if w.err != nil {
		return
	}
	w.err = w.m.AddNode(onnxgraph.NewNode(kind, out, inputs, []string{out}, attrs...))
}

// constant adds an initializer (dims nil: a scalar) and returns its name.
func (w *writer) constant(name string, dims []int64, v ...float32) string {
	if w.err == nil {
		w.err = w.m.AddInitializer(name, dims, v)
	}
	return name
}

func (w *writer) int64s(name string, v ...int64) string {
	if w.err == nil {
		t := &onnx.TensorProto{Name: name, DataType: int32(onnx.TensorProto_INT64), Dims: []int64{int64(len(v))}, Int64Data: v}
		w.m.Graph().Initializer = append(w.m.Graph().Initializer, t)
	}
	return name
}

// member writes one single-backbone bundle and returns its descriptor.
func (w *writer) member(i int, b bundle.Bundle, modelDir string, inputs map[viewKey]string) (string, error) {
	spec, d := b.Backbone, b.Describe
	if spec.OutputKind != backbone.OutputFeatureMap {
		return "", fmt.Errorf("backbone %s outputs a pooled vector; export needs its feature map", spec.Name)
	}
	path, err := b.BackboneFile(modelDir)
	if err != nil {
		return "", err
	}
	full, err := onnxgraph.Load(path)
	if err != nil {
		return "", err
	}
	net, err := full.Extract([]string{spec.Input}, []string{spec.Output})
	if err != nil {
		return "", err
	}
	w.addOpsets(net)
	prefix := fmt.Sprintf("m%d/", i)
	for _, t := range net.Graph().Initializer {
		c := proto.Clone(t).(*onnx.TensorProto)
		c.Name = prefix + c.Name
		w.m.Graph().Initializer = append(w.m.Graph().Initializer, c)
	}
	norm := spec.Norm()
	var mean, std [3]float32
	for c := range 3 {
		mean[c], std[c] = norm.Mean[c], norm.Std[c]
	}
	scale := w.constant(prefix+"pixel_scale", nil, norm.Scale)
	meanT := w.constant(prefix+"pixel_mean", []int64{3}, mean[:]...)
	stdT := w.constant(prefix+"pixel_std", []int64{3}, std[:]...)
	var sum string
	for vi, s := range d.Scales {
		x := inputs[viewKey{d.Crop, s, d.MaxLong}]
		if norm.BGR {
			x = w.op("Gather", []string{x, w.int64s(fmt.Sprintf("%sbgr%d", prefix, vi), 2, 1, 0)}, onnxgraph.IntAttr("axis", 3))
		}
		x = w.op("Mul", []string{x, scale})
		x = w.op("Sub", []string{x, meanT})
		x = w.op("Div", []string{x, stdT})
		if d.Flip {
			mirror := w.op("Slice", []string{x,
				w.int64s(fmt.Sprintf("%sflip%d_starts", prefix, vi), -1),
				w.int64s(fmt.Sprintf("%sflip%d_ends", prefix, vi), math.MinInt64),
				w.int64s(fmt.Sprintf("%sflip%d_axes", prefix, vi), 2),
				w.int64s(fmt.Sprintf("%sflip%d_steps", prefix, vi), -1)})
			x = w.op("Concat", []string{x, mirror}, onnxgraph.IntAttr("axis", 0))
		}
		if norm.Layout == imageio.LayoutNCHW {
			x = w.op("Transpose", []string{x}, onnxgraph.IntsAttr("perm", 0, 3, 1, 2))
		}
		fmap, err := w.inline(net, fmt.Sprintf("%sv%d/", prefix, vi), prefix, spec.Input, x, spec.Output)
		if err != nil {
			return "", err
		}
		pooled := w.pool(fmap, d, fmt.Sprintf("%sv%d/", prefix, vi))
		pooled = w.op("LpNormalization", []string{pooled}, onnxgraph.IntAttr("axis", 1), onnxgraph.IntAttr("p", 2))
		if d.Flip {
			// [2N, C] -> [2, N, C] -> the sum of plain and mirrored (as a
			// mean: the final L2 removes the factor).
			shape := w.int64s(fmt.Sprintf("%sv%d/halves", prefix, vi), 2, -1, int64(spec.Channels))
			pooled = w.op("Reshape", []string{pooled, shape})
			pooled = w.op("ReduceMean", []string{pooled}, onnxgraph.IntsAttr("axes", 0), onnxgraph.IntAttr("keepdims", 0))
		}
		if sum == "" {
			sum = pooled
		} else {
			sum = w.op("Add", []string{sum, pooled})
		}
	}
	x := w.op("LpNormalization", []string{sum}, onnxgraph.IntAttr("axis", 1), onnxgraph.IntAttr("p", 2))
	for hi, h := range b.Heads {
		hp := fmt.Sprintf("%shead%d/", prefix, hi)
		if len(h.Mean) > 0 {
			x = w.op("Sub", []string{x, w.constant(hp+"mean", []int64{int64(h.In)}, h.Mean...)})
		}
		if h.Hidden > 0 {
			x = w.op("MatMul", []string{x, w.constant(hp+"w1t", []int64{int64(h.In), int64(h.Hidden)}, transpose(h.W1, h.Hidden, h.In)...)})
			if len(h.B1) > 0 {
				x = w.op("Add", []string{x, w.constant(hp+"b1", []int64{int64(h.Hidden)}, h.B1...)})
			}
			x = w.op("Relu", []string{x})
			x = w.op("MatMul", []string{x, w.constant(hp+"wt", []int64{int64(h.Hidden), int64(h.Out)}, transpose(h.W, h.Out, h.Hidden)...)})
		} else {
			x = w.op("MatMul", []string{x, w.constant(hp+"wt", []int64{int64(h.In), int64(h.Out)}, transpose(h.W, h.Out, h.In)...)})
		}
		x = w.op("LpNormalization", []string{x}, onnxgraph.IntAttr("axis", 1), onnxgraph.IntAttr("p", 2))
	}
	return x, w.err
}

// pool writes the bundle's pooling of an N×C×h×w feature map.
func (w *writer) pool(fmap string, d describe.Settings, prefix string) string {
	axes := onnxgraph.IntsAttr("axes", 2, 3)
	keep := onnxgraph.IntAttr("keepdims", 0)
	switch d.Pool {
	case describe.PoolMax:
		return w.op("ReduceMax", []string{fmap}, axes, keep)
	case describe.PoolGeM:
		eps := w.constant(prefix+"gem_eps", nil, 1e-6)
		x := w.op("Max", []string{fmap, eps})
		x = w.op("Pow", []string{x, w.constant(prefix+"gem_p", nil, float32(d.P))})
		x = w.op("ReduceMean", []string{x}, axes, keep)
		return w.op("Pow", []string{x, w.constant(prefix+"gem_inv_p", nil, float32(1/d.P))})
	}
	return w.op("ReduceMean", []string{fmap}, axes, keep)
}

// inline copies net's nodes into the graph with their tensors renamed under
// prefix (initializers under initPrefix, copied once per member), reading
// input from x, and returns the name the output got.
func (w *writer) inline(net *onnxgraph.Model, prefix, initPrefix, input, x, output string) (string, error) {
	if w.err != nil {
		return "", w.err
	}
	inits := map[string]bool{}
	for _, t := range net.Graph().Initializer {
		inits[t.Name] = true
	}
	rename := func(t string) string {
		switch {
		case t == "":
			return ""
		case t == input:
			return x
		case inits[t]:
			return initPrefix + t
		}
		return prefix + t
	}
	for k, n := range net.Graph().Node {
		c := proto.Clone(n).(*onnx.NodeProto)
		c.Name = prefix + c.Name
		if n.Name == "" {
			c.Name = prefix + "node" + strconv.Itoa(k)
		}
		for k := range c.Input {
			c.Input[k] = rename(c.Input[k])
		}
		for k := range c.Output {
			c.Output[k] = rename(c.Output[k])
		}
		if err := w.m.AddNode(c); err != nil {
			return "", err
		}
	}
	return rename(output), nil
}

// addOpsets keeps the non-default operator domains a backbone needs (the
// int8 model's com.microsoft QLinearAdd).
func (w *writer) addOpsets(net *onnxgraph.Model) {
	have := map[string]bool{"": true}
	for _, o := range w.m.Proto().OpsetImport {
		have[o.Domain] = true
	}
	for _, o := range net.Proto().OpsetImport {
		if !have[o.Domain] {
			have[o.Domain] = true
			w.m.Proto().OpsetImport = append(w.m.Proto().OpsetImport, proto.Clone(o).(*onnx.OperatorSetIdProto))
		}
	}
}

// transpose returns the cols×rows transpose of a rows×cols row-major matrix:
// bundles keep y = W·x, ONNX's MatMul computes x·Wᵀ on row vectors.
func transpose(m []float32, rows, cols int) []float32 {
	out := make([]float32, len(m))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			out[c*rows+r] = m[r*cols+c]
		}
	}
	return out
}
