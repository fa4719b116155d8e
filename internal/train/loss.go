package train

import (
	"math"
)

// Loss names accepted in Config.Loss.
const (
	LossNormSoftmax = "normsoftmax" // cosine softmax over class proxies, scale s, optional ArcFace margin
	LossArcFace     = "arcface"     // normsoftmax with an additive angular margin (Margin > 0)
	LossProxyAnchor = "proxyanchor" // Proxy-Anchor (Kim et al. 2020)
	LossMS          = "ms"          // multi-similarity loss with MS mining (Wang et al. 2019)
	LossTriplet     = "triplet"     // triplet loss with semi-hard negative mining
	LossNone        = "none"        // no metric learning: whitening only
)

// lossSpec holds what a loss needs from Config. All losses work on a
// similarity matrix S (rows x cols, cosine similarities) and write dL/dS;
// proxy losses compare a batch with class proxies (cols = classes), pair
// losses compare the batch with itself (cols = rows). Everything downstream
// of S (the large products) is shared and uses BLAS; the losses themselves
// only touch the small S.
type lossSpec struct {
	kind          string
	scale, margin float64
	msAlpha       float64
	msBeta        float64
	msBase        float64
	msEps         float64
}

func (l lossSpec) usesProxies() bool {
	switch l.kind {
	case LossNormSoftmax, LossArcFace, LossProxyAnchor:
		return true
	}
	return false
}

// eval returns the loss and overwrites g (same shape as s) with dL/dS,
// treating every entry of s as an independent variable. y holds the class
// id of each row (and, for pair losses, of each column).
func (l lossSpec) eval(s []float32, rows, cols int, y []int, g []float32) float64 {
	clear(g[:rows*cols])
	switch l.kind {
	case LossNormSoftmax, LossArcFace:
		return normSoftmaxLoss(s, rows, cols, y, l.scale, l.margin, g)
	case LossProxyAnchor:
		return proxyAnchorLoss(s, rows, cols, y, l.scale, l.margin, g)
	case LossMS:
		return multiSimilarityLoss(s, rows, y, l.msAlpha, l.msBeta, l.msBase, l.msEps, g)
	case LossTriplet:
		return tripletSemiHardLoss(s, rows, y, l.margin, g)
	}
	return 0
}

// normSoftmaxLoss is the mean cross-entropy of softmax(scale * cos) over
// class proxies ("Classification is a strong baseline for deep metric
// learning", Zhai & Wu 2019). With margin > 0 the target logit becomes
// scale*cos(theta + margin) (ArcFace, Deng et al. 2019), including its usual
// fallback cos - margin*sin(margin) once theta + margin would pass pi, which
// keeps the target logit monotone in cos.
func normSoftmaxLoss(s []float32, rows, cols int, y []int, scale, margin float64, g []float32) float64 {
	cm, sm := math.Cos(margin), math.Sin(margin)
	th := math.Cos(math.Pi - margin)
	mm := math.Sin(math.Pi-margin) * margin
	logits := make([]float64, cols)
	var loss float64
	inv := 1 / float64(rows)
	for i := 0; i < rows; i++ {
		row := s[i*cols : (i+1)*cols]
		for c, v := range row {
			logits[c] = scale * float64(v)
		}
		ct := float64(row[y[i]])
		dphi := 1.0
		if margin > 0 {
			var phi float64
			if ct > th {
				sinT := math.Sqrt(max(1-ct*ct, 0))
				phi = ct*cm - sinT*sm
				dphi = cm + sm*ct/max(sinT, 1e-4)
			} else {
				phi = ct - mm
			}
			logits[y[i]] = scale * phi
		}
		m := math.Inf(-1)
		for _, v := range logits {
			m = max(m, v)
		}
		var z float64
		for c, v := range logits {
			logits[c] = math.Exp(v - m)
			z += logits[c]
		}
		loss -= math.Log(logits[y[i]] / z)
		gr := g[i*cols : (i+1)*cols]
		for c := range logits {
			p := logits[c] / z
			if c == y[i] {
				gr[c] = float32(scale * (p - 1) * dphi * inv)
			} else {
				gr[c] = float32(scale * p * inv)
			}
		}
	}
	return loss * inv
}

// proxyAnchorLoss (Kim et al., CVPR 2020) with scale alpha and margin delta:
//
//	1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} e^{-alpha (s(x,p) - delta)})
//	+ 1/|P| sum_{p in P} log(1 + sum_{x in X_p-} e^{alpha (s(x,p) + delta)})
//
// where P+ are the proxies with a positive in the batch.
func proxyAnchorLoss(s []float32, rows, cols int, y []int, alpha, delta float64, g []float32) float64 {
	pos := make([]float64, 0, rows)
	neg := make([]float64, 0, rows)
	posIdx := make([]int, 0, rows)
	negIdx := make([]int, 0, rows)
	nPosProxies := 0
	for c := 0; c < cols; c++ {
		for i := 0; i < rows; i++ {
			if y[i] == c {
				nPosProxies++
				break
			}
		}
	}
	var loss float64
	for c := 0; c < cols; c++ {
		pos, neg, posIdx, negIdx = pos[:0], neg[:0], posIdx[:0], negIdx[:0]
		for i := 0; i < rows; i++ {
			v := float64(s[i*cols+c])
			if y[i] == c {
				pos = append(pos, -alpha*(v-delta))
				posIdx = append(posIdx, i)
			} else {
				neg = append(neg, alpha*(v+delta))
				negIdx = append(negIdx, i)
			}
		}
		if len(pos) > 0 {
			val := softplusLSE(pos)
			loss += val / float64(nPosProxies)
			for k, i := range posIdx {
				g[i*cols+c] += float32(-alpha * pos[k] / float64(nPosProxies))
			}
		}
		if len(neg) > 0 {
			val := softplusLSE(neg)
			loss += val / float64(cols)
			for k, i := range negIdx {
				g[i*cols+c] += float32(alpha * neg[k] / float64(cols))
			}
		}
	}
	return loss
}

