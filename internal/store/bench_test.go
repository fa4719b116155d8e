package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// fillSynthetic adds n random unit-ish vectors in large batches, without
// images, the way a bulk import of precomputed descriptors would.
func fillSynthetic(tb testing.TB, s *Store, n int) {
	tb.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	const batch = 5000
	dim := s.Dim()
	for lo := 0; lo < n; lo += batch {
		es := make([]Entry, min(batch, n-lo))
		for i := range es {
			v := make([]float32, dim)
			for j := range v {
				v[j] = r.Float32() - 0.5
			}
			es[i] = Entry{ID: fmt.Sprintf("syn-%07d", lo+i), Label: "syn-" + strconv.Itoa((lo+i)%500), Vector: v}
		}
		if err := s.Add(context.Background(), es, AddOptions{}); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkOpen measures start-up: opening the file and loading every
// descriptor into the in-memory index. N defaults to 100k 1280-d entries
// (512 MB of vectors); PRODSEARCH_BENCH_N overrides it. The file is in the
// page cache after it is built, so this is the warm start-up time.
func BenchmarkOpen(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("PRODSEARCH_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	const dim = 1280
	dir := b.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir, testBundle, dim)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	fillSynthetic(b, s, n)
	b.Logf("built %d x %d-d in %v (%.0f items/s), file %d MiB", n, dim, time.Since(t0).Round(time.Millisecond),
		float64(n)/time.Since(t0).Seconds(), s.Info().FileBytes>>20)
	s.Close()
	b.ResetTimer()
	for b.Loop() {
		s, err := Open(ctx, dir, "", 0)
		if err != nil {
			b.Fatal(err)
		}
		if s.Len() != n {
			b.Fatalf("loaded %d", s.Len())
		}
		s.Close()
	}
	b.ReportMetric(float64(n), "entries")
}
