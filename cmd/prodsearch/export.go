package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"prodsearch/internal/backbone"
	"prodsearch/internal/bundle"
	"prodsearch/internal/export"
)

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", "[--bundle B] --out FILE.onnx", stderr)
	ef := addEngineFlags(fs)
	ef.shipped = true
	out := fs.String("out", "", "ONNX file to write; FILE.json beside it says how to prepare each input")
	if err := parse(fs, args, "out"); err != nil {
		return err
	}
	b, err := ef.resolveBundle()
	if err != nil {
		return err
	}
	dir, err := backbone.FindModelDir(ef.models)
	if err != nil {
		return err
	}
	g, inputs, err := export.Graph(b, dir)
	if err != nil {
		return err
	}
	data, err := g.Marshal()
	if err != nil {
		return err
	}
	if err := bundle.WriteFileAtomic(*out, data); err != nil {
		return err
	}
	side := struct {
		Bundle string         `json:"bundle"`
		Output string         `json:"output"`
		Dim    int            `json:"dim"`
		Inputs []export.Input `json:"inputs"`
		Note   string         `json:"note"`
	}{b.ID(), export.Output, b.Dim(), inputs,
		"each input: N×H×W×3 float32 RGB in 0..255; crop the centre fraction `crop` of each side, then resize to short side `short_side` keeping the aspect ratio (long side capped at max_long, default twice the short side)"}
	meta, err := json.MarshalIndent(side, "", "  ")
	if err != nil {
		return err
	}
	sidecar := strings.TrimSuffix(*out, ".onnx") + ".json"
	if err := bundle.WriteFileAtomic(sidecar, append(meta, '\n')); err != nil {
		return err
	}
	names := make([]string, len(inputs))
	for i, in := range inputs {
		names[i] = in.Name
	}
	fmt.Fprintf(stdout, "wrote %s (%.1f MB): inputs %s -> %s (%d-d); preparation in %s\n", *out, float64(len(data))/1e6, strings.Join(names, ", "), export.Output, b.Dim(), sidecar)
	return nil
}
