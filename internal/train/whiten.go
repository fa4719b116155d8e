package train

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"prodsearch/internal/describe"
)

// DefaultLwShrink is the ridge FitLw adds to the matching-pair covariance,
// as a fraction of its mean eigenvalue. With few classes (GroceryStore has
// 41) the within-class covariance has many tiny, noisy eigenvalues; full
// inversion would blow them up.
const DefaultLwShrink = 0.1

// FitPCAWhitening learns unsupervised PCA whitening,
//
//	W = diag( (lambda_k + shrink*mean(lambda))^-1/2 ) U_k^T,  Mean = mean(X)
//
// keeping the outDim leading eigenvectors U_k of the covariance of X.
// shrink = 0 is exact whitening (identity covariance on X); shrink > 0 damps
// the smallest components, which are mostly noise that exact whitening would
// amplify to unit variance — 0.1 to 1 is a sensible range to tune on
// validation mAP. The returned head L2-normalises its output like every stage.
func FitPCAWhitening(X [][]float32, outDim int, shrink float64) (*describe.Head, error) {
	d, err := checkMatrix(X, 2)
	if err != nil {
		return nil, fmt.Errorf("pca whitening: %w", err)
	}
	if err := checkWhitenArgs(d, outDim, shrink); err != nil {
		return nil, fmt.Errorf("pca whitening: %w", err)
	}
	mean := columnMean(X, d)
	xc := centred(X, mean, 1/math.Sqrt(float64(len(X)-1)))
	var cov mat.SymDense
	cov.SymOuterK(1, xc.T())
	vals, vecs, err := eigDesc(&cov)
	if err != nil {
		return nil, fmt.Errorf("pca whitening: %w", err)
	}
	scale, err := invSqrtScales(vals, outDim, shrink)
	if err != nil {
		return nil, fmt.Errorf("pca whitening: %w", err)
	}
	w := make([]float32, outDim*d)
	for k := 0; k < outDim; k++ {
		for j := 0; j < d; j++ {
			w[k*d+j] = float32(vecs.At(j, k) * scale[k])
		}
	}
	return &describe.Head{Kind: describe.KindPCA, In: d, Out: outDim, Mean: toF32(mean), W: w}, nil
}

// FitLw learns supervised whitening from same-class pairs (Lw, Radenovic et
// al., "Fine-tuning CNN Image Retrieval with No Human Annotation") with the
// default ridge DefaultLwShrink. See FitLwShrink.
func FitLw(X [][]float32, labels []string, outDim int) (*describe.Head, error) {
	return FitLwShrink(X, labels, outDim, DefaultLwShrink)
}

// FitLwShrink learns Lw whitening: with C_S the covariance of differences of
// matching (same-class) pairs, descriptors are whitened by
// (C_S + shrink*mean(eig C_S) I)^-1/2 so that nuisance variation seen inside
// a class is suppressed, then rotated onto the leading principal directions
// of the whitened data (all images, i.e. mostly inter-class variation) and
// cut to outDim. C_S over all pairs of a class equals n_c times that class's
// scatter, so it is computed from class means without enumerating pairs.
// Every class needs at least 2 images.
func FitLwShrink(X [][]float32, labels []string, outDim int, shrink float64) (*describe.Head, error) {
	d, err := checkMatrix(X, 2)
	if err != nil {
		return nil, fmt.Errorf("lw whitening: %w", err)
	}
	if err := checkWhitenArgs(d, outDim, shrink); err != nil {
		return nil, fmt.Errorf("lw whitening: %w", err)
	}
	ids, names, members, err := classIndex(labels, len(X), 2)
	if err != nil {
		return nil, fmt.Errorf("lw whitening: %w", err)
	}
	if len(names) < 2 {
		return nil, fmt.Errorf("lw whitening: %w (got %d)", ErrFewClasses, len(names))
	}
	// Rows sqrt(n_c/npairs) (x_i - mu_c): their Gram matrix is
	// sum over matching pairs of (x_i-x_j)(x_i-x_j)^T / npairs.
	var npairs float64
	for _, m := range members {
		npairs += float64(len(m)*(len(m)-1)) / 2
	}
	cm := make([][]float64, len(members))
	for c, m := range members {
		mu := make([]float64, d)
		for _, i := range m {
			for j, v := range X[i] {
				mu[j] += float64(v)
			}
		}
		for j := range mu {
			mu[j] /= float64(len(m))
		}
		cm[c] = mu
	}
	dw := mat.NewDense(len(X), d, nil)
	for i, row := range X {
		c := ids[i]
		f := math.Sqrt(float64(len(members[c])) / npairs)
		for j, v := range row {
			dw.Set(i, j, (float64(v)-cm[c][j])*f)
		}
	}
	var cs mat.SymDense
	cs.SymOuterK(1, dw.T())
	// Ridge: shrink x the mean eigenvalue, i.e. x trace/d.
	ridge := shrink * mat.Trace(&cs) / float64(d)
	for i := 0; i < d; i++ {
		cs.SetSym(i, i, cs.At(i, i)+ridge)
	}
	// Any P with P C_S P^T = I gives the same final projection once the
	// whitened data is rotated onto its principal axes (P' = QP only
	// rotates them), so the cheap Cholesky factor L^-1 replaces the
	// symmetric inverse square root and saves one eigendecomposition.
	var chol mat.Cholesky
	if !chol.Factorize(&cs) {
		return nil, fmt.Errorf("lw whitening: %w: matching-pair covariance is not positive definite; use shrink > 0", ErrRankDeficient)
	}
	var l, p mat.TriDense
	chol.LTo(&l)
	if err := p.InverseTri(&l); err != nil {
		return nil, fmt.Errorf("lw whitening: %w: %v; use a larger shrink", ErrRankDeficient, err)
	}

	mean := columnMean(X, d)
	xc := centred(X, mean, 1/math.Sqrt(float64(len(X))))
	var y mat.Dense
	y.Mul(xc, p.T()) // rows are (P (x-m))^T
	var cd mat.SymDense
	cd.SymOuterK(1, y.T())
	_, dvecs, err := eigDesc(&cd)
	if err != nil {
		return nil, fmt.Errorf("lw whitening: whitened covariance: %w", err)
	}
	var wm mat.Dense
	wm.Mul(dvecs.Slice(0, d, 0, outDim).T(), &p)
	w := make([]float32, outDim*d)
	for k := 0; k < outDim; k++ {
		for j := 0; j < d; j++ {
			w[k*d+j] = float32(wm.At(k, j))
		}
	}
	return &describe.Head{Kind: describe.KindLw, In: d, Out: outDim, Mean: toF32(mean), W: w}, nil
}

