// Package onnxgraph reads, edits and writes ONNX models (ModelProto) so that
// prodsearch can look inside the shipped backbones: find which node makes a
// tensor and which nodes read it, expose an intermediate tensor as an output,
// cut a model into a frozen trunk and a trainable tail, replace weights by
// name, and add nodes and initializers to build new graphs.
//
// The protobuf types are the generated ones of
// github.com/advancedclimatesystems/gonnx/onnx (ONNX IR from onnx.proto3);
// Model wraps one and keeps no other state, so Proto gives full access for
// edits this package does not name.
package onnxgraph

import (
	"errors"
	"fmt"
	"math"
	"os"

	"prodsearch/internal/vec"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// ErrNotFound is wrapped by every error about a tensor, node or initializer
// that the model does not have.
var ErrNotFound = errors.New("onnxgraph: not found")

// Model is one ONNX model. Its methods edit it in place; Clone first to keep
// the original.
type Model struct {
	p *onnx.ModelProto
}

// Parse decodes a serialized ModelProto and checks that it has a graph.
func Parse(data []byte) (*Model, error) {
	var p onnx.ModelProto
	if err := proto.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("onnxgraph: decoding model: %w", err)
	}
	if p.GetGraph() == nil {
		return nil, errors.New("onnxgraph: model has no graph")
	}
	return &Model{p: &p}, nil
}

// Load reads and parses an ONNX file.
func Load(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnxgraph: %w", err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Marshal serializes the model. Output is deterministic for one model value,
// so the sha256 of a written file is reproducible.
func (m *Model) Marshal() ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m.p)
	if err != nil {
		return nil, fmt.Errorf("onnxgraph: encoding model: %w", err)
	}
	return b, nil
}

// Proto returns the underlying message for edits this package does not name.
func (m *Model) Proto() *onnx.ModelProto { return m.p }

// Graph is a shorthand for Proto().Graph.
func (m *Model) Graph() *onnx.GraphProto { return m.p.Graph }

// Clone returns a deep copy.
func (m *Model) Clone() *Model { return &Model{p: proto.Clone(m.p).(*onnx.ModelProto)} }

// Producer returns the node that outputs tensor and its index in the graph's
// node list; a graph input or initializer has no producer (nil, -1).
func (m *Model) Producer(tensor string) (*onnx.NodeProto, int) {
	for i, n := range m.p.Graph.Node {
		for _, o := range n.Output {
			if o == tensor {
				return n, i
			}
		}
	}
	return nil, -1
}

