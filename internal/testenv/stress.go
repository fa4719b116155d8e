package testenv

import (
	"os"
	"testing"
	"time"
)

// Environment variables that lengthen the time-bounded tests.
const (
	// EnvStressDuration sets how long each concurrency (add, remove and
	// search at once) test runs; default a few seconds.
	EnvStressDuration = "PRODSEARCH_STRESS_DURATION"
	// EnvSoakDuration sets how long the loopback soak test runs.
	EnvSoakDuration = "PRODSEARCH_SOAK_DURATION"
)

// Duration returns the Go duration in the environment variable env, or def
// when it is unset. A malformed or non-positive value fails the test rather
// than silently running the short default.
func Duration(t testing.TB, env string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive Go duration such as 30s or 5m", env, v)
	}
	return d
}
