package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	got := Line("describe", 50, 200, 10*time.Second)
	want := "describe 50/200 (25%) 5.0/s, 30s left"
	if got != want {
		t.Fatalf("Line = %q, want %q", got, want)
	}
	if got := Line("x", 0, 10, 0); !strings.Contains(got, "? left") {
		t.Fatalf("no rate yet should give unknown ETA, got %q", got)
	}
}

func TestBarThrottlesAndFinishes(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	b := newBar(&buf, "job", func() time.Time { return now })
	now = now.Add(time.Second)
	b.Update(1, 3)
	b.Update(2, 3) // same instant: throttled
	if n := strings.Count(buf.String(), "job"); n != 1 {
		t.Fatalf("want 1 redraw, got %d: %q", n, buf.String())
	}
	b.Update(3, 3)
	if !strings.HasSuffix(buf.String(), "\n") || !strings.Contains(buf.String(), "3/3") {
		t.Fatalf("final update must draw and end the line: %q", buf.String())
	}
}

func TestNilAndNonTerminalAreSilent(t *testing.T) {
	var buf bytes.Buffer
	if b := New(&buf, "x"); b != nil {
		t.Fatal("a buffer is not a terminal: want nil bar")
	}
	var b *Bar
	b.Update(1, 2) // must not panic
}
