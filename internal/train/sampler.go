package train

import "math/rand/v2"

// pkSampler draws batches of P classes x K images. Each class keeps its own
// shuffled queue so every image is seen before any repeats, and each drawn
// image contributes one randomly chosen view (its augmentation for this
// draw).
type pkSampler struct {
	rng     *rand.Rand
	members [][]int // image ids per class
	queue   [][]int
	pos     []int
	p, k    int
	views   []int // number of views per image
}

func newPKSampler(rng *rand.Rand, members [][]int, views []int, p, k int) *pkSampler {
	s := &pkSampler{rng: rng, members: members, p: min(p, len(members)), k: k, views: views}
	s.queue = make([][]int, len(members))
	s.pos = make([]int, len(members))
	for c, m := range members {
		s.queue[c] = append([]int(nil), m...)
		s.shuffle(c)
	}
	return s
}

func (s *pkSampler) shuffle(c int) {
	q := s.queue[c]
	s.rng.Shuffle(len(q), func(i, j int) { q[i], q[j] = q[j], q[i] })
	s.pos[c] = 0
}

// next appends to img/view/cls the draws of one batch and returns them.
// A class with fewer than K images contributes all of them once.
func (s *pkSampler) next(img, view, cls []int) ([]int, []int, []int) {
	img, view, cls = img[:0], view[:0], cls[:0]
	for _, c := range s.rng.Perm(len(s.members))[:s.p] {
		want := min(s.k, len(s.members[c]))
		start := len(img)
		for len(img)-start < want {
			if s.pos[c] == len(s.queue[c]) {
				s.shuffle(c)
			}
			id := s.queue[c][s.pos[c]]
			s.pos[c]++
			dup := false
			for _, prev := range img[start:] {
				if prev == id {
					dup = true
					break
				}
			}
			if dup {
				continue
			}
			img = append(img, id)
			view = append(view, s.rng.IntN(s.views[id]))
			cls = append(cls, c)
		}
	}
	return img, view, cls
}
