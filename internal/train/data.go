package train

import (
	"errors"
	"fmt"
	"prodsearch/internal/vec"
	"sort"
)

// Input errors. They are sentinels so a caller (the CLI, a leaderboard
// runner) can tell bad data from a failed optimisation with errors.Is.
var (
	ErrNoData        = errors.New("no descriptors")
	ErrDimMismatch   = errors.New("descriptor dimensions differ")
	ErrNotFinite     = errors.New("descriptor has NaN or Inf")
	ErrBadLabels     = errors.New("bad labels")
	ErrSmallClass    = errors.New("class has fewer than 2 images")
	ErrFewClasses    = errors.New("need at least 2 classes")
	ErrBadConfig     = errors.New("bad training config")
	ErrRankDeficient = errors.New("covariance is rank-deficient")
)

// checkMatrix verifies that X is non-empty, rectangular and finite, and
// returns its column count. minRows documents how many rows the caller needs.
func checkMatrix(X [][]float32, minRows int) (int, error) {
	if len(X) == 0 {
		return 0, ErrNoData
	}
	if len(X) < minRows {
		return 0, fmt.Errorf("%w: got %d rows, need at least %d", ErrNoData, len(X), minRows)
	}
	d := len(X[0])
	if d == 0 {
		return 0, fmt.Errorf("%w: row 0 is empty", ErrDimMismatch)
	}
	for i, row := range X {
		if len(row) != d {
			return 0, fmt.Errorf("%w: row %d has %d values, row 0 has %d", ErrDimMismatch, i, len(row), d)
		}
		if j := vec.FirstNonFinite(row); j >= 0 {
			return 0, fmt.Errorf("%w: row %d, component %d is %v", ErrNotFinite, i, j, row[j])
		}
	}
	return d, nil
}

// classIndex maps string labels to dense class ids in sorted name order (so
// ids do not depend on input order) and returns the members of each class.
// It rejects empty labels and, when minPerClass > 0, small classes.
func classIndex(labels []string, n int, minPerClass int) (ids []int, names []string, members [][]int, err error) {
	if len(labels) != n {
		return nil, nil, nil, fmt.Errorf("%w: %d labels for %d descriptors", ErrBadLabels, len(labels), n)
	}
	set := map[string]int{}
	for i, l := range labels {
		if l == "" {
			return nil, nil, nil, fmt.Errorf("%w: label %d is empty", ErrBadLabels, i)
		}
		set[l]++
	}
	names = make([]string, 0, len(set))
	for l := range set {
		names = append(names, l)
	}
	sort.Strings(names)
	for _, l := range names {
		if minPerClass > 0 && set[l] < minPerClass {
			return nil, nil, nil, fmt.Errorf("%w: %q has %d", ErrSmallClass, l, set[l])
		}
	}
	id := make(map[string]int, len(names))
	for i, l := range names {
		id[l] = i
	}
	ids = make([]int, n)
	members = make([][]int, len(names))
	for i, l := range labels {
		ids[i] = id[l]
		members[ids[i]] = append(members[ids[i]], i)
	}
	return ids, names, members, nil
}

// normalizeRows scales each row of the row-major n x d matrix m to unit L2
// norm, storing the norms (0 rows stay 0).
func normalizeRows(m []float32, n, d int, norms []float32) {
	for i := 0; i < n; i++ {
		r := vec.Normalize(m[i*d : (i+1)*d])
		if norms != nil {
			norms[i] = float32(r)
		}
	}
}

// normalizeBackward is the gradient of e = z/|z| row by row:
// dz = (de - e (e.de)) / |z|. e and de are n x d; the result overwrites dz.
// Rows with zero norm get zero gradient (the map is not differentiable
// there, and such rows carry no direction to learn from).
func normalizeBackward(e, norms, de, dz []float32, n, d int) {
	for i := 0; i < n; i++ {
		er := e[i*d : (i+1)*d]
		gr := de[i*d : (i+1)*d]
		out := dz[i*d : (i+1)*d]
		if norms[i] == 0 {
			clear(out)
			continue
		}
		var dot float64
		for j := range er {
			dot += float64(er[j]) * float64(gr[j])
		}
		inv := 1 / float64(norms[i])
		for j := range er {
			out[j] = float32((float64(gr[j]) - float64(er[j])*dot) * inv)
		}
	}
}
