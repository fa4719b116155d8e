package index

import (
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
