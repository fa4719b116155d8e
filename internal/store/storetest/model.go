package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
)

// Phase is where one ID of a Model stands.
type Phase uint8

// Phases of an ID. Adding and Removing cover the time between a write being
// sent and being acknowledged, when either outcome may be visible.
const (
	Absent Phase = iota
	Adding
	Present
	Removing
)

// String names the phase in messages.
func (p Phase) String() string {
	return [...]string{"absent", "adding", "present", "removing"}[p]
}

// State is one ID's phase and generation: how many adds (replacements
// included) were begun for it, so that a checker can tell that nothing
// happened to the ID while it looked.
type State uint64

// Phase of the ID.
func (s State) Phase() Phase { return Phase(s & 3) }

// Gen is the number of adds begun; the current content is that of add Gen.
func (s State) Gen() int { return int(s >> 2) }

func state(p Phase, gen int) State { return State(gen)<<2 | State(p) }

// Model is the oracle of a concurrency test: it records which writes were
// acknowledged, so that checkers running beside the writers can tell a lost
// item or a ghost from a race they merely observed.
//
// Its universe of IDs is fixed; an ID outside it was never added. Each ID
// must have at most one writer at a time (its owner), which brackets every
// write with Begin and End calls; any number of goroutines may Watch.
type Model struct {
	ids   []string
	pos   map[string]int
	state []atomic.Uint64
}

// NewModel returns a model in which every ID of the universe is Absent.
func NewModel(universe []string) *Model {
	m := &Model{ids: universe, pos: make(map[string]int, len(universe)), state: make([]atomic.Uint64, len(universe))}
	for i, id := range universe {
		if _, dup := m.pos[id]; dup {
			panic(fmt.Sprintf("storetest: id %q twice in the universe", id))
		}
		m.pos[id] = i
	}
	return m
}

// IDs returns the universe; callers must not modify it.
func (m *Model) IDs() []string { return m.ids }

// Any returns an ID of the universe drawn with r: what a reader, which may
// look at any ID, asks about next.
func (m *Model) Any(r *rand.Rand) string { return m.ids[r.IntN(len(m.ids))] }

// State returns id's current state; the zero State for an ID outside the
// universe.
func (m *Model) State(id string) State {
	i, ok := m.pos[id]
	if !ok {
		return 0
	}
	return State(m.state[i].Load())
}

func (m *Model) slot(id string) *atomic.Uint64 {
	i, ok := m.pos[id]
	if !ok {
		panic(fmt.Sprintf("storetest: id %q is not in the universe", id))
	}
	return &m.state[i]
}

// BeginAdd records that an add (or replacement) of id is being sent and
// returns its generation, which the caller uses to derive the content.
func (m *Model) BeginAdd(id string) int {
	s := m.slot(id)
	g := State(s.Load()).Gen() + 1
	s.Store(uint64(state(Adding, g)))
	return g
}

// EndAdd records that the add of id was acknowledged.
func (m *Model) EndAdd(id string) {
	s := m.slot(id)
	s.Store(uint64(state(Present, State(s.Load()).Gen())))
}

// BeginRemove records that a removal of id is being sent and returns the
// state before it, which tells whether the store must report it removed.
func (m *Model) BeginRemove(id string) State {
	s := m.slot(id)
	old := State(s.Load())
	s.Store(uint64(state(Removing, old.Gen())))
	return old
}

// EndRemove records that the removal of id was acknowledged.
func (m *Model) EndRemove(id string) {
	s := m.slot(id)
	s.Store(uint64(state(Absent, State(s.Load()).Gen())))
}

// Pick returns up to n IDs of own in phase p, in order from id onwards
// (wrapping round): how a client that alone writes the IDs in own chooses
// which to add or remove together.
func (m *Model) Pick(own []string, id string, p Phase, n int) []string {
	var out []string
	start := slices.Index(own, id)
	for i := 0; i < len(own) && len(out) < n; i++ {
		if x := own[(start+i)%len(own)]; m.State(x).Phase() == p {
			out = append(out, x)
		}
	}
	return out
}

