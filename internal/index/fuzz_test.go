package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"testing"
)

// FuzzReadHNSW feeds arbitrary bytes as a saved graph. With fixCRC the
// fuzzer's bytes get a valid checksum appended, so mutations reach the
// structural checks behind it. A refused file must be refused with
// ErrCorrupt; an accepted one must write back byte for byte, search without
// panicking and return only live, distinct references, and keep taking
// inserts and removals.
func FuzzReadHNSW(f *testing.F) {
	// Built here as well as in testdata, so a change of format keeps a
	// valid seed.
	h, err := NewHNSW(3, HNSWConfig{M: 2, EfConstruction: 8, EfSearch: 4, Seed: 1})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 9 {
		v := []float32{float32(i%3) - 1, float32(i/3) - 1, 0.5}
		if err := h.Add(fmt.Sprintf("r%d", i), v); err != nil {
			f.Fatal(err)
		}
	}
	h.Remove("r4")
	var buf bytes.Buffer
	if _, err := h.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes(), false)
	f.Add(buf.Bytes()[:buf.Len()-4], true)

	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		in := data
		if fixCRC {
			in = binary.LittleEndian.AppendUint32(bytes.Clone(data), crc32.Checksum(data, castagnoli))
		}
		g, err := ReadHNSW(bytes.NewReader(in), HNSWConfig{Workers: 1})
		if err != nil {
			if g != nil || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v with error %v, want only an ErrCorrupt", g, err)
			}
			return
		}
		if g.Len() > g.Nodes() || g.Dim() <= 0 {
			t.Fatalf("Len %d Nodes %d Dim %d", g.Len(), g.Nodes(), g.Dim())
		}
		var out bytes.Buffer
		if _, err := g.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		// Zero efConstruction or efSearch read as the defaults; anything
		// else must come back exactly as it was.
		efC, efS := binary.LittleEndian.Uint32(in[16:]), binary.LittleEndian.Uint32(in[20:])
		if efC != 0 && efS != 0 && !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("graph wrote back differently:\n%x\n%x", in, out.Bytes())
		}
		g2, err := ReadHNSW(bytes.NewReader(out.Bytes()), HNSWConfig{Workers: 1})
		if err != nil {
			t.Fatalf("rereading the written graph: %v", err)
		}
		if g2.Len() != g.Len() || g2.Nodes() != g.Nodes() {
			t.Fatalf("reread: Len %d Nodes %d, want %d %d", g2.Len(), g2.Nodes(), g.Len(), g.Nodes())
		}

		q := make([]float32, g.Dim())
		for i := range q {
			q[i] = float32(math.Sin(float64(i + 1)))
		}
		check := func(k int, filter func(int) bool) {
			hits, err := g.Search(ctx, q, k, filter)
			if err != nil {
				t.Fatalf("search k=%d: %v", k, err)
			}
			if k > 0 && len(hits) > k || len(hits) > g.Len() {
				t.Fatalf("search k=%d: %d hits of %d live", k, len(hits), g.Len())
			}
			if filter == nil && k >= g.Len() && len(hits) != g.Len() {
				t.Fatalf("search k=%d: %d hits, want all %d live", k, len(hits), g.Len())
			}
			seen := map[string]bool{}
			for _, hit := range hits {
				if pos, ok := g.Position(hit.ID); !ok || pos != hit.Index || seen[hit.ID] {
					t.Fatalf("search k=%d: hit %+v is removed, misplaced or repeated", k, hit)
				}
				if filter != nil && !filter(hit.Index) {
					t.Fatalf("search k=%d: hit %+v fails the filter", k, hit)
				}
				seen[hit.ID] = true
			}
		}
		check(1, nil)
		check(3, nil)
		check(g.Len(), nil)
		check(2, func(i int) bool { return i%2 == 0 })

		n := g.Len()
		id := fmt.Sprintf("fuzz-new-%d", g.Nodes())
		if _, taken := g.Position(id); taken {
			return
		}
		if err := g.Add(id, q); err != nil {
			t.Fatalf("add after load: %v", err)
		}
		if g.Len() != n+1 {
			t.Fatalf("Len %d after add, want %d", g.Len(), n+1)
		}
		check(2, nil)
		if !g.Remove(id) || g.Len() != n {
			t.Fatalf("remove after add: Len %d, want %d", g.Len(), n)
		}
	})
}
