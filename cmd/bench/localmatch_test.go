package main

import (
	"math/rand/v2"
	"testing"

	"prodsearch/internal/vec/vectest"
)

// A catalogue image seen again scaled, rotated and shifted keeps its cells'
// layout: every match is an inlier of one similarity transform. The same
// descriptors at shuffled positions match as well but share no transform,
// so few of them agree; unrelated descriptors do not match at all.
func TestInliersCountMatchesOneSimilarityExplains(t *testing.T) {
	const n, c = 60, 32
	rng := rand.New(rand.NewPCG(1, 2))
	descs := make([][]float32, n)
	for i := range descs {
		descs[i] = vectest.Unit(rng, c)
	}
	var cat, photo, shuffled, other localFeat
	cat.c, photo.c, shuffled.c, other.c = c, c, c, c
	s, shift := complex(0.8, 0.6)*1.5, complex(3, -2) // rotate 37°, scale 1.5, shift
	perm := rng.Perm(n)
	for i, d := range descs {
		p := complex(float64(rng.IntN(20)), float64(rng.IntN(20)))
		cat.pos, cat.desc = append(cat.pos, p), append(cat.desc, d...)
		photo.pos, photo.desc = append(photo.pos, s*p+shift), append(photo.desc, d...)
		q := complex(float64(rng.IntN(20)), float64(rng.IntN(20)))
		shuffled.pos, shuffled.desc = append(shuffled.pos, q), append(shuffled.desc, descs[perm[i]]...)
	}
	for range n {
		other.pos, other.desc = append(other.pos, 0), append(other.desc, vectest.Unit(rng, c)...)
	}
	opt := localOpts{floor: 0.9, tol: 0.5, tries: 500}
	if got := inliers(photo, cat, opt, rand.New(rand.NewPCG(3, 4))); got != n {
		t.Errorf("transformed copy: %d inliers, want %d", got, n)
	}
	if got := inliers(shuffled, cat, opt, rand.New(rand.NewPCG(3, 4))); got > n/4 {
		t.Errorf("shuffled layout: %d inliers, want few", got)
	}
	if got := inliers(other, cat, opt, rand.New(rand.NewPCG(3, 4))); got != 0 {
		t.Errorf("unrelated descriptors: %d inliers, want 0", got)
	}
}
