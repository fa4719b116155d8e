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
	// Index chooses where references are searched: "" or "flat" (exact, in
	// memory), "hnsw" (approximate, in memory) or a weaviate:// URL.
	// Re-ranking needs the exact index.
	Index  string
	Files  describe.FileOptions
	Strict bool // fail on the first unreadable image
	// Progress, when set, returns the progress callback for a named stage.
	Progress func(stage string) func(done, total int)
	// RefDescriber, when set, describes the references instead of Run's
	// describer: the same model with other describe settings for a
	// catalogue's studio images (bundle.Bundle.ForReferences). Its
	// descriptors must have the same length.
	RefDescriber Describer
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
	rd := d
	if job.RefDescriber != nil {
		if job.RefDescriber.Dim() != d.Dim() {
			return nil, fmt.Errorf("retrieval: references described in %d dimensions, queries in %d", job.RefDescriber.Dim(), d.Dim())
		}
		rd = job.RefDescriber
	}
	var err error
	res.RefVecs, res.RefStats, err = describeSet(ctx, rd, job, job.References, "references", res)
	if err != nil {
		return nil, err
	}
	res.QueryVecs, res.QueryStats, err = describeSet(ctx, d, job, job.Queries, "queries", res)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	res.Rankings, err = Rank(ctx, job.Queries, job.References, res.QueryVecs, res.RefVecs, d.Dim(), RankOptions{Top: job.Top, Rerank: job.Rerank, Index: job.Index})
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

// described keeps the items of set that have a descriptor in vs: their IDs
// and descriptors, in order.
func described(set *dataset.Set, vs [][]float32) (ids []string, vecs [][]float32) {
	for i, v := range vs {
		if v != nil {
			ids = append(ids, set.Items[i].ID)
			vecs = append(vecs, v)
		}
	}
	return ids, vecs
}

// RankOptions choose how Rank searches.
type RankOptions struct {
	Top    int            // references per query; 0 = all
	Rerank *rerank.Params // nil = plain search
	Index  string         // see Job.Index
}

// Rank indexes the references that have descriptors and ranks them for every
// query that has one. Queries without a descriptor get no ranking, which
// scoring counts as AP 0.
func Rank(ctx context.Context, qs, rs *dataset.Set, qv, rv [][]float32, dim int, opt RankOptions) ([]eval.Ranking, error) {
	qids, queries := described(qs, qv)
	ids, vecs := described(rs, rv)
	if len(ids) == 0 || len(queries) == 0 {
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
	if kind := index.Resolve(opt.Index, len(ids)); kind != "" && kind != index.KindFlat {
		if opt.Rerank != nil {
			return nil, errors.New("retrieval: re-ranking needs the exact index (use --no-rerank with an approximate one)")
		}
		return out, rankApprox(ctx, kind, dim, ids, vecs, queries, opt.Top, collect)
	}
	flat := index.NewFlat(dim)
	for i, v := range vecs {
		if err := flat.Add(ids[i], v); err != nil {
			return nil, fmt.Errorf("retrieval: reference %s: %w", ids[i], err)
		}
	}
	var err error
	if opt.Rerank != nil {
		err = rerank.ApplyFunc(ctx, queries, flat, opt.Top, *opt.Rerank, collect)
	} else {
		err = flat.SearchBatchFunc(ctx, queries, opt.Top, collect)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// rankApprox fills an HNSW graph or a Weaviate collection and searches it.
// A top of 0 (all references) becomes the whole reference count.
func rankApprox(ctx context.Context, kind string, dim int, ids []string, vecs [][]float32, queries [][]float32, top int, collect func(int, []index.Hit) error) error {
	if top <= 0 {
		top = len(ids)
	}
	ix, err := index.Open(ctx, kind, dim, index.HNSWConfig{EfSearch: max(64, top)})
	if err != nil {
		return fmt.Errorf("retrieval: %w", err)
	}
	defer ix.Close()
	if err := index.Fill(ctx, ix, ids, vecs); err != nil {
		return err
	}
	for qi, q := range queries {
		hs, err := ix.Search(ctx, q, top, nil)
		if err != nil {
			return err
		}
		if err := collect(qi, hs); err != nil {
			return err
		}
	}
	return nil
}
