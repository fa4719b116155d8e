package describe

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"prodsearch/internal/backbone"
	"prodsearch/internal/cache"
)

func TestPoolHandComputed(t *testing.T) {
	// Two channels, four positions.
	fmap := []float32{1, 2, 3, 4, 0, 0, 0, 8}
	dst := make([]float32, 2)
	if err := Pool(dst, fmap, 2, 4, PoolGAP, 0); err != nil {
		t.Fatal(err)
	}
	if dst[0] != 2.5 || dst[1] != 2 {
		t.Fatalf("GAP = %v, want [2.5 2]", dst)
	}
	if err := Pool(dst, fmap, 2, 4, PoolMax, 0); err != nil || dst[0] != 4 || dst[1] != 8 {
		t.Fatalf("max = %v (%v), want [4 8]", dst, err)
	}
	if err := Pool(dst, fmap, 2, 4, PoolGeM, 3); err != nil {
		t.Fatal(err)
	}
	want0 := math.Cbrt((1 + 8 + 27 + 64) / 4.0)
	want1 := math.Cbrt(512 / 4.0)
	if math.Abs(float64(dst[0])-want0) > 1e-5 || math.Abs(float64(dst[1])-want1) > 1e-4 {
		t.Fatalf("GeM p=3 = %v, want [%v %v]", dst, want0, want1)
	}
	// GeM with p=1 is GAP.
	if err := Pool(dst, fmap, 2, 4, PoolGeM, 1); err != nil || math.Abs(float64(dst[0])-2.5) > 1e-5 {
		t.Fatalf("GeM p=1 = %v (%v), want GAP", dst, err)
	}
	for _, bad := range []struct {
		m string
		p float64
	}{{"gem", 0}, {"gem", math.NaN()}, {"avg", 1}} {
		if err := Pool(dst, fmap, 2, 4, bad.m, bad.p); err == nil {
			t.Errorf("Pool(%s, %v) accepted", bad.m, bad.p)
		}
	}
	if err := Pool(dst, fmap[:7], 2, 4, PoolGAP, 0); err == nil {
		t.Error("short map accepted")
	}
}

// fakeRunner stands in for a backbone: channel c of the 4-channel "feature
// map" is the mean of colour channel c (and 1 for the 4th), so colours give
// distinct descriptors. It counts the images it sees.
type fakeRunner struct{ seen int }

func (f *fakeRunner) Spec() backbone.Spec {
	return backbone.Spec{Name: "fake", SHA256: "00", Layout: "NCHW", Color: "RGB", Scale: 1, Std: [3]float32{1, 1, 1}, Channels: 4, MinSize: 8, OutputKind: backbone.OutputFeatureMap}
}

func (f *fakeRunner) Run(ctx context.Context, in []float32, n, h, w int) (backbone.FeatureMap, error) {
	f.seen += n
	fm := backbone.FeatureMap{N: n, C: 4, H: 1, W: 1, Data: make([]float32, n*4)}
	per := 3 * h * w
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			var s float32
			for _, v := range in[i*per+c*h*w : i*per+(c+1)*h*w] {
				s += v
			}
			fm.Data[i*4+c] = s / float32(h*w)
		}
		fm.Data[i*4+3] = 1
	}
	return fm, nil
}

