package train

import (
	"errors"
	"fmt"
	"slices"

	"github.com/advancedclimatesystems/gonnx/onnx"

	"prodsearch/internal/onnxgraph"
)

// ErrUnsupportedOp is wrapped when a tail graph uses an operator or attribute
// that the Go forward and backward passes do not implement.
var ErrUnsupportedOp = errors.New("unsupported operator in the trainable tail")

// TailParam is one trainable tensor of a tail: an initializer of the ONNX
// graph, written back under the same name after training.
type TailParam struct {
	Name string
	Dims []int64
	W, G []float32
}

// tailOp kinds.
const (
	opConv1x1 = iota
	opDWConv
	opClip
	opAdd
	opIdentity
)

// tailOp is one node of the tail, reading and writing value slots.
type tailOp struct {
	kind      int
	in, in2   int // slots (in2: the second addend)
	out       int
	w, b      *TailParam
	cin, cout int
	geom      dwGeom
	lo, hi    float32
	name      string
}

// Tail is a backbone's last blocks as a Go network: the ops of an ONNX tail
// graph (1×1 and depthwise convolutions with batch norm folded in, Clip,
// Add, Identity), run forward and backward on a batch of trunk outputs.
type Tail struct {
	ops      []tailOp
	params   []*TailParam
	slots    int
	chans    []int // channels per slot
	in, out  int   // slots
	inName   string
	outName  string
	InC, Out int // input and output channels
}

// NewTail builds the Go network for the tail model that computes output from
// input (onnxgraph.Model.Cut's tail), copying its weights.
func NewTail(m *onnxgraph.Model, input, output string) (*Tail, error) {
	sub, err := m.Extract([]string{input}, []string{output})
	if err != nil {
		return nil, err
	}
	t := &Tail{inName: input, outName: output}
	slot := map[string]int{}
	addSlot := func(name string, ch int) int {
		slot[name] = t.slots
		t.chans = append(t.chans, ch)
		t.slots++
		return t.slots - 1
	}
	t.in = -1
	params := map[string]*TailParam{}
	param := func(name string) (*TailParam, error) {
		if p, ok := params[name]; ok {
			return p, nil
		}
		v, dims, err := sub.Floats(name)
		if err != nil {
			return nil, err
		}
		p := &TailParam{Name: name, Dims: dims, W: v, G: make([]float32, len(v))}
		params[name] = p
		t.params = append(t.params, p)
		return p, nil
	}
	scalar := func(name string) (float32, error) {
		v, _, err := sub.Floats(name)
		if err != nil {
			return 0, err
		}
		if len(v) != 1 {
			return 0, fmt.Errorf("%s: want a scalar, got %d values", name, len(v))
		}
		return v[0], nil
	}
	get := func(n *onnx.NodeProto, i int) (int, error) {
		if i >= len(n.Input) {
			return 0, fmt.Errorf("node %s (%s): missing input %d", n.Name, n.OpType, i)
		}
		name := n.Input[i]
		if s, ok := slot[name]; ok {
			return s, nil
		}
		if name == input && t.in < 0 {
			t.in = addSlot(name, 0)
			return t.in, nil
		}
		return 0, fmt.Errorf("node %s (%s): input %q is not computed in the tail", n.Name, n.OpType, name)
	}
	for _, n := range sub.Graph().Node {
		if n.Domain != "" || len(n.Output) != 1 {
			return nil, fmt.Errorf("%w: %s %q", ErrUnsupportedOp, n.OpType, n.Name)
		}
		op := tailOp{name: n.Name}
		op.in, err = get(n, 0)
		if err != nil {
			return nil, err
		}
		ch := t.chans[op.in]
		switch n.OpType {
		case "Conv":
			op, ch, err = t.convOp(n, op, param)
		case "Clip":
			op.kind = opClip
			if len(n.Input) != 3 {
				return nil, fmt.Errorf("%w: Clip %q without min and max inputs", ErrUnsupportedOp, n.Name)
			}
			if op.lo, err = scalar(n.Input[1]); err == nil {
				op.hi, err = scalar(n.Input[2])
			}
		case "Relu":
			op.kind, op.lo, op.hi = opClip, 0, float32(3.4e38)
		case "Add":
			op.kind = opAdd
			op.in2, err = get(n, 1)
		case "Identity":
			op.kind = opIdentity
		default:
			err = fmt.Errorf("%w: %s %q", ErrUnsupportedOp, n.OpType, n.Name)
		}
		if err != nil {
			return nil, err
		}
		if op.kind == opConv1x1 || op.kind == opDWConv {
			if t.chans[op.in] == 0 {
				t.chans[op.in] = op.cin
			} else if t.chans[op.in] != op.cin {
				return nil, fmt.Errorf("node %s: %d input channels, its input has %d", n.Name, op.cin, t.chans[op.in])
			}
		}
		op.out = addSlot(n.Output[0], ch)
		t.ops = append(t.ops, op)
	}
	if t.in < 0 {
		return nil, fmt.Errorf("tail from %s to %s reads nothing from its input", input, output)
	}
	s, ok := slot[output]
	if !ok {
		return nil, fmt.Errorf("tail does not compute %s", output)
	}
	t.out = s
	// Slots that only pass channels on (Clip, Add, Identity) learn their
	// width from their inputs, in order.
	for _, op := range t.ops {
		if op.kind != opConv1x1 && op.kind != opDWConv {
			t.chans[op.out] = t.chans[op.in]
		}
	}
	t.InC, t.Out = t.chans[t.in], t.chans[t.out]
	if t.InC == 0 || t.Out == 0 {
		return nil, fmt.Errorf("tail from %s: channel count unknown", input)
	}
	return t, nil
}

