// Package progress prints count, rate and time left for long jobs on a
// terminal, and nothing when the output is a log file or CI.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Bar reports progress of one job. A nil *Bar is valid and silent.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	start time.Time
	last  time.Time
	now   func() time.Time
}

// New returns a Bar writing to w when w is a terminal, else nil (silent).
func New(w io.Writer, label string) *Bar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || os.Getenv("CI") == "true" {
		return nil
	}
	return newBar(w, label, time.Now)
}

func newBar(w io.Writer, label string, now func() time.Time) *Bar {
	return &Bar{w: w, label: label, start: now(), now: now}
}

// Update redraws the line at most ten times a second, and always at the end.
func (b *Bar) Update(done, total int) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	if done < total && t.Sub(b.last) < 100*time.Millisecond {
		return
	}
	b.last = t
	fmt.Fprintf(b.w, "\r\033[K%s", Line(b.label, done, total, t.Sub(b.start)))
	if done >= total {
		fmt.Fprintln(b.w)
	}
}

// Line formats "label  done/total  rate/s  ETA" for a job elapsed so far.
func Line(label string, done, total int, elapsed time.Duration) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	eta := "?"
	if rate > 0 && total >= done {
		eta = (time.Duration(float64(total-done) / rate * float64(time.Second))).Round(time.Second).String()
	}
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	return fmt.Sprintf("%s %d/%d (%.0f%%) %.1f/s, %s left", label, done, total, pct, rate, eta)
}
