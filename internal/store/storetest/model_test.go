package storetest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestModelWindows(t *testing.T) {
	m := NewModel([]string{"a", "b", "c"})
	w := m.Watch()
	w.End()
	if !w.MustLack("a") || !w.MustLack("zz") || w.MustHave("a") || w.Known("zz") {
		t.Fatal("a fresh model must lack everything")
	}

	g := m.BeginAdd("a")
	w = m.Watch() // opened while the add is in flight
	m.EndAdd("a")
	w.End()
	if g != 1 || w.MustHave("a") || w.MustLack("a") {
		t.Errorf("in-flight add: gen %d, have %v, lack %v", g, w.MustHave("a"), w.MustLack("a"))
	}
	w = m.Watch()
	w.End()
	if !w.MustHave("a") || w.Before("a").Gen() != 1 {
		t.Errorf("acknowledged add not required: %v", w.Before("a"))
	}
	if lo, hi := w.Bounds(); lo != 1 || hi != 1 {
		t.Errorf("bounds %d..%d, want 1..1", lo, hi)
	}

	w = m.Watch()
	if old := m.BeginRemove("a"); old.Phase() != Present {
		t.Errorf("state before remove %v", old.Phase())
	}
	m.EndRemove("a")
	w.End()
	if w.MustHave("a") || w.MustLack("a") {
		t.Error("a removal during the window decides nothing")
	}
	w = m.Watch()
	m.BeginAdd("a") // re-added during the window: it may appear again
	w.End()
	if w.MustLack("a") {
		t.Error("an add begun during the window must allow the item")
	}
	if lo, hi := w.Gens("a"); lo != 1 || hi != 2 {
		t.Errorf("gens %d..%d, want 1..2", lo, hi)
	}
	w = m.Watch() // generation 2 still in flight: 1 may be seen too
	w.End()
	if lo, hi := w.Gens("a"); lo != 1 || hi != 2 {
		t.Errorf("gens with a replacement in flight %d..%d, want 1..2", lo, hi)
	}
	if _, err := m.Present(); err == nil {
		t.Error("Present with an add in flight")
	}
	m.EndAdd("a")
	m.BeginAdd("c")
	m.EndAdd("c")
	p, err := m.Present()
	if err != nil || len(p) != 2 || p["a"] != 2 || p["c"] != 1 {
		t.Errorf("Present = %v, %v", p, err)
	}
}

func TestWindowChecks(t *testing.T) {
	m := NewModel([]string{"a", "b", "c"})
	for _, id := range []string{"a", "b"} {
		m.BeginAdd(id)
		m.EndAdd(id)
	}
	w := m.Watch()
	w.End()
	labelOf := func(g int) string { return fmt.Sprint("gen", g) }
	seen := map[string]bool{}
	if err := w.CheckHit("a", "gen1", seen, labelOf); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ id, label, want string }{
		{"a", "gen1", "twice"},
		{"c", "gen1", "ghost"},
		{"zz", "gen1", "ghost"},
		{"b", "gen2", "no generation"},
	} {
		if err := w.CheckHit(c.id, c.label, seen, labelOf); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckHit(%s, %s) = %v, want %q", c.id, c.label, err, c.want)
		}
	}
	if err := w.CheckListing([]string{"b", "a"}, 2); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		listed []string
		total  int
		want   string
	}{
		{[]string{"a"}, 1, "allows"},
		{[]string{"a", "b"}, 3, "allows"},
		{[]string{"a", "c"}, 2, "ghost"},
	} {
		if err := w.CheckListing(c.listed, c.total); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckListing(%v, %d) = %v, want %q", c.listed, c.total, err, c.want)
		}
	}
	w = m.Watch()
	m.BeginAdd("c") // c may show; a and b must
	w.End()
	if err := w.CheckListing([]string{"a", "c"}, 2); err == nil || !strings.Contains(err.Error(), "lost: list lacks b") {
		t.Errorf("CheckListing without b = %v", err)
	}
}

// Any draws every ID of the universe, and nothing else.
func TestModelAny(t *testing.T) {
	m := NewModel([]string{"a", "b", "c"})
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]int{}
	for range 300 {
		seen[m.Any(r)]++
	}
	if len(seen) != 3 || seen["a"] == 0 || seen["b"] == 0 || seen["c"] == 0 {
		t.Fatalf("Any drew %v", seen)
	}
}
