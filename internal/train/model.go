package train

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"prodsearch/internal/describe"
)

// net is the trainable head plus (for proxy losses) the class proxies,
// with gradient buffers and batch workspaces. Rows of every matrix are
// examples; all products are float32 Sgemm calls on whole batches.
type net struct {
	in, hidden, out int
	loss            lossSpec
	classes         int

	w1, b1, w []float32 // hidden x in, hidden, out x (hidden|in)
	q         []float32 // classes x out, unnormalised proxies

	gw1, gb1, gw, gq []float32
	// gx, when set (maxB x in), receives dL/dx so that training can reach
	// layers before the head (a fine-tuned backbone tail).
	gx []float32

	// workspaces, sized for the largest batch
	maxB                 int
	x, a, h, z, e, norms []float32
	s, gs, ge, gz, gh    []float32
	pn, pnorms, gpn      []float32
}

func newNet(in, hidden, out, classes, maxB int, loss lossSpec) *net {
	n := &net{in: in, hidden: hidden, out: out, classes: classes, loss: loss, maxB: maxB}
	inW := in
	if hidden > 0 {
		n.w1 = make([]float32, hidden*in)
		n.b1 = make([]float32, hidden)
		n.gw1 = make([]float32, hidden*in)
		n.gb1 = make([]float32, hidden)
		n.a = make([]float32, maxB*hidden)
		n.h = make([]float32, maxB*hidden)
		n.gh = make([]float32, maxB*hidden)
		inW = hidden
	}
	n.w = make([]float32, out*inW)
	n.gw = make([]float32, out*inW)
	n.x = make([]float32, maxB*in)
	n.z = make([]float32, maxB*out)
	n.e = make([]float32, maxB*out)
	n.norms = make([]float32, maxB)
	n.ge = make([]float32, maxB*out)
	n.gz = make([]float32, maxB*out)
	cols := maxB
	if loss.usesProxies() {
		cols = classes
		n.q = make([]float32, classes*out)
		n.gq = make([]float32, classes*out)
		n.pn = make([]float32, classes*out)
		n.pnorms = make([]float32, classes)
		n.gpn = make([]float32, classes*out)
	}
	n.s = make([]float32, maxB*cols)
	n.gs = make([]float32, maxB*cols)
	return n
}

// initWeights sets the starting point. With identity true (inputs are
// whitened, hence ordered by decreasing variance) a linear head starts as the
// projection on the first out components, i.e. exactly the whitening
// baseline, plus a little noise; on 41 training classes starting from a good
// retrieval space and moving away only as far as the loss asks is much safer
// than a random projection. Otherwise weights are Gaussian with variance
// 1/fan-in (He initialisation, 2/fan-in, for the ReLU layer).
func (n *net) initWeights(rng *rand.Rand, identity bool) {
	if n.hidden > 0 {
		sd := math.Sqrt(2 / float64(n.in))
		for i := range n.w1 {
			n.w1[i] = float32(rng.NormFloat64() * sd)
		}
		sd = math.Sqrt(1 / float64(n.hidden))
		for i := range n.w {
			n.w[i] = float32(rng.NormFloat64() * sd)
		}
		return
	}
	sd := math.Sqrt(1 / float64(n.in))
	for k := 0; k < n.out; k++ {
		rowSD := sd
		if identity && k < n.in {
			rowSD = sd * 0.01 // identity row plus a little symmetry-breaking noise
		}
		row := n.w[k*n.in : (k+1)*n.in]
		for j := range row {
			row[j] = float32(rng.NormFloat64() * rowSD)
		}
		if identity && k < n.in {
			row[k]++
		}
	}
}

// head returns a deep copy of the trainable part as a describe.Head.
func (n *net) head() describe.Head {
	h := describe.Head{Kind: describe.KindLinear, In: n.in, Out: n.out}
	if n.hidden > 0 {
		h.Kind = describe.KindMLP
		h.Hidden = n.hidden
		h.W1 = append([]float32(nil), n.w1...)
		h.B1 = append([]float32(nil), n.b1...)
	}
	h.W = append([]float32(nil), n.w...)
	return h
}

// forward embeds the first b rows of n.x into n.e (unit rows).
func (n *net) forward(b int) {
	impl := blas32.Implementation()
	if n.hidden > 0 {
		impl.Sgemm(blas.NoTrans, blas.Trans, b, n.hidden, n.in, 1, n.x, n.in, n.w1, n.in, 0, n.a, n.hidden)
		for i := 0; i < b; i++ {
			ar := n.a[i*n.hidden : (i+1)*n.hidden]
			hr := n.h[i*n.hidden : (i+1)*n.hidden]
			for j := range ar {
				ar[j] += n.b1[j]
				hr[j] = max(ar[j], 0)
			}
		}
		impl.Sgemm(blas.NoTrans, blas.Trans, b, n.out, n.hidden, 1, n.h, n.hidden, n.w, n.hidden, 0, n.z, n.out)
	} else {
		impl.Sgemm(blas.NoTrans, blas.Trans, b, n.out, n.in, 1, n.x, n.in, n.w, n.in, 0, n.z, n.out)
	}
	copy(n.e[:b*n.out], n.z[:b*n.out])
	normalizeRows(n.e, b, n.out, n.norms)
}

