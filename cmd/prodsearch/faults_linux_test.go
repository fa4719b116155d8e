//go:build linux

package main

// Disk-full tests: the file-size limit (RLIMIT_FSIZE) of a running command
// is lowered from outside with prlimit(2), so its next write past the limit
// fails. Go's runtime handles SIGXFSZ and, with nobody subscribed to it,
// drops it, so the write returns EFBIG ("file too large") the way a full
// disk returns ENOSPC, instead of the signal killing the process. This works
// without root and without mounting a small filesystem.

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// limitFileSize sets the RLIMIT_FSIZE of process pid to n bytes.
func limitFileSize(t *testing.T, pid int, n uint64) {
	t.Helper()
	lim := syscall.Rlimit{Cur: n, Max: n}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); errno != 0 {
		t.Fatalf("prlimit(%d, RLIMIT_FSIZE): %v", pid, errno)
	}
}

// TestDiskFullDuringIndexAdd makes every write past the first 4 KiB fail
// after a random number of committed batches of `index add`: the command
// must fail with an error naming the failed write, every acknowledged item
// must be intact, the store must open and check cleanly, and a re-run with
// room again must add the rest.
func TestDiskFullDuringIndexAdd(t *testing.T) {
	env, tmp, data, sources := faultSetup(t, 6, 10)
	dir := filepath.Join(tmp, "store")
	args := []string{"index", "add", "--store", dir, "--batch", "4", "--workers", "2", data}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	limitAfter := 1 + rng.IntN(4)
	acked := map[string]bool{}
	c := startCLI(t, env, args...)
	commits := 0
	for l := range c.lines {
		ids, ok := parseCommit(t, l.text)
		if !ok {
			continue
		}
		for _, id := range ids {
			acked[id] = true
		}
		// The 4 KiB left is bbolt's first meta page: every data page and
		// the other meta page lie beyond it.
		if commits++; commits == limitAfter {
			limitFileSize(t, c.cmd.Process.Pid, 4096)
		}
	}
	err, took := c.wait()
	msg := strings.TrimSpace(c.stderr.String())
	if ee, ok := err.(interface{ ExitCode() int }); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit status 1 after the disk filled, got %v\n%s", err, msg)
	}
	last := msg[strings.LastIndex(msg, "\n")+1:]
	for _, w := range []string{"index add", filepath.Join(dir, "catalogue.db"), "file too large"} {
		if !strings.Contains(last, w) {
			t.Errorf("error %q does not say %q", last, w)
		}
	}
	// bbolt writes pages, or first grows the file when the commit needs room.
	if !strings.Contains(last, "write ") && !strings.Contains(last, "truncate ") {
		t.Errorf("error %q does not name the failed write", last)
	}
	stored := checkStore(t, dir, sources, acked)
	if extra := stored - len(acked); extra < 0 || extra > 4 {
		t.Fatalf("%d stored, %d acknowledged", stored, len(acked))
	}
	t.Logf("limit set after %d receipt(s); %d receipt(s) in all, %d acknowledged, %d stored; failed after %v with: %s",
		limitAfter, commits, len(acked), stored, took.Round(time.Millisecond), last)

	c = startCLI(t, env, args...)
	if err, _ := c.wait(); err != nil {
		t.Fatalf("re-run with room again: %v\n%s", err, c.stderr.String())
	}
	if n := checkStore(t, dir, sources, acked); n != len(sources) {
		t.Fatalf("after the re-run the store holds %d of %d", n, len(sources))
	}
}

// TestDiskFullDuringTrain makes every write fail after a random number of
// saved epochs: train must fail with an error naming the checkpoint and the
// failed write, every saved epoch must still list and load, nothing torn or
// temporary may be left, and --resume with room again must finish.
func TestDiskFullDuringTrain(t *testing.T) {
	env, tmp, data, _ := faultSetup(t, 6, 6)
	runsDir, cacheDir := filepath.Join(tmp, "runs"), filepath.Join(tmp, "cache")
	const epochs = 24
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	limitAfter := 1 + rng.IntN(5)
	acked := map[int]bool{}
	c := startCLI(t, env, trainArgs(data, runsDir, cacheDir, epochs, false)...)
	for l := range c.lines {
		m := epochLine.FindStringSubmatch(l.text)
		if m == nil || l.stderr {
			continue
		}
		e, _ := strconv.Atoi(m[1])
		acked[e] = true
		if len(acked) == limitAfter {
			limitFileSize(t, c.cmd.Process.Pid, 0)
		}
	}
	err, took := c.wait()
	msg := strings.TrimSpace(c.stderr.String())
	if ee, ok := err.(interface{ ExitCode() int }); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit status 1 after the disk filled, got %v\n%s%s", err, c.stdout.String(), msg)
	}
	last := msg[strings.LastIndex(msg, "\n")+1:]
	for _, w := range []string{"checkpoint " + filepath.Join(runsDir, "r", "epoch-"), "write", "file too large"} {
		if !strings.Contains(last, w) {
			t.Errorf("error %q does not say %q", last, w)
		}
	}
	listed, temps := checkRun(t, runsDir, acked)
	if temps != 0 {
		t.Errorf("%d temporary file(s) left after a failed write", temps)
	}
	t.Logf("limit set after epoch %d; %d epoch(s) acknowledged, %d listed; failed after %v with: %s",
		limitAfter, len(acked), len(listed), took.Round(time.Millisecond), last)

	c = startCLI(t, env, trainArgs(data, runsDir, cacheDir, epochs, true)...)
	if err, _ := c.wait(); err != nil {
		t.Fatalf("--resume with room again: %v\n%s", err, c.stderr.String())
	}
	all := map[int]bool{}
	for e := 1; e <= epochs; e++ {
		all[e] = true
	}
	if listed, _ := checkRun(t, runsDir, all); len(listed) != epochs {
		t.Fatalf("after --resume: %d of %d checkpoints", len(listed), epochs)
	}
	if _, err := os.Stat(filepath.Join(runsDir, "r", "curves.png")); err != nil {
		t.Fatal(err)
	}
}
