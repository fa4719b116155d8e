package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDataRootFlag checks --data-root on the commands that read image sets:
// GroceryStore-style `../dataset/...` lines inside the root pass, a line
// escaping it fails naming the line, and without the flag nothing changes.
// The sets are refused before any model is needed.
func TestDataRootFlag(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "grocery")
	write(t, filepath.Join(root, "splits", "q.tsv"), "../dataset/Apple/q1.jpg\tApple\n")
	write(t, filepath.Join(root, "splits", "r.tsv"), "../dataset/Apple/r1.jpg\tApple\n../dataset/Pear/r2.jpg\tPear\n")
	write(t, filepath.Join(root, "splits", "evil.tsv"), "../dataset/Apple/r1.jpg\tApple\n../../../etc/passwd\tPear\n")
	write(t, filepath.Join(base, "rank.tsv"), "../dataset/Apple/q1.jpg\t../dataset/Apple/r1.jpg,../dataset/Pear/r2.jpg\n")
	q, r, evil := filepath.Join(root, "splits", "q.tsv"), filepath.Join(root, "splits", "r.tsv"), filepath.Join(root, "splits", "evil.tsv")
	rank := filepath.Join(base, "rank.tsv")

	if _, _, err := runCLI(t, "eval", "--ranking", rank, "--queries", q, "--references", r, "--data-root", root); err != nil {
		t.Fatalf("eval inside the root: %v", err)
	}
	want := "evil.tsv:2: ../../../etc/passwd resolves to " + filepath.Join(root, "splits", "../../../etc/passwd") + ", outside the data root " + root
	for _, args := range [][]string{
		{"eval", "--ranking", rank, "--queries", q, "--references", evil, "--data-root", root},
		{"run", "--queries", q, "--references", evil, "--data-root", root},
		{"infer", "--queries", q, "--references", evil, "--out", filepath.Join(base, "out.tsv"), "--data-root", root},
		{"train", "--data", evil, "--run", "x", "--runs-dir", filepath.Join(base, "runs"), "--data-root", root},
		{"tune", "--data", evil, "--data-root", root},
	} {
		_, _, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want one saying %q", args[0], err, want)
			continue
		}
		t.Logf("%s --data-root: %v", args[0], err)
	}
	// Without the flag the line is followed (and scored: it is unranked).
	if _, _, err := runCLI(t, "eval", "--ranking", rank, "--queries", q, "--references", evil); err != nil && strings.Contains(err.Error(), "data root") {
		t.Errorf("eval without --data-root: %v", err)
	}
}

// TestLabelProblemsCLI checks that scoring commands refuse a manifest line
// that lost its label, and duplicate IDs, naming the lines, before any
// model is needed.
func TestLabelProblemsCLI(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "q.tsv"), "q1.jpg\tA\nq2.jpg\n")
	write(t, filepath.Join(dir, "r.tsv"), "a.jpg\tA\nb.jpg\tA\n")
	write(t, filepath.Join(dir, "dup.tsv"), "a.jpg\tA\nb.jpg\tA\na.jpg\tB\n")
	write(t, filepath.Join(dir, "rank.tsv"), "q1.jpg\ta.jpg,b.jpg\n")
	q, r, dup, rank := filepath.Join(dir, "q.tsv"), filepath.Join(dir, "r.tsv"), filepath.Join(dir, "dup.tsv"), filepath.Join(dir, "rank.tsv")
	cases := []struct {
		args []string
		msg  []string
	}{
		{[]string{"eval", "--ranking", rank, "--queries", q, "--references", r}, []string{"queries: dataset: ", "1 of 2 items have no label: " + q + ":2 (q2.jpg)"}},
		{[]string{"run", "--queries", q, "--references", r}, []string{"1 of 2 items have no label: " + q + ":2 (q2.jpg)"}},
		{[]string{"eval", "--ranking", rank, "--queries", q, "--references", dup}, []string{`duplicate ID "a.jpg"`, dup + ":1", dup + ":3"}},
	}
	for _, c := range cases {
		_, _, err := runCLI(t, c.args...)
		if err == nil {
			t.Errorf("%v accepted", c.args)
			continue
		}
		for _, m := range c.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s: %v lacks %q", c.args[0], err, m)
			}
		}
		t.Logf("%s: %v", c.args[0], err)
	}
}