// lossGrad runs forward and backward for the first b rows of n.x with class
// ids y, leaving dL/dparams in the g* buffers, and returns the loss.
func (n *net) lossGrad(b int, y []int) float64 {
	impl := blas32.Implementation()
	n.forward(b)
	var loss float64
	if n.loss.usesProxies() {
		c := n.classes
		copy(n.pn, n.q)
		normalizeRows(n.pn, c, n.out, n.pnorms)
		impl.Sgemm(blas.NoTrans, blas.Trans, b, c, n.out, 1, n.e, n.out, n.pn, n.out, 0, n.s, c)
		loss = n.loss.eval(n.s, b, c, y, n.gs)
		impl.Sgemm(blas.NoTrans, blas.NoTrans, b, n.out, c, 1, n.gs, c, n.pn, n.out, 0, n.ge, n.out)
		impl.Sgemm(blas.Trans, blas.NoTrans, c, n.out, b, 1, n.gs, c, n.e, n.out, 0, n.gpn, n.out)
		normalizeBackward(n.pn, n.pnorms, n.gpn, n.gq, c, n.out)
	} else {
		impl.Sgemm(blas.NoTrans, blas.Trans, b, b, n.out, 1, n.e, n.out, n.e, n.out, 0, n.s, b)
		loss = n.loss.eval(n.s, b, b, y, n.gs)
		// S = E E^T, so dL/dE = (G + G^T) E.
		for i := 0; i < b; i++ {
			for j := i + 1; j < b; j++ {
				v := n.gs[i*b+j] + n.gs[j*b+i]
				n.gs[i*b+j], n.gs[j*b+i] = v, v
			}
			n.gs[i*b+i] *= 2
		}
		impl.Sgemm(blas.NoTrans, blas.NoTrans, b, n.out, b, 1, n.gs, b, n.e, n.out, 0, n.ge, n.out)
	}
	normalizeBackward(n.e, n.norms, n.ge, n.gz, b, n.out)
	if n.hidden > 0 {
		impl.Sgemm(blas.Trans, blas.NoTrans, n.out, n.hidden, b, 1, n.gz, n.out, n.h, n.hidden, 0, n.gw, n.hidden)
		impl.Sgemm(blas.NoTrans, blas.NoTrans, b, n.hidden, n.out, 1, n.gz, n.out, n.w, n.hidden, 0, n.gh, n.hidden)
		clear(n.gb1)
		for i := 0; i < b; i++ {
			ar := n.a[i*n.hidden : (i+1)*n.hidden]
			gr := n.gh[i*n.hidden : (i+1)*n.hidden]
			for j := range gr {
				if ar[j] <= 0 {
					gr[j] = 0
				}
				n.gb1[j] += gr[j]
			}
		}
		impl.Sgemm(blas.Trans, blas.NoTrans, n.hidden, n.in, b, 1, n.gh, n.hidden, n.x, n.in, 0, n.gw1, n.in)
		if n.gx != nil {
			impl.Sgemm(blas.NoTrans, blas.NoTrans, b, n.in, n.hidden, 1, n.gh, n.hidden, n.w1, n.in, 0, n.gx, n.in)
		}
	} else {
		impl.Sgemm(blas.Trans, blas.NoTrans, n.out, n.in, b, 1, n.gz, n.out, n.x, n.in, 0, n.gw, n.in)
		if n.gx != nil {
			impl.Sgemm(blas.NoTrans, blas.NoTrans, b, n.in, n.out, 1, n.gz, n.out, n.w, n.in, 0, n.gx, n.in)
		}
	}
	return loss
}

// params lists the tensors the optimiser updates, with whether weight decay
// applies (not to biases or proxies, whose scale is meaningless or fixed by
// normalisation) and a learning-rate multiplier.
func (n *net) params(proxyLRMult float64) []param {
	var ps []param
	if n.hidden > 0 {
		ps = append(ps, param{w: n.w1, g: n.gw1, decay: true, lrMult: 1})
		ps = append(ps, param{w: n.b1, g: n.gb1, lrMult: 1})
	}
	ps = append(ps, param{w: n.w, g: n.gw, decay: true, lrMult: 1})
	if n.q != nil {
		ps = append(ps, param{w: n.q, g: n.gq, lrMult: proxyLRMult})
	}
	return ps
}
