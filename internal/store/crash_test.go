package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The crash test runs this test binary again as a child that adds items in
// small batches and prints "ACK <id>" once each batch's Add has returned. The
// parent kills it with SIGKILL at a random moment (usually inside a commit),
// reopens the store and checks that every acknowledged item is there, whole,
// and that nothing half-written is.
const crashEnv = "PRODSEARCH_STORE_CRASH_DIR"

const crashDim = 64

func crashImage(id string) []byte {
	r := rand.New(rand.NewPCG(uint64(len(id)), uint64(id[len(id)-1])))
	b := make([]byte, 1000+r.IntN(40_000)) // some values span overflow pages
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, "\x89PNG\r\n\x1a\n"+id)
	return b
}

func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child process of TestKill9DuringBulkAdd only")
	}
	ctx := context.Background()
	s, err := Open(ctx, dir, testBundle, crashDim)
	if err != nil {
		fmt.Println("OPEN-ERROR", err)
		os.Exit(3)
	}
	round := os.Getenv(crashEnv + "_ROUND")
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for n := 0; n < 1_000_000; {
		batch := make([]Entry, 1+r.IntN(8))
		for i := range batch {
			id := fmt.Sprintf("r%s-%06d", round, n)
			n++
			batch[i] = Entry{ID: id, Label: "label-" + id[len(id)-1:], FileName: id + ".png", Vector: unitVec(id, crashDim), Image: crashImage(id)}
		}
		if err := s.Add(ctx, batch, AddOptions{}); err != nil {
			fmt.Println("ADD-ERROR", err)
			os.Exit(4)
		}
		var sb strings.Builder
		for _, e := range batch {
			fmt.Fprintf(&sb, "ACK %s\n", e.ID)
		}
		os.Stdout.WriteString(sb.String())
	}
}

func TestKill9DuringBulkAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	dir := t.TempDir()
	acked := map[string]bool{}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for round := range 4 {
		killAfter := 5 + r.IntN(150)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, fmt.Sprintf("%s_ROUND=%d", crashEnv, round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		got, killed := 0, false
		for sc.Scan() {
			line := sc.Text()
			id, ok := strings.CutPrefix(line, "ACK ")
			if !ok {
				if strings.Contains(line, "ERROR") {
					t.Errorf("child: %s", line)
				}
				continue
			}
			acked[id] = true
			if got++; got == killAfter && !killed {
				// A random extra delay moves the kill around inside the
				// next transaction (writes, fsync of data, of the meta page).
				time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child exited before the kill: %v", round, err)
		}
		t.Logf("round %d: killed after %d acks (%d in total)", round, got, len(acked))

		s, err := Open(context.Background(), dir, testBundle, crashDim)
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		if err := s.Check(context.Background()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for id := range acked {
			it, err := s.Get(id)
			if err != nil {
				t.Fatalf("round %d: acknowledged %s lost: %v", round, id, err)
			}
			img, _, err := s.Image(id)
			if err != nil || string(img) != string(crashImage(id)) || it.Label != "label-"+id[len(id)-1:] {
				t.Fatalf("round %d: %s damaged: %+v, %v", round, id, it, err)
			}
			v, err := s.Vector(id)
			if err != nil || v[0] != unitVec(id, crashDim)[0] || v[crashDim-1] != unitVec(id, crashDim)[crashDim-1] {
				t.Fatalf("round %d: vector of %s damaged: %v", round, id, err)
			}
		}
		// Committed but not yet acknowledged: at most the batch in flight
		// of each round.
		if extra := s.Len() - len(acked); extra < 0 || extra > 8*(round+1) {
			t.Errorf("round %d: %d items stored, %d acknowledged", round, s.Len(), len(acked))
		}
		s.Close()
	}
}
