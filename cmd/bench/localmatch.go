package main

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"slices"
	"strings"

	"prodsearch/internal/backbone"
	"prodsearch/internal/bundle"
	"prodsearch/internal/describe"
	"prodsearch/internal/eval"
	"prodsearch/internal/imageio"
	"prodsearch/internal/vec"

	"github.com/viterin/vek/vek32"
)

// Method (e) of issue 12, item 3: local-feature matching with geometric
// verification. Each cell of the backbone's last feature map, described at a
// finer scale than the global descriptor, is a local descriptor at a grid
// position. A photo and a catalogue image are matched cell to cell (mutual
// nearest neighbours above a similarity floor), a similarity transform
// (scale, rotation, shift) is fitted to the matches by RANSAC, and its
// inliers, printed text and logos in the same layout, re-rank the global
// search's top candidates: score = global similarity + weight x inliers.

// localOpts are the (e) settings, from flags.
type localOpts struct {
	scale  int     // short side the images are described at for local features
	keep   int     // cells kept per image, the strongest activations
	floor  float32 // least cosine for a match
	tol    float64 // inlier tolerance, in cells
	top    int     // global candidates re-ranked
	tries  int     // RANSAC samples when exhaustive pairs would be more
	weight []float64
}

// localFeat is one image's local descriptors: n rows of c floats, L2
// normalised, with their grid positions.
type localFeat struct {
	pos  []complex128
	desc []float32
	c    int
}

// localExtractor describes images into local features with one backbone.
type localExtractor struct {
	sess  *backbone.Session
	photo *describe.Describer
	cat   *describe.Describer
	opt   localOpts
}

// newLocalExtractor opens the first member's backbone of b (the bundle's own
// for a single one) with photos cropped as b crops them and catalogue
// images as the view cat says, both at opt.scale.
func newLocalExtractor(b bundle.Bundle, cat catView, opt localOpts) (*localExtractor, error) {
	if b.IsEnsemble() {
		b = b.Members[0].Bundle
	}
	dir, err := backbone.FindModelDir("")
	if err != nil {
		return nil, err
	}
	sess, err := backbone.Open(b.Backbone, dir, backbone.Options{})
	if err != nil {
		return nil, err
	}
	set := b.Describe
	set.Scales, set.Flip = []int{opt.scale}, false
	photo, err := describe.New(sess, set)
	if err != nil {
		sess.Destroy()
		return nil, err
	}
	if !cat.own {
		set.Crop = cat.crop
	}
	catDesc, err := describe.New(sess, set)
	if err != nil {
		sess.Destroy()
		return nil, err
	}
	return &localExtractor{sess: sess, photo: photo, cat: catDesc, opt: opt}, nil
}

func (e *localExtractor) Close() { e.sess.Destroy() }

// extract reads one image and returns its strongest cells.
func (e *localExtractor) extract(ctx context.Context, d *describe.Describer, path string) (localFeat, error) {
	data, err := imageio.ReadBytes(path, 0)
	if err != nil {
		return localFeat{}, err
	}
	img, err := imageio.DecodeAtLeast(data, imageio.DefaultLimits(), d.MinDecodeShort())
	if err != nil {
		return localFeat{}, err
	}
	in, h, w, err := d.ViewTensor(img, describe.View{Scale: e.opt.scale})
	if err != nil {
		return localFeat{}, err
	}
	fm, err := e.sess.Run(ctx, in, 1, h, w)
	if err != nil {
		return localFeat{}, err
	}
	hw := fm.H * fm.W
	type cell struct {
		i    int
		norm float32
	}
	cells := make([]cell, hw)
	col := make([]float32, fm.C)
	descs := make([][]float32, hw)
	for i := range hw {
		for ch := range fm.C {
			col[ch] = fm.Data[ch*hw+i]
		}
		descs[i] = slices.Clone(col)
		cells[i] = cell{i, vek32.Norm(col)}
	}
	slices.SortFunc(cells, func(a, b cell) int { return cmp.Or(cmp.Compare(b.norm, a.norm), cmp.Compare(a.i, b.i)) })
	f := localFeat{c: fm.C}
	for _, c := range cells[:min(e.opt.keep, len(cells))] {
		if c.norm == 0 {
			break
		}
		v := descs[c.i]
		vec.Normalize(v)
		f.desc = append(f.desc, v...)
		f.pos = append(f.pos, complex(float64(c.i%fm.W)+0.5, float64(c.i/fm.W)+0.5))
	}
	return f, nil
}

