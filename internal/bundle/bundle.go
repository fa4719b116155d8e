// Package bundle holds the model bundle: everything needed to describe an
// image the same way twice (backbone spec, pooling and TTA settings, learned
// head, re-ranking recipe). An index remembers the bundle ID that filled it and
// refuses descriptors from another. Engine opens a bundle for use.
package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"prodsearch/internal/backbone"
	"prodsearch/internal/describe"
	"prodsearch/internal/rerank"
)

// FormatVersion is bumped when a stored bundle would be read differently.
const FormatVersion = 1

// Bundle is the serialisable recipe: either one backbone (Backbone,
// Describe, optional Heads) or an ensemble (Members), plus an optional
// re-ranking recipe. The zero Heads means the descriptor is the pooled
// backbone output.
type Bundle struct {
	Version  int               `json:"version"`
	Name     string            `json:"name,omitempty"`
	Backbone backbone.Spec     `json:"backbone,omitzero"`
	Describe describe.Settings `json:"describe,omitzero"`
	Heads    describe.Heads    `json:"heads,omitempty"`
	Members  []Member          `json:"members,omitempty"`
	Rerank   *rerank.Params    `json:"rerank,omitempty"`
	Notes    string            `json:"notes,omitempty"`
}

// Member is one single-backbone bundle of an ensemble. The ensemble
// descriptor concatenates Weight x (member descriptor) and renormalises, so
// its cosine similarity is the Weight²-weighted mean of the members'
// similarities: concatenation and similarity averaging are the same thing.
type Member struct {
	Bundle Bundle  `json:"bundle"`
	Weight float64 `json:"weight"`
}

// IsEnsemble reports whether the bundle combines several members.
func (b Bundle) IsEnsemble() bool { return len(b.Members) > 0 }

// Default is the frozen default: the builtin backbone with default settings.
func Default(backboneName string) (Bundle, error) {
	spec, err := backbone.LookupSpec(backboneName)
	if err != nil {
		return Bundle{}, err
	}
	return Bundle{Version: FormatVersion, Name: spec.Name, Backbone: spec, Describe: describe.DefaultSettings()}, nil
}

// Validate checks every part against the others.
func (b Bundle) Validate() error {
	if b.Version != FormatVersion {
		return fmt.Errorf("bundle: version %d not supported (want %d)", b.Version, FormatVersion)
	}
	if b.Rerank != nil {
		if err := b.Rerank.Validate(); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	if b.IsEnsemble() {
		if b.Backbone.Name != "" || len(b.Heads) > 0 || len(b.Describe.Scales) > 0 {
			return fmt.Errorf("bundle: an ensemble keeps backbone, describe settings and heads in its members")
		}
		for i, m := range b.Members {
			if m.Bundle.IsEnsemble() || m.Bundle.Rerank != nil {
				return fmt.Errorf("bundle: member %d must be a single-backbone bundle without re-ranking", i)
			}
			if !(m.Weight > 0) || math.IsInf(m.Weight, 0) {
				return fmt.Errorf("bundle: member %d weight %v must be positive", i, m.Weight)
			}
			if err := m.Bundle.Validate(); err != nil {
				return fmt.Errorf("member %d: %w", i, err)
			}
		}
		return nil
	}
	if err := b.Backbone.Validate(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := b.Describe.Validate(b.Backbone); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := b.Heads.Validate(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if len(b.Heads) > 0 && b.Heads.InDim() != b.Backbone.Channels {
		return fmt.Errorf("bundle: head expects %d-d input, backbone %s gives %d", b.Heads.InDim(), b.Backbone.Name, b.Backbone.Channels)
	}
	return nil
}

// Dim is the length of the final descriptor.
func (b Bundle) Dim() int {
	if b.IsEnsemble() {
		n := 0
		for _, m := range b.Members {
			n += m.Bundle.Dim()
		}
		return n
	}
	if len(b.Heads) > 0 {
		return b.Heads.OutDim()
	}
	return b.Backbone.Channels
}

// ID identifies what produces the descriptors (backbone, settings, heads),
// not the re-ranking, which works on stored descriptors and may change freely.
func (b Bundle) ID() string {
	var members []string
	for _, m := range b.Members {
		members = append(members, fmt.Sprintf("%s*%g", m.Bundle.ID(), m.Weight))
	}
	data, _ := json.Marshal(struct {
		B backbone.Spec
		D describe.Settings
		H describe.Heads
		M []string
	}{b.Backbone, b.Describe, b.Heads, members})
	h := sha256.Sum256(data)
	return b.Name + "-" + hex.EncodeToString(h[:6])
}

// Load reads a bundle JSON file: one JSON object, no unknown fields.
func Load(path string) (Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Bundle{}, fmt.Errorf("bundle: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return Bundle{}, fmt.Errorf("bundle %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Bundle{}, fmt.Errorf("bundle %s: data after the JSON object", path)
	}
	if err := b.Validate(); err != nil {
		return Bundle{}, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// Save writes the bundle atomically (temp file, fsync, rename), so a crash
// never leaves half a checkpoint behind.
func (b Bundle) Save(path string) error {
	if err := b.Validate(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(data, '\n'))
}

// TempPrefix starts the names of WriteFileAtomic's temporary files, so that
// whoever owns the folder can sweep those a killed process left behind.
const TempPrefix = ".tmp-"

// WriteFileAtomic replaces path with data so readers see the old or the new
// file, never a torn one.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, TempPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
