package bundle

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nlpodyssey/safetensors"

	"prodsearch/internal/describe"
	"prodsearch/internal/vec"
)

// TensorFile names the safetensors file that holds a bundle's weights, with
// its sha256 so that a recipe is never paired with the wrong weights.
type TensorFile struct {
	File   string `json:"file"` // relative to the bundle's JSON file
	SHA256 string `json:"sha256"`
	// Half stores the weights as IEEE float16, halving the file; descriptors
	// then differ from float32 weights by about 1e-4 in cosine. A fine-tuned
	// tail stays float32: the ONNX file rebuilt from it must match its
	// recorded sha256 byte for byte, unless its values are float16 values
	// already (FineTuned.RoundHalf), which float16 then stores exactly.
	Half bool `json:"half,omitempty"`
}

// TensorPath is where Save writes the weights of the bundle saved at path.
func TensorPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".safetensors"
}

// slot is one weight array of the bundle tree under its tensor name; shape
// is what the recipe says it must be, and exact keeps it float32 whatever
// TensorFile.Half says.
type slot struct {
	name  string
	ptr   *[]float32
	shape []uint64
	exact bool
}

// slots lists the weight arrays stored in this bundle's own tensor file:
// its heads and those of inline members (members with a Ref live in their
// own files). The names follow the bundle's JSON paths.
func (b *Bundle) slots() []slot {
	var out []slot
	for i := range b.Members {
		if b.Members[i].Ref != "" {
			continue
		}
		for _, s := range b.Members[i].Bundle.slots() {
			s.name = fmt.Sprintf("members.%d.%s", i, s.name)
			out = append(out, s)
		}
	}
	if f := b.FineTuned; f != nil {
		for i := range f.Tensors {
			t := &f.Tensors[i]
			shape := make([]uint64, len(t.Dims))
			for j, d := range t.Dims {
				shape[j] = uint64(max(d, 0))
			}
			out = append(out, slot{name: "finetuned." + t.Name, ptr: &t.Data, shape: shape, exact: true})
		}
	}
	for i := range b.Heads {
		h := &b.Heads[i]
		in := h.In
		if h.Hidden > 0 {
			in = h.Hidden
			out = append(out,
				slot{name: fmt.Sprintf("heads.%d.w1", i), ptr: &h.W1, shape: dims(h.Hidden, h.In)},
				slot{name: fmt.Sprintf("heads.%d.b1", i), ptr: &h.B1, shape: dims(h.Hidden)})
		}
		out = append(out,
			slot{name: fmt.Sprintf("heads.%d.mean", i), ptr: &h.Mean, shape: dims(h.In)},
			slot{name: fmt.Sprintf("heads.%d.w", i), ptr: &h.W, shape: dims(h.Out, in)})
	}
	return out
}

// halfExact reports whether float16 holds every value of v exactly.
func halfExact(v []float32) bool {
	for _, f := range v {
		if vec.FromHalf(vec.Half(f)) != f {
			return false
		}
	}
	return true
}

func dims(d ...int) []uint64 {
	out := make([]uint64, len(d))
	for i, v := range d {
		out[i] = uint64(max(v, 0))
	}
	return out
}

// tensorCount is the number of non-empty weight arrays in the bundle and its
// inline members.
func (b *Bundle) tensorCount() int {
	n := 0
	for _, s := range b.slots() {
		if len(*s.ptr) > 0 {
			n++
		}
	}
	return n
}

// stripped returns a copy for the JSON recipe: weights and referenced
// members' bundles left out, nothing shared with b that the copy changes.
func (b Bundle) stripped() Bundle {
	c := b
	c.Heads = append(describe.Heads(nil), b.Heads...)
	c.FineTuned = b.FineTuned.clone()
	c.Members = append([]Member(nil), b.Members...)
	for i := range c.Members {
		if c.Members[i].Ref != "" {
			c.Members[i].Bundle = Bundle{}
		} else {
			c.Members[i].Bundle = c.Members[i].Bundle.stripped()
		}
	}
	for _, s := range c.slots() {
		*s.ptr = nil
	}
	return c
}

