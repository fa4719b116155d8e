package onnxgraph

import (
	"fmt"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// Extract returns the sub-model that computes outputs from inputs: the nodes
// the outputs depend on, stopping at the inputs, with only the initializers
// those nodes read. Every tensor the sub-model needs must be one of inputs,
// an initializer or made by one of its nodes; otherwise the error names the
// missing tensor (for example a residual branch that bypasses a cut). Node
// attributes holding subgraphs (If, Loop) are copied as they are, but
// tensors their bodies read from the outer graph are not followed.
func (m *Model) Extract(inputs, outputs []string) (*Model, error) {
	g := m.p.Graph
	isInput := make(map[string]bool, len(inputs))
	for _, in := range inputs {
		if !m.has(in) {
			return nil, fmt.Errorf("extract input %q: %w", in, ErrNotFound)
		}
		isInput[in] = true
	}
	inits := m.initializerSet()
	needed := map[string]bool{}
	for _, o := range outputs {
		if !m.has(o) {
			return nil, fmt.Errorf("extract output %q: %w", o, ErrNotFound)
		}
		needed[o] = true
	}
	keep := make([]bool, len(g.Node))
	for i := len(g.Node) - 1; i >= 0; i-- {
		n := g.Node[i]
		use := false
		for _, o := range n.Output {
			if needed[o] && !isInput[o] {
				use = true
			}
		}
		if !use {
			continue
		}
		keep[i] = true
		for _, in := range n.Input {
			if in != "" && !isInput[in] {
				needed[in] = true
			}
		}
	}
	made := map[string]bool{}
	sub := &onnx.GraphProto{Name: g.Name}
	for i, n := range g.Node {
		if keep[i] {
			sub.Node = append(sub.Node, proto.Clone(n).(*onnx.NodeProto))
			for _, o := range n.Output {
				made[o] = true
			}
		}
	}
	for _, t := range g.Initializer {
		if needed[t.Name] && !made[t.Name] && !isInput[t.Name] {
			sub.Initializer = append(sub.Initializer, proto.Clone(t).(*onnx.TensorProto))
		}
	}
	for name := range needed {
		if !made[name] && !inits[name] && !isInput[name] {
			return nil, fmt.Errorf("extract: the outputs also depend on %q, which is neither an input nor an initializer of the cut", name)
		}
	}
	for _, in := range inputs {
		sub.Input = append(sub.Input, m.valueInfo(in))
	}
	for _, o := range outputs {
		sub.Output = append(sub.Output, m.valueInfo(o))
	}
	for _, v := range g.ValueInfo {
		if made[v.Name] && !isOutput(sub, v.Name) {
			sub.ValueInfo = append(sub.ValueInfo, proto.Clone(v).(*onnx.ValueInfoProto))
		}
	}
	return &Model{p: m.withGraph(sub)}, nil
}

func isOutput(g *onnx.GraphProto, name string) bool {
	for _, v := range g.Output {
		if v.Name == name {
			return true
		}
	}
	return false
}

// Cut splits the model at tensor cut into a trunk (the model's inputs -> cut)
// and a tail (cut -> outputs; all the model's outputs when none are named).
// Running the trunk and feeding its output to the tail gives the whole
// model's outputs.
func (m *Model) Cut(cut string, outputs ...string) (trunk, tail *Model, err error) {
	if len(outputs) == 0 {
		outputs = m.OutputNames()
	}
	trunk, err = m.Extract(m.InputNames(), []string{cut})
	if err != nil {
		return nil, nil, fmt.Errorf("trunk: %w", err)
	}
	tail, err = m.Extract([]string{cut}, outputs)
	if err != nil {
		return nil, nil, fmt.Errorf("tail: %w", err)
	}
	return trunk, tail, nil
}

// withGraph copies the model's header (IR version, opsets, producer,
// metadata) around graph g, without copying the original graph's weights.
func (m *Model) withGraph(g *onnx.GraphProto) *onnx.ModelProto {
	p := &onnx.ModelProto{
		IrVersion:       m.p.IrVersion,
		ProducerName:    m.p.ProducerName,
		ProducerVersion: m.p.ProducerVersion,
		Domain:          m.p.Domain,
		ModelVersion:    m.p.ModelVersion,
		DocString:       m.p.DocString,
		Graph:           g,
	}
	for _, o := range m.p.OpsetImport {
		p.OpsetImport = append(p.OpsetImport, proto.Clone(o).(*onnx.OperatorSetIdProto))
	}
	for _, kv := range m.p.MetadataProps {
		p.MetadataProps = append(p.MetadataProps, proto.Clone(kv).(*onnx.StringStringEntryProto))
	}
	return p
}
