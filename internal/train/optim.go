package train

import "math"

// Optimiser and schedule names accepted in Config.
const (
	OptAdam = "adam" // AdamW: Adam with decoupled weight decay
	OptSGD  = "sgd"  // SGD with momentum and L2 weight decay

	SchedCosine = "cosine" // cosine decay to 0 after warm-up
	SchedStep   = "step"   // x0.1 at 50% and again at 75% of the epochs
	SchedConst  = "const"  // constant after warm-up
)

// param is one tensor the optimiser owns, with its gradient and state.
type param struct {
	w, g   []float32
	m, v   []float32
	decay  bool
	lrMult float64
}

type optimizer struct {
	kind         string
	beta1, beta2 float64
	eps, wd      float64
	t            int
	ps           []param
}

func newOptimizer(kind string, momentum, wd float64, ps []param) *optimizer {
	o := &optimizer{kind: kind, beta1: momentum, beta2: 0.999, eps: 1e-8, wd: wd, ps: ps}
	for i := range o.ps {
		o.ps[i].m = make([]float32, len(o.ps[i].w))
		if kind == OptAdam {
			o.ps[i].v = make([]float32, len(o.ps[i].w))
		}
	}
	return o
}

// step applies one update with base learning rate lr. These loops are
// O(parameters) per batch, small next to the O(batch x parameters) Sgemm
// calls of forward and backward.
func (o *optimizer) step(lr float64) {
	o.t++
	for _, p := range o.ps {
		plr := lr * p.lrMult
		wd := 0.0
		if p.decay {
			wd = o.wd
		}
		switch o.kind {
		case OptAdam:
			b1, b2 := float32(o.beta1), float32(o.beta2)
			c1 := 1 - math.Pow(o.beta1, float64(o.t))
			c2 := 1 - math.Pow(o.beta2, float64(o.t))
			// Fold the bias corrections into the step size and epsilon.
			stepSize := float32(plr * math.Sqrt(c2) / c1)
			eps := float32(o.eps * math.Sqrt(c2))
			decay := float32(1 - plr*wd)
			for i, g := range p.g {
				m := b1*p.m[i] + (1-b1)*g
				v := b2*p.v[i] + (1-b2)*g*g
				p.m[i], p.v[i] = m, v
				p.w[i] = p.w[i]*decay - stepSize*m/(float32(math.Sqrt(float64(v)))+eps)
			}
		default: // OptSGD
			mu, fl, fwd := float32(o.beta1), float32(plr), float32(wd)
			for i, g := range p.g {
				m := mu*p.m[i] + g + fwd*p.w[i]
				p.m[i] = m
				p.w[i] -= fl * m
			}
		}
	}
}

// learningRate returns the rate for global step (0-based) of total, with a
// linear warm-up over warm steps.
func learningRate(sched string, base float64, step, total, warm int) float64 {
	if step < warm {
		return base * float64(step+1) / float64(warm)
	}
	switch sched {
	case SchedCosine:
		span := total - warm
		if span <= 0 {
			return base
		}
		return base * 0.5 * (1 + math.Cos(math.Pi*float64(step-warm)/float64(span)))
	case SchedStep:
		f := float64(step) / float64(max(total, 1))
		switch {
		case f >= 0.75:
			return base * 0.01
		case f >= 0.5:
			return base * 0.1
		}
	}
	return base
}
