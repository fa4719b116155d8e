// Package tune chooses re-ranking parameters and ensemble weights on
// validation classes held out from the training data. It never sees the test
// split: callers give it descriptors of training-side classes only.
package tune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/eval"
	"prodsearch/internal/index"
	"prodsearch/internal/rerank"
)

// Split mirrors the test protocol on validation classes: per class the first
// QueriesPerClass photos are queries, the rest references.
func Split(items []dataset.Item, queriesPerClass int) (qs, rs []dataset.Item) {
	seen := map[string]int{}
	for _, it := range items {
		if seen[it.Label] < queriesPerClass {
			qs = append(qs, it)
		} else {
			rs = append(rs, it)
		}
		seen[it.Label]++
	}
	return qs, rs
}

// Problem is a labelled validation retrieval task on descriptors.
type Problem struct {
	Queries, Refs    [][]float32
	QueryIDs, RefIDs []string
	QLabels, RLabels map[string]string
}

// NewProblem pairs descriptors with items, dropping items without a
// descriptor (unreadable files).
func NewProblem(qs, rs []dataset.Item, qv, rv [][]float32) (*Problem, error) {
	p := &Problem{QLabels: map[string]string{}, RLabels: map[string]string{}}
	for i, it := range qs {
		if qv[i] != nil {
			p.Queries, p.QueryIDs = append(p.Queries, qv[i]), append(p.QueryIDs, it.ID)
			p.QLabels[it.ID] = it.Label
		}
	}
	for i, it := range rs {
		if rv[i] != nil {
			p.Refs, p.RefIDs = append(p.Refs, rv[i]), append(p.RefIDs, it.ID)
			p.RLabels[it.ID] = it.Label
		}
	}
	if len(p.Queries) == 0 || len(p.Refs) == 0 {
		return nil, errors.New("tune: no validation queries or references")
	}
	return p, nil
}

// Score ranks with the re-ranking recipe (nil = plain search) and scores it.
func (p *Problem) Score(ctx context.Context, rp *rerank.Params) (eval.Scores, error) {
	flat := index.NewFlat(len(p.Refs[0]))
	for i, v := range p.Refs {
		if err := flat.Add(p.RefIDs[i], v); err != nil {
			return eval.Scores{}, err
		}
	}
	var hits [][]index.Hit
	var err error
	if rp == nil {
		hits, err = flat.SearchBatch(ctx, p.Queries, 0)
	} else {
		hits, err = rerank.Apply(ctx, p.Queries, flat, 0, *rp)
	}
	if err != nil {
		return eval.Scores{}, err
	}
	rk := make([]eval.Ranking, len(hits))
	for i, hs := range hits {
		rk[i].Query = p.QueryIDs[i]
		rk[i].Refs = make([]string, len(hs))
		for j, h := range hs {
			rk[i].Refs[j] = h.ID
		}
	}
	return eval.Score(rk, p.QLabels, p.RLabels)
}

// Trial is one tried recipe and its validation score.
type Trial struct {
	Name   string
	Params *rerank.Params
	Scores eval.Scores
}

// RerankGrid is the search space: QE and DBA depths and exponents around
// the published recipes (αQE α=3, DBA k 1..10), their combinations, and
// k-reciprocal re-ranking.
func RerankGrid() []*rerank.Params {
	grid := []*rerank.Params{nil}
	for _, k := range []int{1, 2, 3, 5, 10} {
		for _, a := range []float64{0, 3} {
			grid = append(grid, &rerank.Params{QE: k, QEAlpha: a})
			grid = append(grid, &rerank.Params{DBA: k, DBAAlpha: a})
			grid = append(grid, &rerank.Params{DBA: k, DBAAlpha: a, DBAQueries: true})
		}
	}
	for _, q := range []int{1, 2, 3, 5} {
		for _, d := range []int{1, 2, 3, 5} {
			grid = append(grid, &rerank.Params{QE: q, QEAlpha: 3, DBA: d, DBAAlpha: 3})
			grid = append(grid, &rerank.Params{QE: q, QEAlpha: 3, DBA: d, DBAAlpha: 3, DBAQueries: true})
		}
	}
	for _, k1 := range []int{10, 20} {
		for _, k2 := range []int{3, 6} {
			grid = append(grid, &rerank.Params{KRecip: true, K1: k1, K2: k2, Lambda: 0.3})
		}
	}
	return grid
}