func checkWhitenArgs(d, outDim int, shrink float64) error {
	if outDim < 1 || outDim > d {
		return fmt.Errorf("%w: output dimension %d must be in [1, %d]", ErrBadConfig, outDim, d)
	}
	if !(shrink >= 0) || math.IsInf(shrink, 0) {
		return fmt.Errorf("%w: shrink %v must be a finite number >= 0", ErrBadConfig, shrink)
	}
	return nil
}

func columnMean(X [][]float32, d int) []float64 {
	mean := make([]float64, d)
	for _, row := range X {
		for j, v := range row {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(len(X))
	}
	return mean
}

// centred returns (X - mean) * f as an n x d float64 matrix.
func centred(X [][]float32, mean []float64, f float64) *mat.Dense {
	d := len(mean)
	data := make([]float64, len(X)*d)
	for i, row := range X {
		for j, v := range row {
			data[i*d+j] = (float64(v) - mean[j]) * f
		}
	}
	return mat.NewDense(len(X), d, data)
}

// eigDesc returns eigenvalues in decreasing order with matching eigenvector
// columns. Each eigenvector's sign is fixed (largest component positive) so
// heads are reproducible across LAPACK implementations.
func eigDesc(s *mat.SymDense) ([]float64, *mat.Dense, error) {
	var e mat.EigenSym
	if !e.Factorize(s, true) {
		return nil, nil, fmt.Errorf("eigendecomposition did not converge")
	}
	n := s.SymmetricDim()
	asc := e.Values(nil)
	var va mat.Dense
	e.VectorsTo(&va)
	vals := make([]float64, n)
	vecs := mat.NewDense(n, n, nil)
	for k := 0; k < n; k++ {
		src := n - 1 - k
		vals[k] = asc[src]
		big, sign := 0.0, 1.0
		for i := 0; i < n; i++ {
			if a := math.Abs(va.At(i, src)); a > big {
				big = a
				if va.At(i, src) < 0 {
					sign = -1
				} else {
					sign = 1
				}
			}
		}
		for i := 0; i < n; i++ {
			vecs.Set(i, k, sign*va.At(i, src))
		}
	}
	return vals, vecs, nil
}

// invSqrtScales returns (lambda_k + shrink*mean(lambda))^-1/2 for the first k
// eigenvalues (decreasing), failing when a kept direction has (numerically)
// no variance, because whitening it would divide noise by ~0.
func invSqrtScales(vals []float64, k int, shrink float64) ([]float64, error) {
	var sum float64
	for _, v := range vals {
		sum += max(v, 0)
	}
	meanL := sum / float64(len(vals))
	if !(meanL > 0) {
		return nil, fmt.Errorf("%w: all eigenvalues are zero (constant descriptors?)", ErrRankDeficient)
	}
	floor := 1e-10 * max(vals[0], 0)
	out := make([]float64, k)
	for i := 0; i < k; i++ {
		den := max(vals[i], 0) + shrink*meanL
		if den <= floor {
			return nil, fmt.Errorf("%w: eigenvalue %d of %d is %.3g (largest %.3g); use shrink > 0 or fewer output dimensions", ErrRankDeficient, i+1, len(vals), vals[i], vals[0])
		}
		out[i] = 1 / math.Sqrt(den)
	}
	return out, nil
}

func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, a := range v {
		out[i] = float32(a)
	}
	return out
}