// Consumers returns the nodes that read tensor, in graph order.
func (m *Model) Consumers(tensor string) []*onnx.NodeProto {
	var out []*onnx.NodeProto
	for _, n := range m.p.Graph.Node {
		for _, in := range n.Input {
			if in == tensor {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// InputNames lists the graph inputs that are not initializers (models of IR
// version < 4 also list their weights as inputs).
func (m *Model) InputNames() []string {
	init := m.initializerSet()
	var out []string
	for _, v := range m.p.Graph.Input {
		if !init[v.Name] {
			out = append(out, v.Name)
		}
	}
	return out
}

// OutputNames lists the graph outputs.
func (m *Model) OutputNames() []string {
	out := make([]string, len(m.p.Graph.Output))
	for i, v := range m.p.Graph.Output {
		out[i] = v.Name
	}
	return out
}

func (m *Model) initializerSet() map[string]bool {
	s := make(map[string]bool, len(m.p.Graph.Initializer))
	for _, t := range m.p.Graph.Initializer {
		s[t.Name] = true
	}
	return s
}

// has reports whether tensor is a graph input, an initializer or a node output.
func (m *Model) has(tensor string) bool {
	for _, v := range m.p.Graph.Input {
		if v.Name == tensor {
			return true
		}
	}
	if m.Initializer(tensor) != nil {
		return true
	}
	p, _ := m.Producer(tensor)
	return p != nil
}

// AddOutput makes tensor a graph output, of its declared or inferred element
// type and unknown shape (ONNX Runtime infers it); a tensor already output is
// left alone.
func (m *Model) AddOutput(tensor string) error {
	for _, v := range m.p.Graph.Output {
		if v.Name == tensor {
			return nil
		}
	}
	if !m.has(tensor) {
		return fmt.Errorf("output %q: %w", tensor, ErrNotFound)
	}
	m.p.Graph.Output = append(m.p.Graph.Output, m.valueInfo(tensor))
	return nil
}

// valueInfo returns the graph's declared type of tensor, else its inferred
// element type with unknown shape.
func (m *Model) valueInfo(tensor string) *onnx.ValueInfoProto {
	g := m.p.Graph
	for _, list := range [][]*onnx.ValueInfoProto{g.Input, g.Output, g.ValueInfo} {
		for _, v := range list {
			if v.Name == tensor {
				return proto.Clone(v).(*onnx.ValueInfoProto)
			}
		}
	}
	return TensorValue(tensor, m.elemType(tensor, 0))
}

// zeroPointInput is, for ONNX's quantising operators, the input whose type
// is the output's.
var zeroPointInput = map[string]int{
	"QuantizeLinear": 2, "QLinearConv": 7, "QLinearAdd": 7, "QLinearMul": 7,
	"QLinearMatMul": 7, "QLinearGlobalAveragePool": 4, "QLinearAveragePool": 4,
	"QLinearSigmoid": 4, "QLinearLeakyRelu": 4,
}

// elemType infers a tensor's element type when the graph does not declare
// it: an initializer's own type, float for DequantizeLinear, the output
// zero point's type for quantising operators, else the first input's type.
// It covers the operators of the shipped float and int8 MobileNets, not all
// of ONNX (Cast, Shape or comparisons would need their own rules).
func (m *Model) elemType(tensor string, depth int) onnx.TensorProto_DataType {
	if t := m.Initializer(tensor); t != nil {
		return onnx.TensorProto_DataType(t.DataType)
	}
	g := m.p.Graph
	for _, list := range [][]*onnx.ValueInfoProto{g.Input, g.Output, g.ValueInfo} {
		for _, v := range list {
			if v.Name == tensor {
				if tt := v.GetType().GetTensorType(); tt != nil {
					return onnx.TensorProto_DataType(tt.ElemType)
				}
			}
		}
	}
	n, _ := m.Producer(tensor)
	if n == nil || depth > len(g.Node) {
		return onnx.TensorProto_FLOAT
	}
	if n.OpType == "DequantizeLinear" {
		return onnx.TensorProto_FLOAT
	}
	if i, ok := zeroPointInput[n.OpType]; ok && i < len(n.Input) {
		return m.elemType(n.Input[i], depth+1)
	}
	if len(n.Input) == 0 {
		return onnx.TensorProto_FLOAT
	}
	return m.elemType(n.Input[0], depth+1)
}

// FloatValue declares a float32 tensor of unknown shape, for graph inputs
// and outputs.
func FloatValue(name string) *onnx.ValueInfoProto {
	return TensorValue(name, onnx.TensorProto_FLOAT)
}

// TensorValue declares a tensor of the given element type and unknown shape.
func TensorValue(name string, elem onnx.TensorProto_DataType) *onnx.ValueInfoProto {
	return &onnx.ValueInfoProto{
		Name: name,
		Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
			TensorType: &onnx.TypeProto_Tensor{ElemType: int32(elem)},
		}},
	}
}

// Node returns the first node with the given name.
func (m *Model) Node(name string) (*onnx.NodeProto, error) {
	for _, n := range m.p.Graph.Node {
		if n.Name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("node %q: %w", name, ErrNotFound)
}

// AddNode appends a node. Nodes must stay topologically sorted, so its inputs
// must already exist; its outputs must be new.
func (m *Model) AddNode(n *onnx.NodeProto) error {
	for _, in := range n.Input {
		if in != "" && !m.has(in) {
			return fmt.Errorf("node %q input %q: %w", n.Name, in, ErrNotFound)
		}
	}
	for _, o := range n.Output {
		if m.has(o) {
			return fmt.Errorf("node %q: output %q already exists", n.Name, o)
		}
	}
	m.p.Graph.Node = append(m.p.Graph.Node, n)
	return nil
}

// NewNode builds a node of the default ONNX domain.
func NewNode(op, name string, inputs, outputs []string, attrs ...*onnx.AttributeProto) *onnx.NodeProto {
	return &onnx.NodeProto{OpType: op, Name: name, Input: inputs, Output: outputs, Attribute: attrs}
}

// IntsAttr, IntAttr, FloatAttr and StringAttr build node attributes.
func IntsAttr(name string, v ...int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INTS, Ints: v}
}

// IntAttr builds an integer attribute.
func IntAttr(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INT, I: v}
}

// FloatAttr builds a float attribute.
func FloatAttr(name string, v float32) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_FLOAT, F: v}
}

// StringAttr builds a string attribute.
func StringAttr(name, v string) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_STRING, S: []byte(v)}
}

