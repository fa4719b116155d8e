//go:build cgo

package backbone

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// The ONNX Runtime environment is process-wide in the C library itself, so
// its lifetime is counted here: the first Open initialises it and the last
// Destroy releases it. This is the only package-level state, and it mirrors
// state that already lives in the C library.
var env struct {
	mu   sync.Mutex
	refs int
	lib  string
}

func acquireEnv(lib string) error {
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.refs > 0 {
		if lib != env.lib {
			return fmt.Errorf("onnxruntime already loaded from %s, cannot also load %s", env.lib, lib)
		}
		env.refs++
		return nil
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("initialising onnxruntime from %s: %w", lib, err)
	}
	env.refs, env.lib = 1, lib
	return nil
}

func releaseEnv() {
	env.mu.Lock()
	defer env.mu.Unlock()
	env.refs--
	if env.refs == 0 {
		_ = ort.DestroyEnvironment()
	}
}

// Session runs one model, created once and reused for every batch. It is
// safe for concurrent use: ONNX Runtime allows concurrent Run calls on one
// session.
type Session struct {
	spec Spec
	native
}

// native is a running ONNX Runtime session, the part Session and Graph
// share: each holds a reference on the runtime environment until Destroy.
type native struct {
	sess *ort.DynamicAdvancedSession
	once sync.Once
}

// Destroy releases the native session; calling it twice is harmless.
func (n *native) Destroy() error {
	var err error
	n.once.Do(func() {
		err = n.sess.Destroy()
		releaseEnv()
	})
	return err
}

// Open verifies the model file and starts a session for it.
func Open(spec Spec, modelDir string, opt Options) (*Session, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	path, err := spec.ModelPath(modelDir)
	if err != nil {
		return nil, err
	}
	so, err := newOptions(opt)
	if err != nil {
		return nil, err
	}
	sess, err := ort.NewDynamicAdvancedSession(path, []string{spec.Input}, []string{spec.Output}, so)
	so.Destroy() // before any releaseEnv, as in OpenGraph
	if err != nil {
		releaseEnv()
		return nil, fmt.Errorf("model %s (%s): %w", spec.Name, path, err)
	}
	return &Session{spec: spec, native: native{sess: sess}}, nil
}

// newOptions acquires the environment and makes session options for the
// given intra-op thread count; on success the caller owns one environment
// reference and must Destroy the options.
func newOptions(opt Options) (*ort.SessionOptions, error) {
	lib, err := FindLibrary(opt.Library)
	if err != nil {
		return nil, err
	}
	if err := acquireEnv(lib); err != nil {
		return nil, err
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		releaseEnv()
		return nil, fmt.Errorf("session options: %w", err)
	}
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		so.Destroy()
		releaseEnv()
		return nil, fmt.Errorf("intra-op threads: %w", err)
	}
	// Idle intra-op threads sleep instead of spinning: batch describing
	// decodes the next images on the same cores, and spinning threads took
	// their time (make demo, cold cache: 2m35s spinning, 2m24s not).
	if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		so.Destroy()
		releaseEnv()
		return nil, fmt.Errorf("intra-op spinning: %w", err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		so.Destroy()
		releaseEnv()
		return nil, fmt.Errorf("inter-op threads: %w", err)
	}
	return so, nil
}

// Graph runs any float32 ONNX model held in memory with named inputs and
// outputs, such as a trunk or tail cut out of a backbone by onnxgraph. Like
// Session it is safe for concurrent use.
type Graph struct {
	native
	outputs []string
}

// OpenGraph starts a session for the serialized model.
func OpenGraph(model []byte, inputs, outputs []string, opt Options) (*Graph, error) {
	so, err := newOptions(opt)
	if err != nil {
		return nil, err
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, so)
	// The options go before the environment: destroying them after
	// releaseEnv tore the environment down crashes ONNX Runtime.
	so.Destroy()
	if err != nil {
		releaseEnv()
		return nil, fmt.Errorf("graph session: %w", err)
	}
	return &Graph{native: native{sess: sess}, outputs: outputs}, nil
}

