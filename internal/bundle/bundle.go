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
	"time"

	"prodsearch/internal/backbone"
	"prodsearch/internal/describe"
	"prodsearch/internal/rerank"
)

// FormatVersion is bumped when a stored bundle would be read differently.
// Version 2 keeps weights in a safetensors file beside the JSON recipe and
// lets an ensemble refer to its members' files; version 1 (weights inline as
// JSON numbers) is still read.
const FormatVersion = 2

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
	// Recipes holds one re-ranking recipe per catalogue shape; RecipeFor
	// picks the one that fits a catalogue, falling back to Rerank.
	Recipes    []Recipe    `json:"recipes,omitempty"`
	Provenance *Provenance `json:"provenance,omitempty"`
	Notes      string      `json:"notes,omitempty"`
	// Tensors names the safetensors file that holds the weights (version 2);
	// Load fills Heads' weights from it, Save writes it.
	Tensors *TensorFile `json:"tensors,omitempty"`
	// FineTuned is set when the backbone's last blocks were trained.
	FineTuned *FineTuned `json:"finetuned,omitempty"`

	// path is the file the bundle was loaded from or saved to, so an
	// ensemble saved later can refer to it instead of copying its weights.
	path string
}

// Member is one single-backbone bundle of an ensemble. The ensemble
// descriptor concatenates Weight x (member descriptor) and renormalises, so
// its cosine similarity is the Weight²-weighted mean of the members'
// similarities: concatenation and similarity averaging are the same thing.
//
// A member saved in its own file is stored as Ref (a path relative to the
// ensemble's file) and ID, which Load checks, instead of a copy.
type Member struct {
	Bundle Bundle  `json:"bundle,omitzero"`
	Weight float64 `json:"weight"`
	Ref    string  `json:"ref,omitempty"`
	ID     string  `json:"id,omitempty"`
}

// Provenance records how a model was made, so that it can be rebuilt and
// the rebuild compared with it.
type Provenance struct {
	Command string `json:"command"`
	// Data is the training data as given and DataSHA256 a hash over the
	// labelled images' contents the model trained on (with the catalogue
	// images when it trained on them), independent of paths and order.
	Data       string `json:"data"`
	DataSHA256 string `json:"data_sha256"`
	Catalogue  string `json:"catalogue,omitempty"`
	// CatalogueTrained says the model trained on Catalogue's images too
	// (those of the training classes), so DataSHA256 covers them.
	CatalogueTrained bool `json:"catalogue_trained,omitempty"`
	// ValClasses are the training classes held out to choose settings,
	// checkpoints, weights and recipes.
	ValClasses []string `json:"val_classes,omitempty"`
	// Settings says how the describe settings were chosen.
	Settings string    `json:"settings,omitempty"`
	Built    time.Time `json:"built"`
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
	if b.Version != FormatVersion && b.Version != 1 {
		return fmt.Errorf("bundle: version %d not supported (want %d)", b.Version, FormatVersion)
	}
	if b.Rerank != nil {
		if err := b.Rerank.Validate(); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	if err := validateRecipes(b.Recipes); err != nil {
		return err
	}
	if b.IsEnsemble() {
		if b.Backbone.Name != "" || len(b.Heads) > 0 || len(b.Describe.Scales) > 0 {
			return fmt.Errorf("bundle: an ensemble keeps backbone, describe settings and heads in its members")
		}
		for i, m := range b.Members {
			if m.Bundle.IsEnsemble() || m.Bundle.Rerank != nil || len(m.Bundle.Recipes) > 0 {
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
	if b.FineTuned != nil {
		if err := b.FineTuned.validate(b.Backbone); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
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
	tuned := ""
	if b.FineTuned != nil {
		tuned = b.FineTuned.SHA256
	}
	data, _ := json.Marshal(struct {
		B backbone.Spec
		D describe.Settings
		H describe.Heads
		M []string
		F string `json:",omitempty"`
	}{b.Backbone, b.Describe, b.Heads, members, tuned})
	h := sha256.Sum256(data)
	return b.Name + "-" + hex.EncodeToString(h[:6])
}

// Load reads a bundle: one JSON object with no unknown fields, the
// safetensors file it names (checked against its sha256) and the files of
// the members it refers to.
func Load(path string) (Bundle, error) {
	return load(path, true)
}

func load(path string, allowRefs bool) (Bundle, error) {
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
	dir := filepath.Dir(path)
	for i := range b.Members {
		m := &b.Members[i]
		if m.Ref == "" {
			continue
		}
		if !allowRefs {
			return Bundle{}, fmt.Errorf("bundle %s: a member file cannot refer to other members", path)
		}
		if !m.Bundle.IsZero() {
			return Bundle{}, fmt.Errorf("bundle %s: member %d has both a ref and an inline bundle", path, i)
		}
		mb, err := load(filepath.Join(dir, filepath.FromSlash(m.Ref)), false)
		if err != nil {
			return Bundle{}, fmt.Errorf("bundle %s: member %d: %w", path, i, err)
		}
		if m.ID != "" && mb.ID() != m.ID {
			return Bundle{}, fmt.Errorf("bundle %s: member %d (%s) has ID %s, the ensemble was made with %s", path, i, m.Ref, mb.ID(), m.ID)
		}
		m.Bundle = mb
	}
	if err := b.readTensors(dir); err != nil {
		return Bundle{}, fmt.Errorf("bundle %s: %w", path, err)
	}
	if err := b.Validate(); err != nil {
		return Bundle{}, fmt.Errorf("%s: %w", path, err)
	}
	b.path = path
	return b, nil
}

// IsZero reports whether b is the zero bundle (an absent inline member).
func (b Bundle) IsZero() bool {
	return b.Version == 0 && b.Name == "" && b.Backbone.Name == "" && len(b.Heads) == 0 && len(b.Members) == 0 && b.Rerank == nil && len(b.Recipes) == 0 && b.Provenance == nil && b.Tensors == nil && b.FineTuned == nil
}

// Path is the file the bundle was loaded from or last saved to ("" if none).
func (b Bundle) Path() string { return b.path }

// Save writes the bundle atomically (temp file, fsync, rename), so a crash
// never leaves half a checkpoint behind: the weights go to a safetensors file
// beside path (same name, extension .safetensors), written first, and the
// JSON recipe that names them last. Members that were loaded from or saved
// to their own file are referred to, not copied.
func (b *Bundle) Save(path string) error {
	if err := b.Validate(); err != nil {
		return err
	}
	out := *b
	out.Version = FormatVersion
	out.Tensors = nil
	if b.Tensors != nil && b.Tensors.Half {
		out.Tensors = &TensorFile{Half: true}
	}
	out.Members = append([]Member(nil), b.Members...)
	dir := filepath.Dir(path)
	for i := range out.Members {
		m := &out.Members[i]
		m.Ref, m.ID = "", ""
		src := m.Bundle.path
		if src == "" || m.Bundle.tensorCount() == 0 {
			continue
		}
		abs, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		absDir, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(absDir, abs)
		if err != nil {
			return fmt.Errorf("bundle: member %d: %w", i, err)
		}
		m.Ref, m.ID = filepath.ToSlash(rel), m.Bundle.ID()
	}
	tf, err := out.writeTensors(path)
	if err != nil {
		return err
	}
	out.Tensors = tf
	data, err := json.MarshalIndent(out.stripped(), "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(path, append(data, '\n')); err != nil {
		return err
	}
	b.path = path
	return nil
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
	// CreateTemp makes the file private; models and checkpoints are meant
	// to be read by others, like any file written with the usual umask.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
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