// Present returns the generation of every acknowledged ID and fails if a
// write is in flight; call it only while writers are paused.
func (m *Model) Present() (map[string]int, error) {
	out := make(map[string]int)
	for i, id := range m.ids {
		s := State(m.state[i].Load())
		switch s.Phase() {
		case Present:
			out[id] = s.Gen()
		case Adding, Removing:
			return nil, fmt.Errorf("storetest: %s of %q in flight at a quiescent point", s.Phase(), id)
		}
	}
	return out, nil
}

// Watch snapshots every state before a read; End snapshots them after it.
// What held at both ends, with the generation unchanged, held throughout.
func (m *Model) Watch() *Window {
	w := &Window{m: m, before: make([]State, len(m.ids))}
	for i := range m.state {
		w.before[i] = State(m.state[i].Load())
	}
	return w
}

// Window is what a checker knows about the interval of one read.
type Window struct {
	m             *Model
	before, after []State
}

// End closes the window; call it after the read returned.
func (w *Window) End() {
	w.after = make([]State, len(w.m.ids))
	for i := range w.m.state {
		w.after[i] = State(w.m.state[i].Load())
	}
}

// Before returns id's state when the window opened.
func (w *Window) Before(id string) State {
	if i, ok := w.m.pos[id]; ok {
		return w.before[i]
	}
	return 0
}

// Known reports whether id is in the universe.
func (w *Window) Known(id string) bool {
	_, ok := w.m.pos[id]
	return ok
}

// MustHave reports whether id was acknowledged present for the whole
// window, so that a read must see it, in generation Before(id).Gen().
func (w *Window) MustHave(id string) bool {
	i, ok := w.m.pos[id]
	return ok && w.before[i].Phase() == Present && w.after[i] == w.before[i]
}

// MustLack reports whether no read in the window may see id: it is outside
// the universe, or it was never added or its removal was acknowledged
// before the window opened, and no add began during it.
func (w *Window) MustLack(id string) bool {
	i, ok := w.m.pos[id]
	return !ok || w.before[i].Phase() == Absent && w.after[i] == w.before[i]
}

// Gens returns the generations a read in the window may see of id: while
// a replacement is in flight the store may still hold the one before.
func (w *Window) Gens(id string) (lo, hi int) {
	i := w.m.pos[id]
	lo = w.before[i].Gen()
	if w.before[i].Phase() == Adding {
		lo--
	}
	return lo, w.after[i].Gen()
}

// Bounds returns how many IDs a read of the whole catalogue in the window
// must see at least (MustHave) and may see at most (not MustLack).
func (w *Window) Bounds() (lo, hi int) {
	for _, id := range w.m.ids {
		if w.MustHave(id) {
			lo++
		}
		if !w.MustLack(id) {
			hi++
		}
	}
	return lo, hi
}

// CheckHit checks one result of a read in the window: it is no ghost, it
// was not returned before in the same read (seen records it), and its label
// is that of a generation the read could see, as labelOf names them.
func (w *Window) CheckHit(id, label string, seen map[string]bool, labelOf func(gen int) string) error {
	if w.MustLack(id) {
		return fmt.Errorf("ghost: %s returned while absent (%v)", id, w.Before(id))
	}
	if seen[id] {
		return fmt.Errorf("%s returned twice", id)
	}
	seen[id] = true
	lo, hi := w.Gens(id)
	for g := max(lo, 1); g <= hi; g++ {
		if label == labelOf(g) {
			return nil
		}
	}
	return fmt.Errorf("%s has label %q, which no generation %d..%d had", id, label, lo, hi)
}

// CheckListing checks a listing of the whole catalogue read in the window:
// total within Bounds and equal to the IDs listed, nothing absent listed,
// and every ID present throughout listed.
func (w *Window) CheckListing(listed []string, total int) error {
	if lo, hi := w.Bounds(); total < lo || total > hi || len(listed) != total {
		return fmt.Errorf("list: %d items of %d, the model allows %d..%d", len(listed), total, lo, hi)
	}
	in := make(map[string]bool, len(listed))
	for _, id := range listed {
		if w.MustLack(id) {
			return fmt.Errorf("ghost: list shows %s while absent", id)
		}
		in[id] = true
	}
	for _, id := range w.m.ids {
		if w.MustHave(id) && !in[id] {
			return fmt.Errorf("lost: list lacks %s while present", id)
		}
	}
	return nil
}
