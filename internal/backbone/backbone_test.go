package backbone_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"prodsearch/internal/backbone"
	"prodsearch/internal/testenv"
)

func TestBuiltinSpecsValid(t *testing.T) {
	specs, err := backbone.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 3 {
		t.Fatalf("want the 3 shipped specs, got %d", len(specs))
	}
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
}

func TestParseSpecRejects(t *testing.T) {
	good := `{"name":"x","file":"x.onnx","sha256":"` + strings.Repeat("a", 64) + `","input":"in","layout":"NCHW","color":"RGB","scale":1,"mean":[0,0,0],"std":[1,1,1],"output":"o","output_kind":"vector","channels":8,"default_size":224}`
	if _, err := backbone.ParseSpec([]byte(good)); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown field": strings.Replace(good, `"name"`, `"nmae":"y","name"`, 1),
		"bad kind":      strings.Replace(good, `"vector"`, `"blob"`, 1),
		"bad layout":    strings.Replace(good, `"NCHW"`, `"CHW"`, 1),
		"zero std":      strings.Replace(good, `"std":[1,1,1]`, `"std":[0,1,1]`, 1),
		"short sha":     strings.Replace(good, strings.Repeat("a", 64), "abc", 1),
		"not json":      `{"name":`,
		"trailing data": good + ` {"name":"y"}`,
	} {
		_, err := backbone.ParseSpec([]byte(bad))
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.HasPrefix(err.Error(), "spec") {
			t.Errorf("%s: error %q does not say it is about the spec", name, err)
		}
	}
}

func TestModelPathErrors(t *testing.T) {
	s, err := backbone.LookupSpec("mnv2_int8")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := s.ModelPath(dir); err == nil || !strings.Contains(err.Error(), s.File) {
		t.Fatalf("missing file error must name %s, got %v", s.File, err)
	}
	if err := os.WriteFile(filepath.Join(dir, s.File), []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ModelPath(dir); err == nil || !strings.Contains(err.Error(), "expected "+s.SHA256) {
		t.Fatalf("checksum error must give the expected sha256, got %v", err)
	}
	if _, err := backbone.LookupSpec("nope"); err == nil || !strings.Contains(err.Error(), "coral_mnv1") {
		t.Fatalf("unknown name should list builtins, got %v", err)
	}
}

// TestRunAllBuiltins runs every shipped model at two sizes and checks the
// output shape (ceil(H/32)) and that GAP of the feature map is finite and
// non-trivial.
func TestRunAllBuiltins(t *testing.T) {
	specs, dir, lib := testenv.Builtins(t)
	for _, spec := range specs {
		sess, err := backbone.Open(spec, dir, backbone.Options{Library: lib, Threads: 2})
		if err != nil {
			t.Fatalf("%s: %v", spec.Name, err)
		}
		for _, hw := range [][2]int{{224, 224}, {231, 301}} {
			h, w := hw[0], hw[1]
			in := make([]float32, 2*3*h*w)
			for i := range in {
				in[i] = float32(math.Sin(float64(i)*0.001)) * 0.5
			}
			fm, err := sess.Run(context.Background(), in, 2, h, w)
			if err != nil {
				t.Fatalf("%s %dx%d: %v", spec.Name, h, w, err)
			}
			wantH, wantW := (h+31)/32, (w+31)/32
			if fm.N != 2 || fm.C != spec.Channels || fm.H != wantH || fm.W != wantW {
				t.Fatalf("%s: shape %dx%dx%dx%d, want 2x%dx%dx%d", spec.Name, fm.N, fm.C, fm.H, fm.W, spec.Channels, wantH, wantW)
			}
			var sum float64
			for _, v := range fm.At(1) {
				if math.IsNaN(float64(v)) {
					t.Fatalf("%s: NaN in output", spec.Name)
				}
				sum += float64(v)
			}
			if sum == 0 {
				t.Fatalf("%s: all-zero feature map", spec.Name)
			}
		}
		if _, err := sess.Run(context.Background(), make([]float32, 10), 1, 224, 224); err == nil {
			t.Fatalf("%s: wrong input size accepted", spec.Name)
		}
		if err := sess.Destroy(); err != nil {
			t.Fatal(err)
		}
		if err := sess.Destroy(); err != nil {
			t.Fatal("second Destroy must be harmless:", err)
		}
	}
}
