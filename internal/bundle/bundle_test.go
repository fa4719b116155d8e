package bundle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"prodsearch/internal/rerank"
)

func TestSaveLoadAndIDs(t *testing.T) {
	a, err := Default("coral_mnv1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Default("mnv2_int8")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() == b.ID() {
		t.Fatal("different backbones share an ID")
	}
	withQE := a
	withQE.Rerank = &rerank.Params{QE: 2}
	if withQE.ID() != a.ID() {
		t.Fatal("re-ranking must not change the descriptor ID")
	}
	ens := Bundle{Version: FormatVersion, Name: "ens", Members: []Member{{Bundle: a, Weight: 1}, {Bundle: b, Weight: 0.5}}}
	if err := ens.Validate(); err != nil {
		t.Fatal(err)
	}
	if ens.Dim() != 1024+1280 {
		t.Fatalf("ensemble dim %d", ens.Dim())
	}
	roundTrip(t, ens, filepath.Join(t.TempDir(), "b.json"))
	reweighted := ens
	reweighted.Members = []Member{{Bundle: a, Weight: 1}, {Bundle: b, Weight: 0.7}}
	if reweighted.ID() == ens.ID() {
		t.Fatal("weights must change the ensemble ID")
	}
}

func TestValidateRejects(t *testing.T) {
	a, _ := Default("coral_mnv1")
	for name, b := range map[string]Bundle{
		"version":      {Version: 99, Backbone: a.Backbone, Describe: a.Describe},
		"zero weight":  {Version: FormatVersion, Members: []Member{{Bundle: a, Weight: 0}}},
		"mixed":        {Version: FormatVersion, Backbone: a.Backbone, Members: []Member{{Bundle: a, Weight: 1}}},
		"nested":       {Version: FormatVersion, Members: []Member{{Bundle: Bundle{Version: FormatVersion, Members: []Member{{Bundle: a, Weight: 1}}}, Weight: 1}}},
		"bad settings": {Version: FormatVersion, Backbone: a.Backbone},
		"bad rerank":   {Version: FormatVersion, Backbone: a.Backbone, Describe: a.Describe, Rerank: &rerank.Params{QE: -1}},
	} {
		if err := b.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("missing file: %v", err)
	}
	two := filepath.Join(t.TempDir(), "two.json")
	if err := a.Save(two); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(two)
	if err := os.WriteFile(two, append(data, data...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(two); err == nil || !strings.Contains(err.Error(), "data after the JSON object") {
		t.Fatalf("two objects in one file: %v", err)
	}
}