// multiSimilarityLoss (Wang et al., CVPR 2019) with its pair mining: for
// anchor i, a negative k is kept if S_ik + eps > min positive similarity and
// a positive j if S_ij - eps < max negative similarity; then
//
//	L_i = 1/alpha log(1 + sum_j e^{-alpha (S_ij - base)})
//	    + 1/beta  log(1 + sum_k e^{ beta (S_ik - base)})
//
// averaged over anchors. Mining is a selection, not differentiated.
func multiSimilarityLoss(s []float32, n int, y []int, alpha, beta, base, eps float64, g []float32) float64 {
	pos := make([]float64, 0, n)
	neg := make([]float64, 0, n)
	posIdx := make([]int, 0, n)
	negIdx := make([]int, 0, n)
	var loss float64
	inv := 1 / float64(n)
	for i := 0; i < n; i++ {
		row := s[i*n : (i+1)*n]
		minPos, maxNeg := math.Inf(1), math.Inf(-1)
		for j, v := range row {
			if j == i {
				continue
			}
			if y[j] == y[i] {
				minPos = min(minPos, float64(v))
			} else {
				maxNeg = max(maxNeg, float64(v))
			}
		}
		pos, neg, posIdx, negIdx = pos[:0], neg[:0], posIdx[:0], negIdx[:0]
		for j, v := range row {
			if j == i {
				continue
			}
			f := float64(v)
			if y[j] == y[i] {
				if f-eps < maxNeg {
					pos = append(pos, -alpha*(f-base))
					posIdx = append(posIdx, j)
				}
			} else if f+eps > minPos {
				neg = append(neg, beta*(f-base))
				negIdx = append(negIdx, j)
			}
		}
		if len(pos) > 0 {
			loss += softplusLSE(pos) / alpha * inv
			for k, j := range posIdx {
				g[i*n+j] -= float32(pos[k] * inv)
			}
		}
		if len(neg) > 0 {
			loss += softplusLSE(neg) / beta * inv
			for k, j := range negIdx {
				g[i*n+j] += float32(neg[k] * inv)
			}
		}
	}
	return loss
}

// tripletSemiHardLoss is the FaceNet triplet loss in cosine units,
// max(0, S_an - S_ap + margin), averaged over all anchor-positive pairs. The
// negative is semi-hard: the most similar negative that is still less
// similar than the positive; if there is none, the least similar negative
// (TensorFlow's triplet_semihard_loss rule), which avoids the collapse that
// always taking the hardest negative causes early in training.
func tripletSemiHardLoss(s []float32, n int, y []int, margin float64, g []float32) float64 {
	var loss float64
	pairs := 0
	for a := 0; a < n; a++ {
		for p := 0; p < n; p++ {
			if p != a && y[p] == y[a] {
				pairs++
			}
		}
	}
	if pairs == 0 {
		return 0
	}
	inv := 1 / float64(pairs)
	for a := 0; a < n; a++ {
		row := s[a*n : (a+1)*n]
		for p := 0; p < n; p++ {
			if p == a || y[p] != y[a] {
				continue
			}
			sap := row[p]
			semi, easiest := -1, -1
			for k := 0; k < n; k++ {
				if y[k] == y[a] {
					continue
				}
				v := row[k]
				if v < sap && (semi < 0 || v > row[semi]) {
					semi = k
				}
				if easiest < 0 || v < row[easiest] {
					easiest = k
				}
			}
			neg := semi
			if neg < 0 {
				neg = easiest
			}
			if neg < 0 {
				continue
			}
			l := float64(row[neg]) - float64(sap) + margin
			if l > 0 {
				loss += l * inv
				g[a*n+neg] += float32(inv)
				g[a*n+p] -= float32(inv)
			}
		}
	}
	return loss
}

// softplusLSE returns log(1 + sum_j exp(a_j)) computed stably and overwrites
// a with the weights exp(a_j) / (1 + sum exp(a)), i.e. the derivative of the
// result with respect to each a_j.
func softplusLSE(a []float64) float64 {
	m := 0.0
	for _, v := range a {
		m = max(m, v)
	}
	z := math.Exp(-m)
	for i, v := range a {
		a[i] = math.Exp(v - m)
		z += a[i]
	}
	for i := range a {
		a[i] /= z
	}
	return m + math.Log(z)
}
