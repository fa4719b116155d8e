package index

import (
	"context"
	"flag"
	"fmt"
)

// Backend kinds: the values of the --index flag besides a weaviate:// URL.
// A new backend is added here (Kind, Open, KindHelp) and nowhere else.
const (
	KindFlat = "flat" // exact, in memory
	KindHNSW = "hnsw" // approximate graph, in memory
	// KindAuto is flat for fewer than AutoHNSWMin vectors and hnsw from
	// there, decided by Resolve once the count is known.
	KindAuto = "auto"
	// KindWeaviate is the kind of a weaviate:// or weaviates:// URL.
	KindWeaviate = "weaviate"
)

// AutoHNSWMin is where KindAuto switches from exact to HNSW search. An exact
// scan grows with the catalogue (100k x 1,536-d: search p99 49 ms on two
// idle cores, memory-bound) while HNSW stays under 4 ms; below 20k the scan
// costs a fifth of that or less and a graph is not worth building (100k took
// 4 minutes). Weaviate's dynamic index switches the same way, at 10k. auto is
// not a default: HNSW's recall depends on the data (see README, Serving).
const AutoHNSWMin = 20000

// KindHelp is the help text of the --index flag, shared by every command.
const KindHelp = "where descriptors are searched: flat (exact, in memory), hnsw (approximate, in memory), auto (flat below 20,000 vectors, hnsw from there) or weaviate://host:port[?grpc=host:port&class=C] (remote)"

// Kind validates a backend spec and returns its kind: "" and "flat" are
// KindFlat, "hnsw" is KindHNSW, "auto" is KindAuto, a weaviate:// URL is
// KindWeaviate.
func Kind(spec string) (string, error) {
	switch {
	case spec == "" || spec == KindFlat:
		return KindFlat, nil
	case spec == KindHNSW:
		return KindHNSW, nil
	case spec == KindAuto:
		return KindAuto, nil
	case IsStoreURL(spec):
		return KindWeaviate, nil
	}
	return "", fmt.Errorf("index %q: want flat, hnsw, auto or weaviate://host:port", spec)
}

// Resolve turns auto into the kind for n vectors (flat below AutoHNSWMin,
// else hnsw); any other spec is returned as it is.
func Resolve(spec string, n int) string {
	if spec != KindAuto {
		return spec
	}
	if n < AutoHNSWMin {
		return KindFlat
	}
	return KindHNSW
}

// Open returns an empty index of the backend spec names, for dim-long
// vectors (a Weaviate collection is created if missing, and may already hold
// objects). hnsw tunes a new graph. An empty index has no vectors yet, so
// auto opens flat: a caller that knows how many will come calls Resolve
// first.
func Open(ctx context.Context, spec string, dim int, hnsw HNSWConfig) (Index, error) {
	kind, err := Kind(spec)
	if err != nil {
		return nil, err
	}
	switch kind {
	case KindHNSW:
		return NewHNSW(dim, hnsw)
	case KindWeaviate:
		return OpenURL(ctx, spec, dim)
	}
	return NewFlat(dim), nil
}

// Fill adds ids[i] -> vecs[i] to ix, in one parallel batch where the index
// links batches itself (HNSW), else one by one.
func Fill(ctx context.Context, ix Index, ids []string, vecs [][]float32) error {
	if b, ok := ix.(interface {
		AddBatch(ctx context.Context, ids []string, vecs [][]float32) error
	}); ok {
		return b.AddBatch(ctx, ids, vecs)
	}
	for i, v := range vecs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := ix.Add(ids[i], v); err != nil {
			return err
		}
	}
	return nil
}

// Flag registers the one flag that chooses a backend, --index, on fs, with
// --vectors kept as a deprecated alias that says so on fs.Output() when used.
func Flag(fs *flag.FlagSet, p *string, value string) {
	*p = value
	fs.Func("index", KindHelp+" (default "+value+")", func(s string) error { *p = s; return nil })
	fs.Func("vectors", "deprecated: the old name of --index", func(s string) error {
		fmt.Fprintln(fs.Output(), "prodsearch: --vectors is deprecated, use --index (same values)")
		*p = s
		return nil
	})
}
