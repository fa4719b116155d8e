package storetest

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestStressPausesWritersAndStopsOnError(t *testing.T) {
	var inFlight, writes, reads atomic.Int64
	cfg := StressConfig{
		Duration: 700 * time.Millisecond, Writers: 3, Readers: 2, Seed: 1,
		Write: func(int, *rand.Rand) error {
			inFlight.Add(1)
			defer inFlight.Add(-1)
			writes.Add(1)
			time.Sleep(time.Millisecond)
			return nil
		},
		Read: func(*rand.Rand) error { reads.Add(1); time.Sleep(time.Millisecond); return nil },
		Verify: func() error {
			if n := inFlight.Load(); n != 0 {
				return errors.New("verify ran beside a write")
			}
			return nil
		},
	}
	q, err := Stress(cfg)
	if err != nil || q == 0 || writes.Load() == 0 || reads.Load() == 0 {
		t.Fatalf("Stress = %d checks, %v; %d writes, %d reads", q, err, writes.Load(), reads.Load())
	}

	cfg.Duration = time.Minute
	cfg.Read = func(*rand.Rand) error {
		if reads.Add(1)%50 == 0 {
			return errors.New("boom")
		}
		return nil
	}
	start := time.Now()
	if _, err := Stress(cfg); err == nil || !strings.Contains(err.Error(), "reader") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("a failing reader gave %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("Stress ran on after the first error")
	}
}
