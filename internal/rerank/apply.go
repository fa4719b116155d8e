package rerank

import (
	"context"
	"fmt"

	"prodsearch/internal/index"
)

// Params selects the re-ranking steps of Apply. The zero value does nothing
// beyond a plain search.
type Params struct {
	// QE is the number of top references merged into each query by αQE
	// (0: no query expansion).
	QE int `json:"qe,omitempty"`
	// QEAlpha is the αQE similarity exponent (0: average QE; 3 is typical).
	QEAlpha float64 `json:"qe_alpha,omitempty"`
	// DBA is the number of reference neighbours merged into each reference
	// by database-side augmentation (0: no DBA).
	DBA int `json:"dba,omitempty"`
	// DBAAlpha is the DBA similarity exponent.
	DBAAlpha float64 `json:"dba_alpha,omitempty"`
	// DBAQueries makes queries augment the references they retrieve too
	// (see DBAWithQueries); it needs DBA > 0.
	DBAQueries bool `json:"dba_queries,omitempty"`
	// KRecip replaces the final search by k-reciprocal re-ranking with K1,
	// K2 and Lambda (see KReciprocal; the paper uses 20, 6, 0.3).
	KRecip bool    `json:"k_reciprocal,omitempty"`
	K1     int     `json:"k1,omitempty"`
	K2     int     `json:"k2,omitempty"`
	Lambda float64 `json:"lambda,omitempty"`
}

// Validate reports a recipe Apply would refuse, so a stored recipe (a
// bundle's) can be checked when it is loaded rather than at the first query.
func (p Params) Validate() error {
	if p.QE < 0 || p.DBA < 0 {
		return fmt.Errorf("rerank: negative QE (%d) or DBA (%d)", p.QE, p.DBA)
	}
	if err := checkAlpha(p.QEAlpha); err != nil {
		return fmt.Errorf("QEAlpha: %w", err)
	}
	if err := checkAlpha(p.DBAAlpha); err != nil {
		return fmt.Errorf("DBAAlpha: %w", err)
	}
	if p.DBAQueries && p.DBA == 0 {
		return fmt.Errorf("rerank: DBAQueries needs DBA > 0")
	}
	if p.KRecip {
		return checkKRecip(p.K1, p.K2, p.Lambda)
	}
	return nil
}

// Apply runs the re-ranking pipeline and returns the top k references
// (k <= 0: all) for every query; see ApplyFunc. It keeps every result in
// memory (Q·k hits): for large query sets use ApplyFunc.
func Apply(ctx context.Context, queries [][]float32, refs Corpus, k int, p Params) ([][]index.Hit, error) {
	out := make([][]index.Hit, len(queries))
	err := ApplyFunc(ctx, queries, refs, k, p, func(qi int, hits []index.Hit) error {
		out[qi] = hits
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ApplyFunc runs the pipeline: DBA on the references, a search for each
// query's top p.QE references, αQE, and the final search of the expanded
// queries (or k-reciprocal re-ranking), streaming each query's final hits to
// fn like index.Flat.SearchBatchFunc does (concurrently, once per query, in
// no particular order). Hit.Index and Hit.ID refer to refs: DBA keeps
// positions. Memory beyond the inputs: one augmented copy of the references
// if DBA is on, the expanded queries if QE is on, and the searches' bounded
// working memory.
func ApplyFunc(ctx context.Context, queries [][]float32, refs Corpus, k int, p Params, fn func(qi int, hits []index.Hit) error) error {
	if err := p.Validate(); err != nil {
		return err
	}
	base := refs
	if p.DBA > 0 {
		var (
			aug *index.Flat
			err error
		)
		if p.DBAQueries {
			aug, err = DBAWithQueries(ctx, refs, queries, p.DBA, p.DBAAlpha)
		} else {
			aug, err = DBA(ctx, refs, p.DBA, p.DBAAlpha)
		}
		if err != nil {
			return err
		}
		base = aug
	}
	qs := queries
	if p.QE > 0 {
		var err error
		if qs, err = ExpandQueries(ctx, queries, base, p.QE, p.QEAlpha); err != nil {
			return err
		}
	}
	if p.KRecip {
		return kReciprocal(ctx, qs, base, k, p.K1, p.K2, p.Lambda, fn)
	}
	return base.SearchBatchFunc(ctx, qs, k, fn)
}

// ExpandQueries returns the αQE expansion of every query with its top n
// references in refs (see AlphaQE).
func ExpandQueries(ctx context.Context, queries [][]float32, refs Corpus, n int, alpha float64) ([][]float32, error) {
	if n <= 0 {
		return nil, fmt.Errorf("rerank: query expansion needs n > 0, got %d", n)
	}
	if err := checkAlpha(alpha); err != nil {
		return nil, err
	}
	out := make([][]float32, len(queries))
	err := refs.SearchBatchFunc(ctx, queries, n, func(qi int, hits []index.Hit) error {
		nbs := make([][]float32, len(hits))
		sims := make([]float32, len(hits))
		for i, h := range hits {
			nbs[i] = refs.Vector(h.Index)
			sims[i] = h.Score
		}
		q, err := AlphaQE(queries[qi], nbs, sims, alpha)
		out[qi] = q
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rerank: query expansion: %w", err)
	}
	return out, nil
}
