package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"prodsearch/internal/describe"
	"prodsearch/internal/vec"
)

// TrunkSource serves the frozen trunk's output for image i, view v: a C×h×w
// feature map (channel-major, as ONNX Runtime returns it), computed once
// and cached so that epochs cost only the tail.
type TrunkSource interface {
	Views(i int) int
	Trunk(i, v int) (fmap []float32, h, w int, err error)
}

// GeM exponent bounds while it is learned: p = 1 is average pooling, and
// beyond 8 GeM is max pooling in all but name.
const (
	minGeMP = 1
	maxGeMP = 8
)

// FineTuneEpoch is the state after one fine-tuning epoch. The tail's
// weights are the Tail's own (the callback runs between steps); Heads is a
// deep copy.
type FineTuneEpoch struct {
	Epoch
	GeMP float64
}

// tailBatch lays out images of the source as one channel-major batch,
// mirroring the feature maps of the images whose flip is set (nil: none).
func tailBatch(src TrunkSource, c int, img, view []int, flip []bool) ([]float32, planes, error) {
	maps := make([][]float32, len(img))
	h, w := make([]int, len(img)), make([]int, len(img))
	for r := range img {
		fm, hh, ww, err := src.Trunk(img[r], view[r])
		if err != nil {
			return nil, planes{}, err
		}
		if len(fm) != c*hh*ww {
			return nil, planes{}, fmt.Errorf("%w: trunk output of image %d view %d has %d values, want %d×%d×%d", ErrDimMismatch, img[r], view[r], len(fm), c, hh, ww)
		}
		maps[r], h[r], w[r] = fm, hh, ww
	}
	pl := newPlanes(h, w)
	x := make([]float32, c*pl.p)
	for r, fm := range maps {
		hw := h[r] * w[r]
		for ch := 0; ch < c; ch++ {
			dst := x[ch*pl.p+pl.off[r]:]
			copy(dst, fm[ch*hw:(ch+1)*hw])
			if flip != nil && flip[r] {
				for y := 0; y < h[r]; y++ {
					slices.Reverse(dst[y*w[r] : (y+1)*w[r]])
				}
			}
		}
	}
	return x, pl, nil
}

// DescribeTrunk runs the tail and GeM pooling (exponent p) on view v of the
// given images and returns L2-normalised descriptors, the input of the
// heads: what describe computes at run time from the fine-tuned model.
func DescribeTrunk(ctx context.Context, t *Tail, src TrunkSource, imgs []int, v int, p float64) ([][]float32, error) {
	const batch = 32
	out := make([][]float32, 0, len(imgs))
	view := make([]int, batch)
	for i := range view {
		view[i] = v
	}
	for lo := 0; lo < len(imgs); lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ids := imgs[lo:min(lo+batch, len(imgs))]
		x, pl, err := tailBatch(src, t.InC, ids, view[:len(ids)], nil)
		if err != nil {
			return nil, err
		}
		r := t.forward(x, pl)
		f, m := make([]float32, len(ids)*t.Out), make([]float32, len(ids)*t.Out)
		gemPool(f, m, r.val[t.out], t.Out, r.pl[t.out], p)
		for i := range ids {
			d := f[i*t.Out : (i+1)*t.Out : (i+1)*t.Out]
			vec.Normalize(d)
			out = append(out, d)
		}
	}
	return out, nil
}

// FineTune trains the tail's weights, the GeM exponent (from p0) and the
// configured whitening and head together, on trunk outputs of images with
// the given labels. The whitening is fitted once on the untrained tail's
// descriptors (view 0) and then kept fixed; the head starts, as in FitHead,
// from the identity on the whitened space with proxies at the class means.
// Every step draws P×K images (one random view each, its trunk feature map
// mirrored half of the time: a free stand-in for a mirrored view, whose trunk
// output would have to be cached too), runs tail -> GeM ->
// L2 -> whitening -> head -> loss and back, and updates the head at cfg.LR,
// the tail at cfg.TailLR and p at cfg.GeMLR under the same schedule.
//
// onEpoch sees the state after every epoch (return ErrStop to end early);
// FineTune returns the last epoch's heads and p.
func FineTune(ctx context.Context, cfg Config, t *Tail, p0 float64, src TrunkSource, labels []string, onEpoch func(FineTuneEpoch) error) (describe.Heads, float64, error) {
	if err := cfg.Validate(); err != nil {
		return nil, 0, err
	}
	if cfg.Loss == LossNone || cfg.Epochs == 0 {
		return nil, 0, fmt.Errorf("%w: fine-tuning needs a loss and epochs", ErrBadConfig)
	}
	if !(p0 >= minGeMP && p0 <= maxGeMP) {
		return nil, 0, fmt.Errorf("%w: GeM p %v outside [%d, %d]", ErrBadConfig, p0, minGeMP, maxGeMP)
	}
	ids, names, members, err := classIndex(labels, len(labels), 2)
	if err != nil {
		return nil, 0, err
	}
	if len(names) < 2 {
		return nil, 0, fmt.Errorf("%w (got %d)", ErrFewClasses, len(names))
	}
	all := make([]int, len(labels))
	views := make([]int, len(labels))
	for i := range all {
		all[i] = i
		views[i] = src.Views(i)
		if views[i] < 1 {
			return nil, 0, fmt.Errorf("%w: image %d has no views", ErrNoData, i)
		}
	}
	base, err := DescribeTrunk(ctx, t, src, all, 0, p0)
	if err != nil {
		return nil, 0, err
	}
	prefix, err := FitWhitening(cfg, base, labels)
	if err != nil {
		return nil, 0, err
	}
	if len(prefix) > 1 || (len(prefix) == 1 && prefix[0].Hidden > 0) {
		return nil, 0, fmt.Errorf("%w: fine-tuning supports one linear whitening stage", ErrBadConfig)
	}
	c := t.Out
	in := c
	flat := base
	if len(prefix) > 0 {
		in = prefix.OutDim()
		flat = prefix.ApplyBatch(base)
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x66696e6574756e65))
	n := newHeadNet(cfg, rng, in, len(names), len(prefix) > 0, flat, all, ids)
	maxB := n.maxB
	n.gx = make([]float32, maxB*in)

	pv := []float32{float32(p0)}
	gp := []float32{0}
	ps := n.params(cfg.ProxyLRMult)
	tailMult := cfg.TailLR / cfg.LR
	for _, tp := range t.Params() {
		ps = append(ps, param{w: tp.W, g: tp.G, lrMult: tailMult})
	}
	ps = append(ps, param{w: pv, g: gp, lrMult: cfg.GeMLR / cfg.LR})
	opt := newOptimizer(cfg.Optimizer, cfg.Momentum, cfg.WeightDecay, ps)
	sampler := newPKSampler(rng, members, views, cfg.BatchP, cfg.BatchK)
	ws := newFTWork(prefix, c, in, maxB)
	flip := make([]bool, maxB)
	var epoch func(Epoch) error
	if onEpoch != nil {
		epoch = func(e Epoch) error { return onEpoch(FineTuneEpoch{Epoch: e, GeMP: float64(pv[0])}) }
	}
	last, err := runEpochs(ctx, cfg, n, prefix, sampler, opt, len(labels), func(img, view, cls []int) (float64, error) {
		for r := range img {
			flip[r] = rng.IntN(2) == 1
		}
		x, pl, err := tailBatch(src, t.InC, img, view, flip[:len(img)])
		if err != nil {
			return 0, err
		}
		loss, g := ws.step(t, n, prefix, x, pl, float64(pv[0]), cls)
		gp[0] = float32(g)
		return loss, nil
	}, func() { pv[0] = min(max(pv[0], minGeMP), maxGeMP) }, epoch)
	return last, float64(pv[0]), err
}

