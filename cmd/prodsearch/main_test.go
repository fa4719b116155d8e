package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"prodsearch/internal/imageio/imagetest"
	"prodsearch/internal/testenv"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := dispatch(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func write(t *testing.T, path, text string) {
	t.Helper()
	imagetest.WriteFile(t, path, []byte(text))
}

// TestEvalHandComputed scores a hand-made ranking: query q1 (label A, two
// relevant refs) ranks a, x, b → AP = (1/1 + 2/3)/2; q2 (label B, one
// relevant ref) ranks x, y, c → AP = 1/3 and R@1 = 0; MRR = (1/1 + 1/3)/2.
func TestEvalHandComputed(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "q.tsv"), "q1.jpg\tA\nq2.jpg\tB\n")
	write(t, filepath.Join(dir, "r.tsv"), "a.jpg\tA\nb.jpg\tA\nc.jpg\tB\nx.jpg\tC\ny.jpg\tC\n")
	write(t, filepath.Join(dir, "rank.tsv"), "q1.jpg\ta.jpg,x.jpg,b.jpg\nq2.jpg\tx.jpg,y.jpg,c.jpg\n")
	out, _, err := runCLI(t, "eval", "--ranking", filepath.Join(dir, "rank.tsv"), "--queries", filepath.Join(dir, "q.tsv"), "--references", filepath.Join(dir, "r.tsv"), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]float64
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err, out)
	}
	want := ((1+2.0/3)/2 + 1.0/3) / 2
	if d := s["map"] - want; d > 1e-9 || d < -1e-9 {
		t.Fatalf("map %v, want %v", s["map"], want)
	}
	if s["recall@1"] != 0.5 || s["recall@5"] != 1 || s["queries"] != 2 {
		t.Fatalf("scores %v", s)
	}
	if d := s["mrr"] - (1+1.0/3)/2; d > 1e-9 || d < -1e-9 {
		t.Fatalf("mrr %v, want 2/3", s["mrr"])
	}
	for _, key := range []string{"map@1000", "recall@10"} {
		if _, ok := s[key]; !ok {
			t.Fatalf("missing key %s in %s", key, out)
		}
	}
	// --report writes the HTML report beside the scores.
	report := filepath.Join(dir, "out", "report.html")
	if _, _, err := runCLI(t, "eval", "--ranking", filepath.Join(dir, "rank.tsv"), "--queries", filepath.Join(dir, "q.tsv"), "--references", filepath.Join(dir, "r.tsv"), "--report", report); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(html), "<th>MRR</th><td class=\"n\">0.6667</td>") || !strings.Contains(string(html), `<base href="../">`) {
		t.Fatalf("report (%v):\n%.600s", err, html)
	}
	// A duplicate reference in one list is an error, not a silent merge.
	write(t, filepath.Join(dir, "dup.tsv"), "q1.jpg\ta.jpg,a.jpg\n")
	if _, _, err := runCLI(t, "eval", "--ranking", filepath.Join(dir, "dup.tsv"), "--queries", filepath.Join(dir, "q.tsv"), "--references", filepath.Join(dir, "r.tsv")); err == nil {
		t.Fatal("duplicate reference accepted")
	}
}

func TestUsageErrors(t *testing.T) {
	if _, _, err := runCLI(t, "nope"); err == nil {
		t.Fatal("unknown command accepted")
	}
	if _, _, err := runCLI(t, "infer", "--queries", "x"); err == nil {
		t.Fatal("missing --references accepted")
	}
	if _, _, err := runCLI(t, "infer", "-h"); err != nil {
		t.Fatalf("-h is not an error: %v", err)
	}
	if _, _, err := runCLI(t, "run", "--queries", "q", "--references", "r", "--bundle", "b.json", "--scales", "224"); err == nil || !strings.Contains(err.Error(), "--bundle") {
		t.Fatalf("describe flags with --bundle: %v", err)
	}
}

