package store

import (
	"context"
	"errors"
	"fmt"
	"math"

	"prodsearch/internal/index"
	"prodsearch/internal/rerank"
)

// Rerank methods accepted by SearchOptions.Rerank.
const (
	RerankNone = "none"
	// RerankQE is alpha query expansion (Radenović et al.): the query is
	// replaced by itself plus its top neighbours weighted by score^alpha,
	// then searched again. It helps when several references show the same
	// product from different sides.
	RerankQE = "qe"
)

// Query expansion settings, the usual values from the retrieval literature.
const (
	qeNeighbours = 5
	qeAlpha      = 3
)

// MaxK bounds SearchOptions.K.
const MaxK = 1000

// SearchOptions tune Search.
type SearchOptions struct {
	K      int
	Label  string // only references with this label when set
	Rerank string // "", RerankNone or RerankQE
	// QE and QEAlpha set RerankQE's depth and exponent when QE > 0 (a
	// model's recipe); otherwise the usual 5 and 3 apply.
	QE      int
	QEAlpha float64
}

// Result is one ranked reference.
type Result struct {
	ID    string
	Label string
	Score float32
}

// Search returns the K nearest references to q, best first.
func (s *Store) Search(ctx context.Context, q []float32, opt SearchOptions) ([]Result, error) {
	if opt.K <= 0 || opt.K > MaxK {
		return nil, fmt.Errorf("store: k=%d, want 1..%d: %w", opt.K, MaxK, ErrInvalid)
	}
	if len(q) != s.info.Dim {
		return nil, fmt.Errorf("store: query has %d values, the store holds %d: %w", len(q), s.info.Dim, ErrInvalid)
	}
	switch opt.Rerank {
	case "", RerankNone:
		return s.search(ctx, q, opt.K, opt.Label)
	case RerankQE:
		depth, alpha := qeNeighbours, float64(qeAlpha)
		if opt.QE > 0 {
			depth, alpha = opt.QE, opt.QEAlpha
		}
		if depth > MaxK || alpha < 0 || math.IsNaN(alpha) || math.IsInf(alpha, 0) {
			return nil, fmt.Errorf("store: query expansion depth %d, alpha %v: %w", depth, alpha, ErrInvalid)
		}
		first, err := s.search(ctx, q, depth, opt.Label)
		if err != nil || len(first) == 0 {
			return first, err
		}
		eq, err := s.expand(q, first, alpha)
		if err != nil {
			return nil, err
		}
		return s.search(ctx, eq, opt.K, opt.Label)
	}
	return nil, fmt.Errorf("store: rerank %q, want %q or %q: %w", opt.Rerank, RerankNone, RerankQE, ErrInvalid)
}

func (s *Store) search(ctx context.Context, q []float32, k int, label string) ([]Result, error) {
	if s.remote != nil {
		return s.searchRemote(ctx, q, k, label)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var filter func(int) bool
	if label != "" {
		if s.counts[label] == 0 {
			return []Result{}, nil
		}
		filter = func(i int) bool { return s.labels[s.local.ID(i)] == label }
	}
	hits, err := s.local.Search(ctx, q, k, filter)
	if err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	return s.results(hits, label), nil
}

// searchRemote lets the server filter by label and holds no lock while it
// waits for the answer.
func (s *Store) searchRemote(ctx context.Context, q []float32, k int, label string) ([]Result, error) {
	if label != "" {
		s.mu.RLock()
		n := s.counts[label]
		s.mu.RUnlock()
		if n == 0 {
			return []Result{}, nil
		}
	}
	lhits, err := s.remote.SearchLabel(ctx, q, k, label)
	if err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	hits := make([]index.Hit, len(lhits))
	for i, h := range lhits {
		hits[i] = h.Hit
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.results(hits, label), nil
}

// results labels hits from the catalogue, dropping any the catalogue does
// not hold (or holds under another label): an index that lags bbolt never
// returns a removed item. mu must be read-locked.
func (s *Store) results(hits []index.Hit, label string) []Result {
	out := make([]Result, 0, len(hits))
	for _, h := range hits {
		l, ok := s.labels[h.ID]
		if !ok || label != "" && l != label {
			continue
		}
		out = append(out, Result{ID: h.ID, Label: l, Score: h.Score})
	}
	return out
}

// expand builds the alpha-QE query from the neighbours' stored
// descriptors, read from the catalogue so that it works whatever the vector
// index; one removed since the first search is skipped.
func (s *Store) expand(q []float32, hits []Result, alpha float64) ([]float32, error) {
	nbs := make([][]float32, 0, len(hits))
	sims := make([]float32, 0, len(hits))
	for _, h := range hits {
		v, err := s.Vector(h.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		nbs = append(nbs, v)
		sims = append(sims, h.Score)
	}
	eq, err := rerank.AlphaQE(q, nbs, sims, alpha)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return eq, nil
}
