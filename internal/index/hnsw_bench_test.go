package index

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

func BenchmarkHNSWBuild(b *testing.B) {
	vecs := synthClusters(1, 10000, 512, 8, 0.8)
	ids := make([]string, len(vecs))
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	for b.Loop() {
		h, _ := NewHNSW(512, HNSWConfig{Workers: 1})
		if err := h.AddBatch(context.Background(), ids, vecs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHNSWRead times loading a saved graph (vectors grow slab by slab
// as they are read).
func BenchmarkHNSWRead(b *testing.B) {
	vecs := synthClusters(1, 3*hnswSlabNodes+100, 1280, 8, 0.8)
	ids := make([]string, len(vecs))
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	h, _ := NewHNSW(1280, HNSWConfig{M: 8, EfConstruction: 32})
	if err := h.AddBatch(context.Background(), ids, vecs); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := h.WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if _, err := ReadHNSW(bytes.NewReader(buf.Bytes()), HNSWConfig{}); err != nil {
			b.Fatal(err)
		}
	}
}