// Name is a short human label of a recipe.
func Name(p *rerank.Params) string {
	if p == nil {
		return "none"
	}
	var s string
	if p.DBA > 0 {
		s += fmt.Sprintf("DBA k=%d α=%g", p.DBA, p.DBAAlpha)
		if p.DBAQueries {
			s += " +queries"
		}
	}
	if p.QE > 0 {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("αQE k=%d α=%g", p.QE, p.QEAlpha)
	}
	if p.KRecip {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("k-reciprocal k1=%d k2=%d λ=%g", p.K1, p.K2, p.Lambda)
	}
	if s == "" {
		return "none"
	}
	return s
}

// Rerank tries every recipe of grid and returns the trials sorted best first
// (mAP, then R@1, then the simpler recipe: earlier in the grid).
func (p *Problem) Rerank(ctx context.Context, grid []*rerank.Params) ([]Trial, error) {
	var out []Trial
	for _, rp := range grid {
		s, err := p.Score(ctx, rp)
		if err != nil {
			return nil, fmt.Errorf("tune %s: %w", Name(rp), err)
		}
		out = append(out, Trial{Name: Name(rp), Params: rp, Scores: s})
	}
	sortTrials(out)
	return out, nil
}

// sortTrials orders best first: mAP, then R@1, then grid order (simpler
// recipes come first in the grid).
func sortTrials(out []Trial) {
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Scores, out[j].Scores
		if a.MAP != b.MAP {
			return a.MAP > b.MAP
		}
		return a.R1 > b.R1
	})
}

// Concat joins member descriptors with weights and renormalises (the
// ensemble descriptor of bundle.Member).
func Concat(parts [][]float32, weights []float64) []float32 {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]float32, 0, n)
	var ss float64
	for i, p := range parts {
		for _, x := range p {
			v := float32(weights[i]) * x
			out = append(out, v)
			ss += float64(v) * float64(v)
		}
	}
	if ss > 0 {
		inv := float32(1 / math.Sqrt(ss))
		for i := range out {
			out[i] *= inv
		}
	}
	return out
}

// weightSteps are the per-member weights Weights tries.
var weightSteps = []float64{0.25, 0.5, 0.75, 1, 1.5, 2}

// Weights chooses ensemble weights by coordinate ascent: member 0 keeps
// weight 1, each other member's weight is set to its best value in turn, two
// rounds. sets holds one or more validation tasks (say, photo queries and
// catalogue-image queries), each as its members' problems; a weighting is
// scored by the mean mAP over the tasks.
func Weights(ctx context.Context, sets ...[]*Problem) ([]float64, []Trial, error) {
	if len(sets) == 0 || len(sets[0]) < 2 {
		return nil, nil, errors.New("tune: an ensemble needs at least two members")
	}
	w := make([]float64, len(sets[0]))
	for i := range w {
		w[i] = 1
	}
	var trials []Trial
	score := func(w []float64) (eval.Scores, error) {
		var all []eval.Scores
		for _, members := range sets {
			p, err := Combine(members, w)
			if err != nil {
				return eval.Scores{}, err
			}
			s, err := p.Score(ctx, nil)
			if err != nil {
				return eval.Scores{}, err
			}
			all = append(all, s)
		}
		s := meanScores(all)
		trials = append(trials, Trial{Name: fmt.Sprintf("weights %v", w), Scores: s})
		return s, nil
	}
	best, err := score(w)
	if err != nil {
		return nil, nil, err
	}
	for round := 0; round < 2; round++ {
		for m := 1; m < len(w); m++ {
			for _, step := range weightSteps {
				if step == w[m] {
					continue
				}
				cand := append([]float64(nil), w...)
				cand[m] = step
				s, err := score(cand)
				if err != nil {
					return nil, nil, err
				}
				if s.MAP > best.MAP {
					best, w = s, cand
				}
			}
		}
	}
	return w, trials, nil
}