// TestInferEvalRealBackbone runs infer then eval on a small GroceryStore
// subset with the real backbone, in the hackathon layout and as manifests.
func TestInferEvalRealBackbone(t *testing.T) {
	// Three classes: first two photos of each as queries, next four as references.
	dir, q, r := smallTask(t, 3, 2, 4)
	cache := "--cache=" + filepath.Join(dir, "cache")
	_, stderr, err := runCLI(t, "infer", "--queries", filepath.Join(dir, "q.tsv"), "--references", filepath.Join(dir, "r.tsv"), "--out", filepath.Join(dir, "rank.json"), "--format", "json", cache)
	if err != nil {
		t.Fatal(err, stderr)
	}
	out, _, err := runCLI(t, "eval", "--ranking", filepath.Join(dir, "rank.json"), "--queries", filepath.Join(dir, "q.tsv"), "--references", filepath.Join(dir, "r.tsv"), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]float64
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s["queries"] != 6 || s["map"] < 0.6 || s["recall@1"] < 0.8 {
		t.Fatalf("three easy classes should rank well: %v", s)
	}
	// The second run comes from the cache.
	_, stderr, err = runCLI(t, "infer", "--queries", filepath.Join(dir, "q.tsv"), "--references", filepath.Join(dir, "r.tsv"), "--out", filepath.Join(dir, "rank.tsv"), "--top", "2", cache)
	if err != nil || !strings.Contains(stderr, "(18 from cache)") {
		t.Fatalf("second run should be cached: %v\n%s", err, stderr)
	}
	rank, _ := os.ReadFile(filepath.Join(dir, "rank.tsv"))
	for _, line := range strings.Split(strings.TrimSpace(string(rank)), "\n") {
		_, refs, _ := strings.Cut(line, "\t")
		if n := len(strings.Split(refs, ",")); n != 2 {
			t.Fatalf("--top 2 gave %d refs: %q", n, line)
		}
	}
	// Hackathon layout: flat folders, ID = file name without extension; a
	// corrupt file is reported and skipped, and --strict makes it fatal.
	flatQ, flatR := filepath.Join(dir, "test_data", "query"), filepath.Join(dir, "test_data", "reference")
	copyFirst(t, q, flatQ, 2)
	copyFirst(t, r, flatR, 6)
	write(t, filepath.Join(flatR, "broken.jpg"), "\xff\xd8\xff\xe0 not really")
	_, stderr, err = runCLI(t, "infer", "--queries", flatQ, "--references", flatR, "--out", filepath.Join(dir, "flat.tsv"), cache)
	if err != nil || !strings.Contains(stderr, "1 image(s) could not be described") || !strings.Contains(stderr, "broken.jpg") {
		t.Fatalf("corrupt file should be reported and skipped: %v\n%s", err, stderr)
	}
	flat, _ := os.ReadFile(filepath.Join(dir, "flat.tsv"))
	if strings.Contains(string(flat), ".jpg") || strings.Contains(string(flat), "/") {
		t.Fatalf("hackathon IDs must be bare file names: %s", flat)
	}
	if _, _, err := runCLI(t, "infer", "--queries", flatQ, "--references", flatR, "--out", filepath.Join(dir, "flat.tsv"), "--strict", cache); err == nil {
		t.Fatal("--strict accepted a corrupt file")
	}
}

// smallTask takes the first classes of GroceryStore's reference.tsv: the
// first nq photos of each as queries, the next nr as references, as
// manifest texts with absolute paths, written as q.tsv and r.tsv in the
// folder it returns. It skips without the models or the data.
func smallTask(t *testing.T, classes, nq, nr int) (dir, q, r string) {
	t.Helper()
	testenv.Models(t)
	var qb, rb strings.Builder
	seen := map[string]int{}
	for _, it := range testenv.Split(t, "reference.tsv").Items {
		if (seen[it.Label] == 0 && len(seen) == classes) || seen[it.Label] >= nq+nr {
			continue
		}
		w := &rb
		if seen[it.Label] < nq {
			w = &qb
		}
		w.WriteString(it.Path + "\t" + it.Label + "\n")
		seen[it.Label]++
	}
	dir = t.TempDir()
	write(t, filepath.Join(dir, "q.tsv"), qb.String())
	write(t, filepath.Join(dir, "r.tsv"), rb.String())
	return dir, qb.String(), rb.String()
}

// copyFirst copies the first n images of a manifest text into a flat folder.
func copyFirst(t *testing.T, manifest, dst string, n int) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSpace(manifest), "\n") {
		if i == n {
			break
		}
		path, _, _ := strings.Cut(line, "\t")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dst, filepath.Base(path)), string(data))
	}
}

// TestEveryCommandHelps builds every command's flags: a flag defined twice
// panics only when the command runs, so each is asked for its help here.
func TestEveryCommandHelps(t *testing.T) {
	for name := range commands() {
		var out bytes.Buffer
		if err := dispatch(context.Background(), []string{name, "-h"}, &out, &out); err != nil && !strings.Contains(out.String(), "usage") {
			t.Errorf("%s -h: %v\n%s", name, err, out.String())
		}
	}
}
