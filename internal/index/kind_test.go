package index

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
)

func TestKindAndOpen(t *testing.T) {
	for spec, want := range map[string]string{"": KindFlat, "flat": KindFlat, "hnsw": KindHNSW, "auto": KindAuto, "weaviate://h:1?class=C": KindWeaviate} {
		if got, err := Kind(spec); err != nil || got != want {
			t.Errorf("Kind(%q) = %q, %v; want %q", spec, got, err, want)
		}
	}
	if _, err := Kind("annoy"); err == nil || !strings.Contains(err.Error(), "annoy") {
		t.Errorf("Kind(annoy): %v", err)
	}
	ctx := context.Background()
	for _, spec := range []string{"flat", "hnsw"} {
		ix, err := Open(ctx, spec, 4, HNSWConfig{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := Fill(ctx, ix, []string{"a", "b"}, [][]float32{{1, 0, 0, 0}, {0, 1, 0, 0}}); err != nil {
			t.Fatal(err)
		}
		hs, err := ix.Search(ctx, []float32{0, 1, 0, 0}, 1, nil)
		if err != nil || len(hs) != 1 || hs[0].ID != "b" || ix.Len() != 2 {
			t.Errorf("%s: %v %v len %d", spec, hs, err, ix.Len())
		}
		ix.Close()
	}
	if _, err := Open(ctx, "annoy", 4, HNSWConfig{}); err == nil {
		t.Error("Open(annoy) succeeded")
	}
}

func TestResolveAuto(t *testing.T) {
	for _, c := range []struct {
		spec string
		n    int
		want string
	}{
		{KindAuto, 0, KindFlat},
		{KindAuto, AutoHNSWMin - 1, KindFlat},
		{KindAuto, AutoHNSWMin, KindHNSW},
		{KindFlat, 10 * AutoHNSWMin, KindFlat},
		{KindHNSW, 1, KindHNSW},
		{"weaviate://h:1", 1, "weaviate://h:1"},
	} {
		if got := Resolve(c.spec, c.n); got != c.want {
			t.Errorf("Resolve(%q, %d) = %q, want %q", c.spec, c.n, got, c.want)
		}
	}
	ix, err := Open(context.Background(), KindAuto, 4, HNSWConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.(*Flat); !ok {
		t.Errorf("Open(auto) = %T, want an empty *Flat", ix)
	}
}

func TestFlagAlias(t *testing.T) {
	var out bytes.Buffer
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(&out)
	var kind string
	Flag(fs, &kind, KindFlat)
	if kind != KindFlat {
		t.Fatalf("default %q", kind)
	}
	if err := fs.Parse([]string{"--index", "hnsw"}); err != nil || kind != KindHNSW || out.Len() != 0 {
		t.Fatalf("--index: %q %v %q", kind, err, out.String())
	}
	if err := fs.Parse([]string{"--vectors", "flat"}); err != nil || kind != KindFlat || !strings.Contains(out.String(), "deprecated") {
		t.Fatalf("--vectors: %q %v %q", kind, err, out.String())
	}
}