// Attr returns the attribute of n called name, or nil.
func Attr(n *onnx.NodeProto, name string) *onnx.AttributeProto {
	for _, a := range n.Attribute {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Initializer returns the initializer called name, or nil.
func (m *Model) Initializer(name string) *onnx.TensorProto {
	for _, t := range m.p.Graph.Initializer {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Floats returns a float32 initializer's values and dims.
func (m *Model) Floats(name string) ([]float32, []int64, error) {
	t := m.Initializer(name)
	if t == nil {
		return nil, nil, fmt.Errorf("initializer %q: %w", name, ErrNotFound)
	}
	v, err := TensorFloats(t)
	return v, t.Dims, err
}

// TensorFloats decodes a float32 tensor (raw little-endian or float_data).
func TensorFloats(t *onnx.TensorProto) ([]float32, error) {
	if t.DataType != int32(onnx.TensorProto_FLOAT) {
		return nil, fmt.Errorf("tensor %q has data type %d, not float32", t.Name, t.DataType)
	}
	if t.DataLocation == onnx.TensorProto_EXTERNAL {
		return nil, fmt.Errorf("tensor %q is stored outside the model file", t.Name)
	}
	n := int64(1)
	for _, d := range t.Dims {
		if d < 0 || (d > 0 && n > math.MaxInt32/d) {
			return nil, fmt.Errorf("tensor %q: bad dims %v", t.Name, t.Dims)
		}
		n *= d
	}
	if len(t.RawData) > 0 {
		if int64(len(t.RawData)) != 4*n {
			return nil, fmt.Errorf("tensor %q: %d raw bytes for %d floats", t.Name, len(t.RawData), n)
		}
		out := make([]float32, n)
		vec.DecodeF32(out, t.RawData)
		return out, nil
	}
	if int64(len(t.FloatData)) != n {
		return nil, fmt.Errorf("tensor %q: %d floats for dims %v", t.Name, len(t.FloatData), t.Dims)
	}
	return append([]float32(nil), t.FloatData...), nil
}

// FloatTensor builds a float32 initializer stored as raw data.
func FloatTensor(name string, dims []int64, v []float32) *onnx.TensorProto {
	raw := vec.AppendF32(make([]byte, 0, 4*len(v)), v)
	return &onnx.TensorProto{Name: name, Dims: append([]int64(nil), dims...), DataType: int32(onnx.TensorProto_FLOAT), RawData: raw}
}

// AddInitializer adds a new float32 initializer.
func (m *Model) AddInitializer(name string, dims []int64, v []float32) error {
	if err := checkLen(name, dims, len(v)); err != nil {
		return err
	}
	if m.has(name) {
		return fmt.Errorf("initializer %q: name already used", name)
	}
	m.p.Graph.Initializer = append(m.p.Graph.Initializer, FloatTensor(name, dims, v))
	return nil
}

// ReplaceFloats overwrites a float32 initializer's values, keeping its name
// and dims; this is how fine-tuned weights go back into the original graph.
func (m *Model) ReplaceFloats(name string, v []float32) error {
	g := m.p.Graph
	for i, t := range g.Initializer {
		if t.Name != name {
			continue
		}
		if t.DataType != int32(onnx.TensorProto_FLOAT) {
			return fmt.Errorf("initializer %q has data type %d, not float32", name, t.DataType)
		}
		if err := checkLen(name, t.Dims, len(v)); err != nil {
			return err
		}
		g.Initializer[i] = FloatTensor(name, t.Dims, v)
		return nil
	}
	return fmt.Errorf("initializer %q: %w", name, ErrNotFound)
}

func checkLen(name string, dims []int64, n int) error {
	want := int64(1)
	for _, d := range dims {
		want *= d
	}
	if want != int64(n) {
		return fmt.Errorf("initializer %q: %d values for dims %v", name, n, dims)
	}
	return nil
}

// New starts an empty model of the given default-domain opset with the given
// graph inputs, for building graphs from scratch.
func New(opset int64, inputs ...*onnx.ValueInfoProto) (*Model, error) {
	if opset < 1 {
		return nil, fmt.Errorf("onnxgraph: opset %d", opset)
	}
	return &Model{p: &onnx.ModelProto{
		IrVersion:    7,
		ProducerName: "prodsearch",
		OpsetImport:  []*onnx.OperatorSetIdProto{{Version: opset}},
		Graph:        &onnx.GraphProto{Name: "prodsearch", Input: inputs},
	}}, nil
}
