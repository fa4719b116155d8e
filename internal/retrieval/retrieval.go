// Package retrieval runs the hackathon job end to end: describe the queries
// and references of two sets, index the references, rank (optionally with
// re-ranking) and return one ranking per query, ready to write or score.
package retrieval

import (
	"context"
	"errors"
	"fmt"
	"time"

	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/eval"
	"prodsearch/internal/index"
	"prodsearch/internal/rerank"
)

// Describer turns image files into final descriptors (a *bundle.Engine).
type Describer interface {
	DescribeFiles(ctx context.Context, paths []string, opt describe.FileOptions) ([][]float32, []describe.Failure, describe.Stats, error)
	Dim() int
}

// Job says what to rank and how.
type Job struct {
	Queries, References *dataset.Set
	Top                 int            // references per query; 0 = all
	Rerank              *rerank.Params // nil = plain nearest-neighbour ranking
	Files               describe.FileOptions
	Strict              bool // fail on the first unreadable image
	// Progress, when set, returns the progress callback for a named stage.
	Progress func(stage string) func(done, total int)
}

// Result is the ranking and what it cost.
type Result struct {
	Rankings             []eval.Ranking
	Failures             []describe.Failure
	QueryStats, RefStats describe.Stats
	Search               time.Duration
	QueryVecs            [][]float32 // nil where the query failed
	RefVecs              [][]float32 // nil where the reference failed
}

// Run describes both sets and ranks.
func Run(ctx context.Context, d Describer, job Job) (*Result, error) {
	if job.Queries == nil || job.References == nil {
		return nil, errors.New("retrieval: queries and references are required")
	}
	res := &Result{}
	var err error
	res.RefVecs, res.RefStats, err = describeSet(ctx, d, job, job.References, "references", res)
	if err != nil {
		return nil, err
	}
	res.QueryVecs, res.QueryStats, err = describeSet(ctx, d, job, job.Queries, "queries", res)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	res.Rankings, err = Rank(ctx, job.Queries, job.References, res.QueryVecs, res.RefVecs, d.Dim(), job.Top, job.Rerank)
	res.Search = time.Since(t0)
	return res, err
}

func describeSet(ctx context.Context, d Describer, job Job, set *dataset.Set, stage string, res *Result) ([][]float32, describe.Stats, error) {
	opt := job.Files
	if job.Progress != nil {
		opt.Progress = job.Progress("describe " + stage)
	}
	paths := make([]string, len(set.Items))
	for i, it := range set.Items {
		paths[i] = it.Path
	}
	vecs, fails, st, err := d.DescribeFiles(ctx, paths, opt)
	if err != nil {
		return nil, st, err
	}
	if job.Strict && len(fails) > 0 {
		return nil, st, fmt.Errorf("%s: %w (--strict)", stage, fails[0])
	}
	res.Failures = append(res.Failures, fails...)
	return vecs, st, nil
}

// Rank indexes the references that have descriptors and ranks them for every
// query that has one. Queries without a descriptor get no ranking, which
// scoring counts as AP 0.
func Rank(ctx context.Context, qs, rs *dataset.Set, qv, rv [][]float32, dim, top int, p *rerank.Params) ([]eval.Ranking, error) {
	flat := index.NewFlat(dim)
	for i, v := range rv {
		if v == nil {
			continue
		}
		if err := flat.Add(rs.Items[i].ID, v); err != nil {
			return nil, fmt.Errorf("retrieval: reference %s: %w", rs.Items[i].Path, err)
		}
	}
	var qids []string
	var queries [][]float32
	for i, v := range qv {
		if v != nil {
			qids = append(qids, qs.Items[i].ID)
			queries = append(queries, v)
		}
	}
	if flat.Len() == 0 || len(queries) == 0 {
		return nil, errors.New("retrieval: no query or no reference could be described")
	}
	// Results stream in as reference IDs (shared strings), so memory is
	// queries x top IDs, not a full similarity matrix or hit structs.
	out := make([]eval.Ranking, len(queries))
	collect := func(qi int, hs []index.Hit) error {
		refs := make([]string, len(hs))
		for j, h := range hs {
			refs[j] = h.ID
		}
		out[qi] = eval.Ranking{Query: qids[qi], Refs: refs}
		return nil
	}
	var err error
	if p != nil {
		err = rerank.ApplyFunc(ctx, queries, flat, top, *p, collect)
	} else {
		err = flat.SearchBatchFunc(ctx, queries, top, collect)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