// ftWork holds one fine-tuning step's buffers between the tail and the head.
type ftWork struct {
	f, m, xn, n1, gxn, gf []float32 // pooled, GeM means, normalised, norms, grads
	u, n2, gu             []float32 // whitened and normalised, norms, grad
	mw                    []float32 // whitening W·mean, or nil
}

func newFTWork(prefix describe.Heads, c, in, maxB int) *ftWork {
	ws := &ftWork{
		f: make([]float32, maxB*c), m: make([]float32, maxB*c), xn: make([]float32, maxB*c),
		n1: make([]float32, maxB), gxn: make([]float32, maxB*c), gf: make([]float32, maxB*c),
	}
	if len(prefix) > 0 {
		ws.u, ws.n2, ws.gu = make([]float32, maxB*in), make([]float32, maxB), make([]float32, maxB*in)
		if h := &prefix[0]; len(h.Mean) > 0 {
			ws.mw = make([]float32, in)
			blas32.Implementation().Sgemv(blas.NoTrans, in, c, 1, h.W, c, h.Mean, 1, 0, ws.mw, 1)
		}
	}
	return ws
}

// step runs forward and backward for one batch, leaving gradients in the
// head, the tail (zeroed first) and returning the loss and dL/dp.
func (ws *ftWork) step(t *Tail, n *net, prefix describe.Heads, x []float32, pl planes, p float64, cls []int) (float64, float64) {
	b, c := len(cls), t.Out
	r := t.forward(x, pl)
	out, opl := r.val[t.out], r.pl[t.out]
	f, m := ws.f[:b*c], ws.m[:b*c]
	gemPool(f, m, out, c, opl, p)
	xn := ws.xn[:b*c]
	copy(xn, f)
	normalizeRows(xn, b, c, ws.n1)
	impl := blas32.Implementation()
	if len(prefix) > 0 {
		h := &prefix[0]
		u := ws.u[:b*n.in]
		// u = (xn - mean) W^T, with the mean folded into a row offset.
		impl.Sgemm(blas.NoTrans, blas.Trans, b, n.in, c, 1, xn, c, h.W, c, 0, u, n.in)
		if ws.mw != nil {
			for i := 0; i < b; i++ {
				row := u[i*n.in : (i+1)*n.in]
				for j := range row {
					row[j] -= ws.mw[j]
				}
			}
		}
		normalizeRows(u, b, n.in, ws.n2)
		copy(n.x[:b*n.in], u)
	} else {
		copy(n.x[:b*c], xn)
	}
	loss := n.lossGrad(b, cls)
	gxn := ws.gxn[:b*c]
	if len(prefix) > 0 {
		gu := ws.gu[:b*n.in]
		normalizeBackward(ws.u[:b*n.in], ws.n2, n.gx[:b*n.in], gu, b, n.in)
		impl.Sgemm(blas.NoTrans, blas.NoTrans, b, c, n.in, 1, gu, n.in, prefix[0].W, c, 0, gxn, c)
	} else {
		copy(gxn, n.gx[:b*c])
	}
	gf := ws.gf[:b*c]
	normalizeBackward(xn, ws.n1, gxn, gf, b, c)
	gout := make([]float32, len(out))
	gp := gemBackward(gout, out, f, m, gf, c, opl, p)
	t.ZeroGrad()
	t.backward(r, gout)
	return loss, gp
}
