package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"prodsearch/internal/backbone"
	"prodsearch/internal/onnxgraph"
	"prodsearch/internal/vec"
)

// FineTuned records that the backbone's last blocks were trained. The model
// ONNX Runtime runs is the base model (Backbone's file and sha256) with the
// tail's initializers replaced by Tensors: the same graph, so describing
// costs the same. The full ONNX file (File, ~17 MB) is kept beside the
// bundle for speed, but only the tail tensors (a few MB) travel in the
// bundle's safetensors file: a missing File is rebuilt from the base model.
type FineTuned struct {
	BaseSHA256 string       `json:"base_sha256"`
	File       string       `json:"file"`   // beside the bundle's JSON
	SHA256     string       `json:"sha256"` // of File
	Tensors    []TailTensor `json:"tensors"`
}

// TailTensor is one replaced initializer; Data lives in the safetensors file.
type TailTensor struct {
	Name string    `json:"name"`
	Dims []int64   `json:"dims"`
	Data []float32 `json:"data,omitempty"`
}

func (f *FineTuned) clone() *FineTuned {
	if f == nil {
		return nil
	}
	c := *f
	c.Tensors = append([]TailTensor(nil), f.Tensors...)
	return &c
}

// Copy returns a copy that shares nothing with f.
func (f *FineTuned) Copy() *FineTuned {
	c := f.clone()
	for i := range c.Tensors {
		c.Tensors[i].Dims = slices.Clone(c.Tensors[i].Dims)
		c.Tensors[i].Data = slices.Clone(c.Tensors[i].Data)
	}
	return c
}

func (f *FineTuned) validate(base backbone.Spec) error {
	if f.BaseSHA256 != base.SHA256 {
		return fmt.Errorf("fine-tuned from model %s, but the backbone is %s", f.BaseSHA256, base.SHA256)
	}
	if f.File == "" || filepath.Base(f.File) != f.File {
		return fmt.Errorf("fine-tuned model file %q must be a plain name beside the bundle", f.File)
	}
	if _, err := hex.DecodeString(f.SHA256); err != nil || len(f.SHA256) != 64 {
		return fmt.Errorf("fine-tuned model sha256 %q is not 64 hex digits", f.SHA256)
	}
	if len(f.Tensors) == 0 {
		return errors.New("fine-tuned model lists no tensors")
	}
	for _, t := range f.Tensors {
		n := int64(1)
		for _, d := range t.Dims {
			if d <= 0 || n > 1<<28/d {
				return fmt.Errorf("fine-tuned tensor %q: bad dims %v", t.Name, t.Dims)
			}
			n *= d
		}
		if t.Name == "" || (t.Data != nil && int64(len(t.Data)) != n) {
			return fmt.Errorf("fine-tuned tensor %q: %d values for dims %v", t.Name, len(t.Data), t.Dims)
		}
	}
	return nil
}

// RoundHalf returns a copy whose tensors are rounded to float16 values, so
// that a half-precision tensor file stores them exactly and halves the tail
// (the ONNX file's sha256 changes with them: Build it again). The rounding
// moves a descriptor by about 1e-4 in cosine, like the heads' rounding. A
// value beyond float16's range is an error, not an infinity.
func (f *FineTuned) RoundHalf() (*FineTuned, error) {
	c := f.Copy()
	for _, t := range c.Tensors {
		for j, v := range t.Data {
			h := vec.FromHalf(vec.Half(v))
			if math.IsInf(float64(h), 0) && !math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("fine-tuned tensor %q: %g does not fit in float16", t.Name, v)
			}
			t.Data[j] = h
		}
	}
	return c, nil
}

// Build writes the base model with the tail tensors replaced and returns
// the serialized model and its sha256.
func (f *FineTuned) Build(base *onnxgraph.Model) ([]byte, string, error) {
	m := base.Clone()
	for _, t := range f.Tensors {
		if err := m.ReplaceFloats(t.Name, t.Data); err != nil {
			return nil, "", fmt.Errorf("fine-tuned model: %w", err)
		}
	}
	data, err := m.Marshal()
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:]), nil
}

// BuildFrom is Build on the base model, read from modelDir and checked
// against base's sha256.
func (f *FineTuned) BuildFrom(base backbone.Spec, modelDir string) ([]byte, string, error) {
	path, err := base.ModelPath(modelDir)
	if err != nil {
		return nil, "", err
	}
	m, err := onnxgraph.Load(path)
	if err != nil {
		return nil, "", err
	}
	return f.Build(m)
}

// modelSpec returns the spec that opens the fine-tuned model: the base spec
// with the file beside the bundle (dir) and its sha256. A missing or
// corrupted file is rebuilt from the base model in modelDir and the tail
// tensors, and must hash to the recorded sha256.
func (f *FineTuned) modelSpec(base backbone.Spec, dir, modelDir string) (backbone.Spec, error) {
	spec := base
	spec.File, spec.SHA256 = filepath.Join(dir, f.File), f.SHA256
	if !filepath.IsAbs(spec.File) {
		abs, err := filepath.Abs(spec.File)
		if err != nil {
			return spec, err
		}
		spec.File = abs
	}
	if _, err := spec.ModelPath(modelDir); err == nil {
		return spec, nil
	}
	data, sum, err := f.BuildFrom(base, modelDir)
	if err != nil {
		return spec, fmt.Errorf("rebuilding fine-tuned model %s: %w", f.File, err)
	}
	if sum != f.SHA256 {
		return spec, fmt.Errorf("rebuilding fine-tuned model %s: got sha256 %s, the bundle expects %s", f.File, sum, f.SHA256)
	}
	if old, err := os.ReadFile(spec.File); err == nil && bytes.Equal(old, data) {
		return spec, nil
	}
	if err := WriteFileAtomic(spec.File, data); err != nil {
		return spec, fmt.Errorf("rebuilding fine-tuned model: %w", err)
	}
	return spec, nil
}
