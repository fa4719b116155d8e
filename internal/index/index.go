package index

import "context"

// Index is what the CLI and server need from a reference index, whichever
// store backs it: Flat (exact, in memory), HNSW (approximate, in memory,
// saved next to the store) or Weaviate (remote, distributed).
type Index interface {
	// Add stores vec under id; an ID already present is refused.
	Add(id string, vec []float32) error
	// Remove deletes id and reports whether it was present.
	Remove(id string) bool
	// Search returns up to k references most similar to q, best first.
	// filter, if not nil, keeps only positions i (Hit.Index) it accepts;
	// stores without positions (Weaviate) reject a non-nil filter.
	Search(ctx context.Context, q []float32, k int, filter func(i int) bool) ([]Hit, error)
	// Len returns the number of references.
	Len() int
	// Dim returns the descriptor length.
	Dim() int
	// Close releases what the index holds (connections, files).
	Close() error
}