// convOp maps a Conv node to a 1×1 or a depthwise op.
func (t *Tail) convOp(n *onnx.NodeProto, op tailOp, param func(string) (*TailParam, error)) (tailOp, int, error) {
	bad := func(why string) (tailOp, int, error) {
		return op, 0, fmt.Errorf("%w: Conv %q: %s", ErrUnsupportedOp, n.Name, why)
	}
	if len(n.Input) != 3 {
		return bad("no bias")
	}
	w, err := param(n.Input[1])
	if err != nil {
		return op, 0, err
	}
	if op.b, err = param(n.Input[2]); err != nil {
		return op, 0, err
	}
	op.w = w
	if len(w.Dims) != 4 || w.Dims[2] != w.Dims[3] {
		return bad(fmt.Sprintf("weight dims %v", w.Dims))
	}
	k := int(w.Dims[2])
	group := int64(1)
	geom := dwGeom{k: k, stride: 1}
	for _, a := range n.Attribute {
		switch a.Name {
		case "group":
			group = a.I
		case "kernel_shape":
			if len(a.Ints) != 2 || a.Ints[0] != int64(k) || a.Ints[1] != int64(k) {
				return bad(fmt.Sprintf("kernel_shape %v", a.Ints))
			}
		case "strides":
			if len(a.Ints) != 2 || a.Ints[0] != a.Ints[1] || a.Ints[0] < 1 {
				return bad(fmt.Sprintf("strides %v", a.Ints))
			}
			geom.stride = int(a.Ints[0])
		case "pads":
			if len(a.Ints) != 4 {
				return bad(fmt.Sprintf("pads %v", a.Ints))
			}
			geom.padT, geom.padL, geom.padB, geom.padR = int(a.Ints[0]), int(a.Ints[1]), int(a.Ints[2]), int(a.Ints[3])
		case "auto_pad":
			switch string(a.S) {
			case "SAME_UPPER":
				geom.sameUpper = true
			case "NOTSET", "VALID", "":
			default:
				return bad("auto_pad " + string(a.S))
			}
		case "dilations":
			if slices.ContainsFunc(a.Ints, func(d int64) bool { return d != 1 }) {
				return bad("dilation")
			}
		default:
			return bad("attribute " + a.Name)
		}
	}
	cout := int(w.Dims[0])
	if len(op.b.W) != cout {
		return bad("bias length")
	}
	switch {
	case group == 1 && k == 1 && geom.stride == 1 && geom.padT+geom.padL+geom.padB+geom.padR == 0:
		op.kind, op.cout, op.cin = opConv1x1, cout, int(w.Dims[1])
	case group == int64(cout) && w.Dims[1] == 1:
		op.kind, op.cout, op.cin, op.geom = opDWConv, cout, cout, geom
	default:
		return bad(fmt.Sprintf("group %d with weights %v (only 1×1 and depthwise)", group, w.Dims))
	}
	return op, cout, nil
}