// inliers is the largest number of mutual-nearest-neighbour matches between
// q and c that one similarity transform from c's grid to q's maps within
// tol cells of each other.
func inliers(q, c localFeat, opt localOpts, rng *rand.Rand) int {
	nq, nc := len(q.pos), len(c.pos)
	if nq == 0 || nc == 0 {
		return 0
	}
	bestC := make([]int, nq)
	bestCS := make([]float32, nq)
	bestQ := make([]int, nc)
	bestQS := make([]float32, nc)
	for j := range bestQS {
		bestQS[j] = -2
	}
	for i := range nq {
		bestCS[i] = -2
		qi := q.desc[i*q.c : (i+1)*q.c]
		for j := range nc {
			s := vek32.Dot(qi, c.desc[j*c.c:(j+1)*c.c])
			if s > bestCS[i] {
				bestC[i], bestCS[i] = j, s
			}
			if s > bestQS[j] {
				bestQ[j], bestQS[j] = i, s
			}
		}
	}
	var mq, mc []complex128
	for i := range nq {
		if j := bestC[i]; bestQ[j] == i && bestCS[i] >= opt.floor {
			mq, mc = append(mq, q.pos[i]), append(mc, c.pos[j])
		}
	}
	m := len(mq)
	if m < 2 {
		return m
	}
	best := 1
	try := func(a, b int) {
		d := mc[b] - mc[a]
		if d == 0 {
			return
		}
		s := (mq[b] - mq[a]) / d
		if r := cmplx.Abs(s); r < 0.25 || r > 4 {
			return
		}
		t := mq[a] - s*mc[a]
		n := 0
		for k := range m {
			if cmplx.Abs(s*mc[k]+t-mq[k]) <= opt.tol {
				n++
			}
		}
		best = max(best, n)
	}
	if m*(m-1)/2 <= opt.tries {
		for a := range m {
			for b := a + 1; b < m; b++ {
				try(a, b)
			}
		}
		return best
	}
	for range opt.tries {
		a, b := rng.IntN(m), rng.IntN(m)
		if a != b {
			try(a, b)
		}
	}
	return best
}

// localRows measures (e) on task t on top of the global search of method
// base: every photo's top opt.top catalogue images by global similarity are
// re-scored with their inliers at each weight, and one row per weight is
// returned (weight 0 is the base itself).
func (d *viewDescriber) localRows(ctx context.Context, t catTask, base catMethod, opt localOpts) ([]catMethod, []eval.Scores, error) {
	qv, err := d.vectors(ctx, t.photos, base.photo)
	if err != nil {
		return nil, nil, err
	}
	cv, err := d.vectors(ctx, t.cat, base.cat)
	if err != nil {
		return nil, nil, err
	}
	ex, err := newLocalExtractor(d.base, base.cat.views[0], opt)
	if err != nil {
		return nil, nil, err
	}
	defer ex.Close()
	cats := make([]localFeat, len(t.cat))
	for j, it := range t.cat {
		if cats[j], err = ex.extract(ctx, ex.cat, it.Path); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", it.Path, err)
		}
	}
	type cand struct {
		j      int
		global float32
		in     int
	}
	cands := make([][]cand, len(t.photos))
	for i, it := range t.photos {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if qv[i] == nil {
			continue
		}
		var cs []cand
		for j := range t.cat {
			if cv[j] != nil {
				// base has one view a side (oneImageSearch).
				cs = append(cs, cand{j: j, global: vek32.Dot(qv[i][0], cv[j][0])})
			}
		}
		slices.SortFunc(cs, func(a, b cand) int {
			return cmp.Or(cmp.Compare(b.global, a.global), strings.Compare(t.cat[a.j].ID, t.cat[b.j].ID))
		})
		q, err := ex.extract(ctx, ex.photo, it.Path)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", it.Path, err)
		}
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		for k := range min(opt.top, len(cs)) {
			cs[k].in = inliers(q, cats[cs[k].j], opt, rng)
		}
		cands[i] = cs
	}
	qLabels, rLabels := map[string]string{}, map[string]string{}
	for _, it := range t.cat {
		rLabels[it.ID] = it.Label
	}
	for _, it := range t.photos {
		qLabels[it.ID] = it.Label
	}
	var methods []catMethod
	var scores []eval.Scores
	for _, w := range opt.weight {
		var rankings []eval.Ranking
		for i, cs := range cands {
			if cs == nil {
				continue
			}
			rs := slices.Clone(cs)
			slices.SortStableFunc(rs, func(a, b cand) int {
				if math.IsInf(w, 1) {
					return cmp.Compare(b.in, a.in)
				}
				return cmp.Compare(float64(b.global)+w*float64(b.in), float64(a.global)+w*float64(a.in))
			})
			rk := eval.Ranking{Query: t.photos[i].ID}
			for _, c := range rs {
				rk.Refs = append(rk.Refs, t.cat[c.j].ID)
			}
			rankings = append(rankings, rk)
		}
		s, err := eval.Score(rankings, qLabels, rLabels)
		if err != nil {
			return nil, nil, err
		}
		name := fmt.Sprintf("%s; local matches @%d, top %d, w=%g", base.name, opt.scale, opt.top, w)
		if math.IsInf(w, 1) {
			name = fmt.Sprintf("%s; top %d by local inliers @%d", base.name, opt.top, opt.scale)
		}
		methods = append(methods, catMethod{group: "e", name: name, photo: base.photo, cat: base.cat})
		scores = append(scores, s)
	}
	return methods, scores, nil
}
