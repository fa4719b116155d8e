package train

import (
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"prodsearch/internal/vec"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// EpochStats is one row of a training curve. ValMAP and ValR1 are NaN when
// validation was not run for that epoch; such points are left out.
type EpochStats struct {
	Epoch  int     `json:"epoch"`
	Loss   float64 `json:"loss"`
	ValMAP float64 `json:"val_map"`
	ValR1  float64 `json:"val_r1"`
}

// PlotCurves draws training loss (top) and validation mAP / R@1 (bottom)
// against epoch, so a run's over- or under-fitting is visible at a glance.
// The format follows the extension of path: .png or .svg.
func PlotCurves(path string, epochs []EpochStats) error {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".png" && ext != ".svg" {
		return fmt.Errorf("plot curves: unsupported extension %q (want .png or .svg)", ext)
	}
	if len(epochs) == 0 {
		return fmt.Errorf("plot curves: no epochs")
	}
	var loss, vmap, vr1 plotter.XYs
	for _, e := range epochs {
		if vec.IsFinite(e.Loss) {
			loss = append(loss, plotter.XY{X: float64(e.Epoch), Y: e.Loss})
		}
		if vec.IsFinite(e.ValMAP) {
			vmap = append(vmap, plotter.XY{X: float64(e.Epoch), Y: e.ValMAP})
		}
		if vec.IsFinite(e.ValR1) {
			vr1 = append(vr1, plotter.XY{X: float64(e.Epoch), Y: e.ValR1})
		}
	}
	top := plot.New()
	top.Title.Text = "training loss"
	top.X.Label.Text = "epoch"
	top.Y.Label.Text = "loss"
	top.Legend.Top = true
	if err := addLine(top, "loss", loss, color.RGBA{R: 200, A: 255}); err != nil {
		return fmt.Errorf("plot curves: %w", err)
	}
	bottom := plot.New()
	bottom.Title.Text = "validation (held-out classes)"
	bottom.X.Label.Text = "epoch"
	bottom.Y.Label.Text = "score"
	if err := addLine(bottom, "mAP", vmap, color.RGBA{B: 200, A: 255}); err != nil {
		return fmt.Errorf("plot curves: %w", err)
	}
	if err := addLine(bottom, "R@1", vr1, color.RGBA{G: 150, A: 255}); err != nil {
		return fmt.Errorf("plot curves: %w", err)
	}
	bottom.Legend.Top = false
	bottom.Legend.Left = false

	const w, h = 8 * vg.Inch, 7 * vg.Inch
	var c vg.CanvasWriterTo
	if ext == ".png" {
		c = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	} else {
		c = vgsvg.New(w, h)
	}
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	plots := [][]*plot.Plot{{top}, {bottom}}
	canvases := plot.Align(plots, tiles, draw.New(c))
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	if err := writeAtomic(path, c); err != nil {
		return fmt.Errorf("plot curves: %w", err)
	}
	return nil
}

// writeAtomic writes to a temporary file beside path and renames it into
// place, so a crash or a full disk never leaves a torn plot. The ".tmp-"
// prefix is bundle.TempPrefix, which run folders sweep on resume.
func writeAtomic(path string, w io.WriterTo) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = w.WriteTo(f); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func addLine(p *plot.Plot, name string, xys plotter.XYs, col color.Color) error {
	if len(xys) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color = col
	s.Color = col
	s.Radius = vg.Points(1.5)
	p.Add(l, s)
	p.Legend.Add(name, l)
	return nil
}