// Run feeds one tensor per input, in the order given to OpenGraph, and
// returns one tensor per output.
func (g *Graph) Run(ctx context.Context, inputs ...Tensor) ([]Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ins := make([]ort.Value, len(inputs))
	defer func() {
		for _, v := range ins {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, t := range inputs {
		var v ort.Value
		var err error
		if t.U8 != nil {
			v, err = ort.NewTensor(ort.NewShape(t.Shape...), t.U8)
		} else {
			v, err = ort.NewTensor(ort.NewShape(t.Shape...), t.Data)
		}
		if err != nil {
			return nil, fmt.Errorf("graph input %d %v: %w", i, t.Shape, err)
		}
		ins[i] = v
	}
	outs := make([]ort.Value, len(g.outputs))
	if err := g.sess.Run(ins, outs); err != nil {
		return nil, fmt.Errorf("graph run: %w", err)
	}
	res := make([]Tensor, len(outs))
	for i, o := range outs {
		ok := true
		switch t := o.(type) {
		case *ort.Tensor[float32]:
			res[i] = Tensor{Data: append([]float32(nil), t.GetData()...), Shape: append([]int64(nil), t.GetShape()...)}
		case *ort.Tensor[uint8]:
			res[i] = Tensor{U8: append([]uint8(nil), t.GetData()...), Shape: append([]int64(nil), t.GetShape()...)}
		default:
			ok = false
		}
		o.Destroy()
		if !ok {
			return nil, fmt.Errorf("graph output %s is neither float32 nor uint8", g.outputs[i])
		}
	}
	return res, nil
}

// Spec returns the spec the session was opened with.
func (s *Session) Spec() Spec { return s.spec }

// Run feeds a batch of n images of h×w pixels, laid out as the spec's Layout,
// and returns the output as NCHW. The context is checked before the call;
// ONNX Runtime itself cannot be interrupted midway here.
func (s *Session) Run(ctx context.Context, input []float32, n, h, w int) (FeatureMap, error) {
	if err := ctx.Err(); err != nil {
		return FeatureMap{}, err
	}
	if n <= 0 || h <= 0 || w <= 0 || len(input) != n*3*h*w {
		return FeatureMap{}, fmt.Errorf("backbone %s: input of %d floats does not match %d×3×%d×%d", s.spec.Name, len(input), n, h, w)
	}
	shape := ort.NewShape(int64(n), 3, int64(h), int64(w))
	if s.spec.Norm().Layout == "NHWC" {
		shape = ort.NewShape(int64(n), int64(h), int64(w), 3)
	}
	in, err := ort.NewTensor(shape, input)
	if err != nil {
		return FeatureMap{}, fmt.Errorf("backbone %s: input tensor: %w", s.spec.Name, err)
	}
	defer in.Destroy()
	outs := []ort.Value{nil}
	if err := s.sess.Run([]ort.Value{in}, outs); err != nil {
		return FeatureMap{}, fmt.Errorf("backbone %s: run %d×%d×%d: %w", s.spec.Name, n, h, w, err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return FeatureMap{}, fmt.Errorf("backbone %s: output %s is not float32", s.spec.Name, s.spec.Output)
	}
	dims := t.GetShape()
	fm := FeatureMap{N: n, H: 1, W: 1}
	switch len(dims) {
	case 2:
		fm.C = int(dims[1])
	case 4:
		fm.C, fm.H, fm.W = int(dims[1]), int(dims[2]), int(dims[3])
	default:
		return FeatureMap{}, fmt.Errorf("backbone %s: output shape %v is neither N×C nor N×C×H×W", s.spec.Name, dims)
	}
	if int(dims[0]) != n || fm.C != s.spec.Channels {
		return FeatureMap{}, fmt.Errorf("backbone %s: output shape %v, expected %d×%d×…", s.spec.Name, dims, n, s.spec.Channels)
	}
	fm.Data = append([]float32(nil), t.GetData()...)
	return fm, nil
}