// writeTensors writes the weights of b (whose members already carry their
// Refs) beside path and returns the file's reference; nil if there are none.
func (b *Bundle) writeTensors(path string) (*TensorFile, error) {
	half := b.Tensors != nil && b.Tensors.Half
	views := map[string]safetensors.TensorView{}
	for _, s := range b.slots() {
		v := *s.ptr
		if len(v) == 0 {
			continue
		}
		var data []byte
		dt := safetensors.F32
		if half && (!s.exact || halfExact(v)) {
			dt = safetensors.F16
			data = make([]byte, 0, 2*len(v))
			for _, f := range v {
				data = binary.LittleEndian.AppendUint16(data, vec.Half(f))
			}
		} else {
			data = vec.AppendF32(make([]byte, 0, 4*len(v)), v)
		}
		shape := s.shape
		if product(shape) != uint64(len(v)) {
			shape = []uint64{uint64(len(v))}
		}
		tv, err := safetensors.NewTensorView(dt, shape, data)
		if err != nil {
			return nil, fmt.Errorf("bundle: tensor %s: %w", s.name, err)
		}
		views[s.name] = tv
	}
	if len(views) == 0 {
		return nil, nil
	}
	data, err := safetensors.Serialize(views, map[string]string{"format": "prodsearch-bundle"})
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	tp := TensorPath(path)
	if err := WriteFileAtomic(tp, data); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return &TensorFile{File: filepath.Base(tp), SHA256: hex.EncodeToString(sum[:]), Half: half}, nil
}

// readTensors fills b's weights from the file its recipe names. Every tensor
// must be used, be float32 or float16 and have the recipe's shape.
func (b *Bundle) readTensors(dir string) error {
	if b.Tensors == nil {
		return nil
	}
	tf := b.Tensors
	if tf.File == "" || filepath.Base(tf.File) != tf.File {
		return fmt.Errorf("tensors: file %q must be a plain name beside the bundle", tf.File)
	}
	data, err := os.ReadFile(filepath.Join(dir, tf.File))
	if err != nil {
		return fmt.Errorf("tensors: %w", err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != tf.SHA256 {
		return fmt.Errorf("tensors: %s has sha256 %s, the bundle expects %s", tf.File, got, tf.SHA256)
	}
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return fmt.Errorf("tensors: %s: %w", tf.File, err)
	}
	used := map[string]bool{}
	for _, s := range b.slots() {
		tv, ok := st.Tensor(s.name)
		if !ok {
			continue
		}
		if len(*s.ptr) > 0 {
			return fmt.Errorf("tensors: %s is both inline and in %s", s.name, tf.File)
		}
		if got, want := product(tv.Shape()), product(s.shape); got != want {
			return fmt.Errorf("tensors: %s has %d values (shape %v), the recipe needs %d (shape %v)", s.name, got, tv.Shape(), want, s.shape)
		}
		v, err := toF32(tv)
		if err != nil {
			return fmt.Errorf("tensors: %s: %w", s.name, err)
		}
		*s.ptr = v
		used[s.name] = true
	}
	var extra []string
	for _, n := range st.Names() {
		if !used[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("tensors: %s holds tensors the recipe does not use: %s", tf.File, strings.Join(extra, ", "))
	}
	return nil
}

func product(shape []uint64) uint64 {
	n := uint64(1)
	for _, d := range shape {
		if d != 0 && n > math.MaxUint64/d {
			return math.MaxUint64
		}
		n *= d
	}
	return n
}

func toF32(tv safetensors.TensorView) ([]float32, error) {
	raw := tv.Data()
	switch tv.DType() {
	case safetensors.F32:
		out := make([]float32, len(raw)/4)
		vec.DecodeF32(out, raw)
		return out, nil
	case safetensors.F16:
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = vec.FromHalf(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out, nil
	}
	return nil, errors.New("dtype " + tv.DType().String() + " not supported (want F32 or F16)")
}