// Mean joins the trials of several validation tasks (same grid) by recipe and
// averages their scores, best first, so one recipe can serve both photo and
// catalogue-image queries.
func Mean(tasks ...[]Trial) []Trial {
	byName := map[string][]eval.Scores{}
	params := map[string]Trial{}
	var order []string
	for _, trials := range tasks {
		for _, t := range trials {
			if _, ok := params[t.Name]; !ok {
				order = append(order, t.Name)
				params[t.Name] = t
			}
			byName[t.Name] = append(byName[t.Name], t.Scores)
		}
	}
	var out []Trial
	for _, n := range order {
		if len(byName[n]) != len(tasks) {
			continue
		}
		t := params[n]
		t.Scores = meanScores(byName[n])
		out = append(out, t)
	}
	sortTrials(out)
	return out
}

func meanScores(all []eval.Scores) eval.Scores {
	var m eval.Scores
	for _, s := range all {
		m.MAP += s.MAP / float64(len(all))
		m.MAPAt1000 += s.MAPAt1000 / float64(len(all))
		m.R1 += s.R1 / float64(len(all))
		m.R5 += s.R5 / float64(len(all))
		m.R10 += s.R10 / float64(len(all))
		m.Queries += s.Queries
	}
	return m
}

// RerankTasks scores every re-ranking recipe on each task (sets[task] holds
// one Problem per ensemble member, combined with weights w when there are
// several) and returns the trials by their mean over the tasks, best first.
func RerankTasks(ctx context.Context, sets [][]*Problem, w []float64) ([]Trial, error) {
	var perTask [][]Trial
	for _, set := range sets {
		p := set[0]
		if len(set) > 1 {
			var err error
			if p, err = Combine(set, w); err != nil {
				return nil, err
			}
		}
		tr, err := p.Rerank(ctx, RerankGrid())
		if err != nil {
			return nil, err
		}
		perTask = append(perTask, tr)
	}
	return Mean(perTask...), nil
}

// Combine builds the ensemble problem for weights w; members share items.
func Combine(members []*Problem, w []float64) (*Problem, error) {
	first := members[0]
	for _, m := range members[1:] {
		if len(m.Queries) != len(first.Queries) || len(m.Refs) != len(first.Refs) {
			return nil, errors.New("tune: ensemble members described different images (an image failed in one member)")
		}
	}
	out := &Problem{QueryIDs: first.QueryIDs, RefIDs: first.RefIDs, QLabels: first.QLabels, RLabels: first.RLabels}
	join := func(get func(*Problem) [][]float32, i int) []float32 {
		parts := make([][]float32, len(members))
		for m := range members {
			parts[m] = get(members[m])[i]
		}
		return Concat(parts, w)
	}
	for i := range first.Queries {
		out.Queries = append(out.Queries, join(func(p *Problem) [][]float32 { return p.Queries }, i))
	}
	for i := range first.Refs {
		out.Refs = append(out.Refs, join(func(p *Problem) [][]float32 { return p.Refs }, i))
	}
	return out, nil
}

// Describer turns image files into final descriptors (a *bundle.Engine).
type Describer interface {
	DescribeFiles(ctx context.Context, paths []string, opt describe.FileOptions) ([][]float32, []describe.Failure, describe.Stats, error)
}

// Describe builds the problem of queries qs against references rs with d.
// Unreadable images are left out and reported to warn (may be nil).
func Describe(ctx context.Context, d Describer, qs, rs []dataset.Item, opt describe.FileOptions, warn io.Writer) (*Problem, error) {
	vecs := func(items []dataset.Item) ([][]float32, error) {
		paths := make([]string, len(items))
		for i, it := range items {
			paths[i] = it.Path
		}
		v, fails, _, err := d.DescribeFiles(ctx, paths, opt)
		for _, f := range fails {
			if warn != nil {
				fmt.Fprintln(warn, "unreadable, left out:", f)
			}
		}
		return v, err
	}
	qv, err := vecs(qs)
	if err != nil {
		return nil, err
	}
	rv, err := vecs(rs)
	if err != nil {
		return nil, err
	}
	return NewProblem(qs, rs, qv, rv)
}