// Params lists the trainable tensors in graph order.
func (t *Tail) Params() []*TailParam { return t.params }

// tailRun holds one batch's activations and geometry, kept for the
// backward pass.
type tailRun struct {
	val, grad [][]float32
	pl        []planes // per slot
	pt, pleft [][]int  // per op: each image's leading pads (depthwise)
}

// forward runs the tail on a batch (x: InC rows of the batch's pixels, pl
// its geometry) and returns the activations; the output is
// run.val[t.out] with geometry run.pl[t.out].
func (t *Tail) forward(x []float32, pl planes) *tailRun {
	r := &tailRun{val: make([][]float32, t.slots), pl: make([]planes, t.slots), pt: make([][]int, len(t.ops)), pleft: make([][]int, len(t.ops))}
	r.val[t.in], r.pl[t.in] = x, pl
	for i := range t.ops {
		op := &t.ops[i]
		in, ip := r.val[op.in], r.pl[op.in]
		var out []float32
		op2 := ip
		switch op.kind {
		case opConv1x1:
			out = make([]float32, op.cout*ip.p)
			conv1x1(out, op.w.W, op.b.W, in, op.cout, op.cin, ip.p)
		case opDWConv:
			op2, r.pt[i], r.pleft[i] = op.geom.outPlanes(ip)
			out = make([]float32, op.cout*op2.p)
			dwConv(out, op.w.W, op.b.W, in, op.cout, op.geom, ip, op2, r.pt[i], r.pleft[i])
		case opClip:
			out = make([]float32, len(in))
			clip(out, in, op.lo, op.hi)
		case opAdd:
			b := r.val[op.in2]
			out = make([]float32, len(in))
			for j := range out {
				out[j] = in[j] + b[j]
			}
		case opIdentity:
			out = in
		}
		r.val[op.out], r.pl[op.out] = out, op2
	}
	return r
}

// backward propagates dL/d(output) back through the batch, adding to every
// parameter's G. The input's gradient is not needed (the trunk is frozen).
func (t *Tail) backward(r *tailRun, gout []float32) {
	r.grad = make([][]float32, t.slots)
	r.grad[t.out] = gout
	gradOf := func(s int) []float32 {
		if s == t.in {
			return nil
		}
		if r.grad[s] == nil {
			r.grad[s] = make([]float32, len(r.val[s]))
		}
		return r.grad[s]
	}
	for i := len(t.ops) - 1; i >= 0; i-- {
		op := &t.ops[i]
		gy := r.grad[op.out]
		if gy == nil {
			continue
		}
		x := r.val[op.in]
		switch op.kind {
		case opConv1x1:
			conv1x1Backward(op.w.G, op.b.G, gradOf(op.in), op.w.W, x, gy, op.cout, op.cin, r.pl[op.in].p)
		case opDWConv:
			dwConvBackward(op.w.G, op.b.G, gradOf(op.in), op.w.W, x, gy, op.cout, op.geom, r.pl[op.in], r.pl[op.out], r.pt[i], r.pleft[i])
		case opClip:
			if g := gradOf(op.in); g != nil {
				clipBackward(g, x, gy, op.lo, op.hi)
			}
		case opAdd:
			for _, s := range []int{op.in, op.in2} {
				if g := gradOf(s); g != nil {
					for j, v := range gy {
						g[j] += v
					}
				}
			}
		case opIdentity:
			if g := gradOf(op.in); g != nil {
				for j, v := range gy {
					g[j] += v
				}
			}
		}
	}
}

// ZeroGrad clears every parameter's gradient.
func (t *Tail) ZeroGrad() {
	for _, p := range t.params {
		clear(p.G)
	}
}

// Forward runs the tail on one C×h×w trunk output and returns its output
// map (Out×oh×ow), the Go counterpart of ONNX Runtime on the tail graph.
func (t *Tail) Forward(fmap []float32, h, w int) ([]float32, int, int, error) {
	if h <= 0 || w <= 0 || len(fmap) != t.InC*h*w {
		return nil, 0, 0, fmt.Errorf("%w: tail input of %d values is not %d×%d×%d", ErrDimMismatch, len(fmap), t.InC, h, w)
	}
	r := t.forward(fmap, newPlanes([]int{h}, []int{w}))
	pl := r.pl[t.out]
	return r.val[t.out], pl.h[0], pl.w[0], nil
}