func writePNG(t *testing.T, path string, c color.RGBA, w, h int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = c.R, c.G, c.B, 255
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDescribeFilesOrderFailuresAndCache(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	cols := []color.RGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}}
	for i, c := range cols {
		p := filepath.Join(dir, string(rune('a'+i))+".png")
		writePNG(t, p, c, 40+i*7, 30)
		paths = append(paths, p)
	}
	broken := filepath.Join(dir, "broken.jpg")
	if err := os.WriteFile(broken, []byte("\xff\xd8\xff\xe0 truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	paths = append(paths[:1], append([]string{broken, filepath.Join(dir, "missing.png")}, paths[1:]...)...)

	run := &fakeRunner{}
	d, err := New(run, Settings{Scales: []int{16, 24}, Flip: true, Pool: PoolGAP})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var calls int
	opt := FileOptions{Cache: c, Batch: 2, Progress: func(done, total int) { calls++ }}
	vecs, fails, st, err := d.DescribeFiles(context.Background(), paths, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(fails) != 2 || fails[0].Path != broken {
		t.Fatalf("want the broken and the missing file reported, got %v", fails)
	}
	if vecs[1] != nil || vecs[2] != nil {
		t.Fatal("failed files must have nil descriptors")
	}
	// Order: red, green, blue at indexes 0, 3, 4; the dominant channel tells.
	for i, want := range map[int]int{0: 0, 3: 1, 4: 2} {
		v := vecs[i]
		best := 0
		for k := 1; k < 3; k++ {
			if v[k] > v[best] {
				best = k
			}
		}
		if best != want {
			t.Errorf("descriptor %d = %v, dominant channel %d, want %d", i, v, best, want)
		}
	}
	// 3 images x 2 scales x 2 flips.
	if run.seen != 12 || st.Described != 3 || st.Cached != 0 || calls != 3 {
		t.Fatalf("seen %d, described %d, cached %d, progress calls %d", run.seen, st.Described, st.Cached, calls)
	}
	again, _, st2, err := d.DescribeFiles(context.Background(), paths, opt)
	if err != nil {
		t.Fatal(err)
	}
	if run.seen != 12 || st2.Cached != 3 {
		t.Fatalf("second pass must come from the cache: seen %d, cached %d", run.seen, st2.Cached)
	}
	for i := range vecs {
		if (vecs[i] == nil) != (again[i] == nil) {
			t.Fatalf("cache changed which files failed at %d", i)
		}
		for k := range vecs[i] {
			if vecs[i][k] != again[i][k] {
				t.Fatalf("cached descriptor differs at %d", i)
			}
		}
	}
	// A new combination of views runs the network only for the new scale.
	d2, err := New(run, Settings{Scales: []int{16, 24, 32}, Flip: true, Pool: PoolGAP})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, st3, err := d2.DescribeFiles(context.Background(), paths, opt); err != nil || run.seen != 18 || st3.Described != 3 {
		t.Fatalf("adding scale 32: err %v, seen %d (want 18), described %d", err, run.seen, st3.Described)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, _, err := d.DescribeFiles(ctx, paths, FileOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: got %v", err)
	}
}

// Several describers at once give what each gives alone, decode every file
// once, and fail a bad file for all of them.
func TestDescribeFilesWithSharesDecode(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, c := range []color.RGBA{{200, 10, 10, 255}, {10, 200, 10, 255}, {10, 10, 200, 255}} {
		p := filepath.Join(dir, string(rune('a'+i))+".png")
		writePNG(t, p, c, 50, 30+i*5)
		paths = append(paths, p)
	}
	broken := filepath.Join(dir, "broken.png")
	if err := os.WriteFile(broken, []byte("\x89PNG truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	paths = append(paths, broken)
	r1, r2 := &fakeRunner{}, &fakeRunner{}
	d1, err := New(r1, Settings{Scales: []int{16}, Pool: PoolGAP})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := New(r2, Settings{Scales: []int{24, 32}, Flip: true, Pool: PoolGAP, Crop: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	both, fails, st, err := DescribeFilesWith(ctx, []*Describer{d1, d2}, paths, FileOptions{Batch: 2, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(fails) != 1 || fails[0].Path != broken || both[0][3] != nil || both[1][3] != nil {
		t.Fatalf("the broken file must fail for both describers: %v", fails)
	}
	if st.Described != 3 {
		t.Fatalf("described %d images, want 3", st.Described)
	}
	for k, d := range []*Describer{d1, d2} {
		alone, _, _, err := d.DescribeFiles(ctx, paths, FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if len(alone[i]) == 0 || len(alone[i]) != len(both[k][i]) {
				t.Fatalf("describer %d, file %d: %d values together, %d alone", k, i, len(both[k][i]), len(alone[i]))
			}
			for j := range alone[i] {
				if alone[i][j] != both[k][i][j] {
					t.Fatalf("describer %d, file %d differs together and alone", k, i)
				}
			}
		}
	}
	if _, _, _, err := DescribeFilesWith(ctx, nil, paths, FileOptions{}); err == nil {
		t.Fatal("no describers accepted")
	}
}

func TestSettingsValidateAndKey(t *testing.T) {
	spec := (&fakeRunner{}).Spec()
	for _, s := range []Settings{
		{Pool: PoolGeM, P: 3},
		{Scales: []int{4}, Pool: PoolGeM, P: 3},
		{Scales: []int{224}, Pool: PoolGeM, P: 0},
		{Scales: []int{224}, Pool: "sum"},
	} {
		if err := s.Validate(spec); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	a := Settings{Scales: []int{320, 224}, Pool: PoolGeM, P: 3}
	b := Settings{Scales: []int{224, 320}, Pool: PoolGeM, P: 3}
	if Key(spec, a) != Key(spec, b) {
		t.Error("scale order must not change the key")
	}
	b.Flip = true
	if Key(spec, a) == Key(spec, b) {
		t.Error("flip must change the key")
	}
}
