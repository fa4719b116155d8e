// Package backbone describes pretrained ONNX image models (Spec) and runs them
// with ONNX Runtime (Session). A spec is data, so any ONNX image model with a
// feature-map or vector output can be added without changing code.
package backbone

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"prodsearch/internal/imageio"
)

//go:embed specs/*.json
var builtinFS embed.FS

// Output kinds a spec can declare.
const (
	OutputFeatureMap = "featmap" // N×C×h×w, pooled by the describer
	OutputVector     = "vector"  // N×C, already pooled by the model
)

// Spec is everything needed to feed a model and read its output the same way
// every time; it is stored inside model bundles so an index can refuse
// descriptors made another way.
type Spec struct {
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	File        string     `json:"file"`
	SHA256      string     `json:"sha256"`
	License     string     `json:"license,omitempty"`
	Input       string     `json:"input"`
	Layout      string     `json:"layout"` // NCHW or NHWC
	Color       string     `json:"color"`  // RGB or BGR
	Scale       float32    `json:"scale"`  // pixel (0..255) multiplier before mean/std
	Mean        [3]float32 `json:"mean"`
	Std         [3]float32 `json:"std"`
	Output      string     `json:"output"`
	OutputKind  string     `json:"output_kind"` // featmap or vector
	Channels    int        `json:"channels"`
	Stride      int        `json:"stride,omitempty"`
	MinSize     int        `json:"min_size,omitempty"`
	DefaultSize int        `json:"default_size"`
	// Blocks names, last block first, the tensor that enters each of the
	// model's final blocks: fine-tuning K blocks cuts the graph at Blocks[K-1]
	// and trains everything after it. Empty for a model that is only run
	// frozen.
	Blocks []string `json:"blocks,omitempty"`
}

// Validate reports the first field that cannot work.
func (s Spec) Validate() error {
	switch {
	case s.Name == "":
		return errors.New("spec: name is empty")
	case s.File == "":
		return fmt.Errorf("spec %s: file is empty", s.Name)
	case len(s.SHA256) != 64:
		return fmt.Errorf("spec %s: sha256 must be 64 hex digits", s.Name)
	case s.Input == "" || s.Output == "":
		return fmt.Errorf("spec %s: input and output names are required", s.Name)
	case s.OutputKind != OutputFeatureMap && s.OutputKind != OutputVector:
		return fmt.Errorf("spec %s: output_kind %q is not %q or %q", s.Name, s.OutputKind, OutputFeatureMap, OutputVector)
	case s.Channels <= 0:
		return fmt.Errorf("spec %s: channels must be positive", s.Name)
	case s.DefaultSize <= 0:
		return fmt.Errorf("spec %s: default_size must be positive", s.Name)
	}
	for i, b := range s.Blocks {
		if b == "" {
			return fmt.Errorf("spec %s: blocks[%d] is empty", s.Name, i)
		}
	}
	if _, err := hex.DecodeString(s.SHA256); err != nil {
		return fmt.Errorf("spec %s: sha256: %w", s.Name, err)
	}
	if err := s.Norm().Validate(); err != nil {
		return fmt.Errorf("spec %s: %w", s.Name, err)
	}
	return nil
}

// Norm is the pixel normalisation the model was trained with.
func (s Spec) Norm() imageio.PixelNorm {
	return imageio.PixelNorm{
		Layout: strings.ToUpper(s.Layout),
		BGR:    strings.EqualFold(s.Color, "BGR"),
		Scale:  s.Scale,
		Mean:   s.Mean,
		Std:    s.Std,
	}
}

// Builtin returns the specs shipped with prodsearch, sorted by name.
func Builtin() ([]Spec, error) {
	entries, err := fs.ReadDir(builtinFS, "specs")
	if err != nil {
		return nil, err
	}
	var out []Spec
	for _, e := range entries {
		data, err := builtinFS.ReadFile("specs/" + e.Name())
		if err != nil {
			return nil, err
		}
		s, err := ParseSpec(data)
		if err != nil {
			return nil, fmt.Errorf("builtin %s: %w", e.Name(), err)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ParseSpec decodes and validates a JSON spec; unknown fields and anything
// after the object are refused, so a typo or a badly merged file does not
// silently fall back to a default.
func ParseSpec(data []byte) (Spec, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return Spec{}, fmt.Errorf("spec: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Spec{}, errors.New("spec: data after the JSON object")
	}
	return s, s.Validate()
}

// LookupSpec resolves a builtin name (e.g. "mnv2_int8") or a path to a JSON
// spec file.
func LookupSpec(nameOrPath string) (Spec, error) {
	if strings.HasSuffix(nameOrPath, ".json") || strings.ContainsRune(nameOrPath, os.PathSeparator) {
		data, err := os.ReadFile(nameOrPath)
		if err != nil {
			return Spec{}, fmt.Errorf("backbone spec: %w", err)
		}
		s, err := ParseSpec(data)
		if err != nil {
			return Spec{}, fmt.Errorf("%s: %w", nameOrPath, err)
		}
		return s, nil
	}
	all, err := Builtin()
	if err != nil {
		return Spec{}, err
	}
	names := make([]string, 0, len(all))
	for _, s := range all {
		if s.Name == nameOrPath {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Spec{}, fmt.Errorf("unknown backbone %q (builtin: %s; or give a path to a .json spec)", nameOrPath, strings.Join(names, ", "))
}

// ModelPath returns the model file of s inside dir after checking that it
// exists and has the expected sha256; the errors name the expected file so a
// user knows what to fetch.
func (s Spec) ModelPath(dir string) (string, error) {
	path := s.File
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, s.File)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("model %s: file %s not found in model directory %q (set --models or PRODSEARCH_MODELS): %w", s.Name, s.File, dir, err)
		}
		return "", fmt.Errorf("model %s: %w", s.Name, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("model %s: reading %s: %w", s.Name, path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, s.SHA256) {
		return "", fmt.Errorf("model %s: %s has sha256 %s, expected %s (wrong or corrupted file)", s.Name, path, got, s.SHA256)
	}
	return path, nil
}
