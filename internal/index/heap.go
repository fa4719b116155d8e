package index

// heap is a binary heap whose root is the least item under less. It is the
// one heap of the package: the exact top-k selection (topK), the HNSW beam's
// candidate queue (nearest first) and its result set (farthest first, bounded
// by ef). Ties keep their order of arrival at each step, so that rankings are
// reproducible run to run.
//
// It is not container/heap because that one goes through an interface for
// every comparison and swap on the hottest loops of a search.
type heap[T any] struct {
	items []T
	less  func(a, b T) bool
}

// len is the number of items held.
func (h *heap[T]) len() int { return len(h.items) }

// top is the least item; the heap must not be empty.
func (h *heap[T]) top() T { return h.items[0] }

// reset empties the heap, keeping its storage.
func (h *heap[T]) reset() { h.items = h.items[:0] }

// push adds x.
func (h *heap[T]) push(x T) {
	h.items = append(h.items, x)
	h.up(len(h.items) - 1)
}

// pop removes and returns the least item; the heap must not be empty.
func (h *heap[T]) pop() T {
	top := h.items[0]
	n := len(h.items) - 1
	h.items[0] = h.items[n]
	h.items = h.items[:n]
	h.down(0)
	return top
}

// offer keeps the k greatest items seen: below k items x is added, otherwise
// x replaces the least item if it is greater. With less meaning "ranks
// worse", that is a bounded top-k selection whose rejections (the common case
// once it is full) cost one comparison.
func (h *heap[T]) offer(x T, k int) {
	if len(h.items) < k {
		h.push(x)
		return
	}
	if k > 0 && h.less(h.items[0], x) {
		h.items[0] = x
		h.down(0)
	}
}

func (h *heap[T]) up(i int) {
	s := h.items
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(s[i], s[p]) {
			return
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *heap[T]) down(i int) {
	s := h.items
	n := len(s)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(s[r], s[l]) {
			m = r
		}
		if !h.less(s[m], s[i]) {
			return
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
}
