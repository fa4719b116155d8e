//go:build race

package server

// raceEnabled: the race detector's shadow memory makes RSS figures meaningless.
const raceEnabled = true
