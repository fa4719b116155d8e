package eval

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func testRow(i int) Row {
	return Row{
		Time:         time.Date(2026, 1, 2, 3, 4, i, 0, time.UTC),
		Run:          fmt.Sprintf("run-%d", i),
		Checkpoint:   "ckpt/epoch-3.onnx",
		Dataset:      "grocerystore",
		MAP:          0.1 * float64(i),
		MAPAt1000:    0.1 * float64(i),
		R1:           0.5,
		SettingsHash: "abc123",
		Note:         "line one\nline\ttwo",
	}
}

func TestLeaderboardAppendRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs", "leaderboard.jsonl") // directory created
	want := []Row{testRow(1), testRow(2), testRow(3)}
	for _, r := range want {
		if err := AppendLeaderboard(path, r); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n != 3 {
		t.Errorf("file has %d lines, want 3:\n%s", n, data)
	}
	got, err := ReadLeaderboard(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLeaderboardZeroTimeIsNow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.jsonl")
	before := time.Now()
	if err := AppendLeaderboard(path, Row{Run: "r"}); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadLeaderboard(path)
	if err != nil {
		t.Fatal(err)
	}
	if tm := rows[0].Time; tm.Before(before.Add(-time.Second)) || tm.After(time.Now().Add(time.Second)) {
		t.Errorf("Time = %v, want about now", tm)
	}
}

func TestLeaderboardTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.jsonl")
	for i := 1; i <= 2; i++ {
		if err := AppendLeaderboard(path, testRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A crash mid-write leaves part of a third row and no newline.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-01-02T03:04:05Z","run":"torn","map":0.`)
	f.Close()

	var torn *TornLinesError
	rows, err := ReadLeaderboard(path)
	if !errors.As(err, &torn) || !reflect.DeepEqual(torn.Lines, []int{3}) {
		t.Fatalf("err = %v, want TornLinesError for line 3", err)
	}
	if !strings.Contains(err.Error(), path) || !reflect.DeepEqual(rows, []Row{testRow(1), testRow(2)}) {
		t.Errorf("rows = %+v, err = %v", rows, err)
	}

	// The next append starts a fresh line, so it is not glued to the torn
	// one; the torn line, now mid-file, is still recognised and skipped.
	if err := AppendLeaderboard(path, testRow(4)); err != nil {
		t.Fatal(err)
	}
	rows, err = ReadLeaderboard(path)
	if !errors.As(err, &torn) || !reflect.DeepEqual(torn.Lines, []int{3}) {
		t.Fatalf("err = %v, want TornLinesError for line 3", err)
	}
	if want := []Row{testRow(1), testRow(2), testRow(4)}; !reflect.DeepEqual(rows, want) {
		t.Errorf("rows = %+v, want %+v", rows, want)
	}
}

func TestReadLeaderboardLines(t *testing.T) {
	good := `{"time":"2026-01-02T03:04:05Z","run":"a","map":0.5,"future_field":1}`
	cases := []struct {
		name      string
		content   string
		rows      int
		tornLines []int
		errSub    string // a hard error
	}{
		{"complete last row without newline", good + "\n" + good, 2, nil, ""},
		{"blank and CRLF lines", "\n" + good + "\r\n\r\n" + good + "\n", 2, nil, ""},
		{"unterminated garbage last line", good + "\n\x00\x00\x00", 1, []int{2}, ""},
		{"corrupt middle line", good + "\nnot json\n" + good + "\n", 0, nil, "lb.jsonl:2"},
		{"wrong type", good + "\n" + `{"map":"high"}` + "\n", 0, nil, "lb.jsonl:2"},
		{"terminated garbage last line", good + "\n}{\n", 0, nil, "lb.jsonl:2"},
		{"empty file", "", 0, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lb.jsonl")
			if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			rows, err := ReadLeaderboard(path)
			var torn *TornLinesError
			switch {
			case c.errSub != "":
				if err == nil || errors.As(err, &torn) || !strings.Contains(err.Error(), c.errSub) || rows != nil {
					t.Errorf("rows, err = %d, %v; want a hard error containing %q", len(rows), err, c.errSub)
				}
			case c.tornLines != nil:
				if !errors.As(err, &torn) || !reflect.DeepEqual(torn.Lines, c.tornLines) {
					t.Errorf("err = %v, want torn lines %v", err, c.tornLines)
				}
			case err != nil:
				t.Errorf("err = %v", err)
			}
			if c.errSub == "" && len(rows) != c.rows {
				t.Errorf("%d rows, want %d", len(rows), c.rows)
			}
		})
	}
	if _, err := ReadLeaderboard(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want ErrNotExist", err)
	}
}

func TestLeaderboardConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.jsonl")
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := testRow(i)
			r.Note = strings.Repeat("x", 3000) // rows larger than a pipe buffer
			errs <- AppendLeaderboard(path, r)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rows, err := ReadLeaderboard(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n {
		t.Errorf("%d rows, want %d", len(rows), n)
	}
}

func TestAppendLeaderboardRejectsNaN(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.jsonl")
	r := testRow(1)
	r.MAP = nanValue()
	if err := AppendLeaderboard(path, r); err == nil {
		t.Error("NaN mAP accepted")
	}
}

func nanValue() float64 { z := 0.0; return z / z }

func TestSortRows(t *testing.T) {
	rows := []Row{
		{Run: "low", MAP: 0.2, R1: 0.9},
		{Run: "tieA", MAP: 0.5, R1: 0.4},
		{Run: "best", MAP: 0.7, R1: 0.1},
		{Run: "tieB", MAP: 0.5, R1: 0.6},
		{Run: "tieC", MAP: 0.5, R1: 0.4}, // full tie with tieA: file order kept
	}
	SortRows(rows)
	var got []string
	for _, r := range rows {
		got = append(got, r.Run)
	}
	if want := []string{"best", "tieB", "tieA", "tieC", "low"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func TestFormatLeaderboard(t *testing.T) {
	rows := []Row{testRow(2), {Run: "x", MAP: 0.25}}
	got := FormatLeaderboard(rows)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want header + 2:\n%s", len(lines), got)
	}
	if !strings.HasPrefix(lines[0], "#  time (UTC)") {
		t.Errorf("header = %q", lines[0])
	}
	for _, want := range []string{"1  2026-01-02 03:04", "run-2", "ckpt/epoch-3.onnx", "0.2000", "0.5000", "abc123", "line one line two"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row 1 %q lacks %q", lines[1], want)
		}
	}
	// Columns line up: "mAP" in the header sits over the values.
	col := strings.Index(lines[0], "mAP")
	if lines[1][col:col+6] != "0.2000" || lines[2][col:col+6] != "0.2500" {
		t.Errorf("mAP column misaligned:\n%s", got)
	}
	if !strings.Contains(lines[2], " - ") {
		t.Errorf("empty fields not shown as -: %q", lines[2])
	}
}

func TestSettingsHash(t *testing.T) {
	a, err := SettingsHash(map[string]any{"k": 10, "whiten": true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SettingsHash(map[string]any{"whiten": true, "k": 10})
	c, _ := SettingsHash(map[string]any{"whiten": true, "k": 20})
	if len(a) != 12 || a != b || a == c {
		t.Errorf("hashes %q %q %q: want 12 hex digits, equal for equal settings only", a, b, c)
	}
	if _, err := SettingsHash(func() {}); err == nil {
		t.Error("unhashable settings accepted")
	}
}

func TestLeaderboardKeepsShopFigures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.jsonl")
	// A row written before MRR, R@5 and R@10 were kept.
	old := `{"time":"2026-01-01T00:00:00Z","run":"old","checkpoint":"-","dataset":"d","map":0.3,"map@1000":0.3,"recall@1":0.4,"settings_hash":"h"}` + "\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	row := ScoreRow(Scores{MAP: 0.5, MAPAt1000: 0.45, MRR: 0.625, R1: 0.55, R5: 0.8, R10: 0.9})
	row.Run = "new"
	if err := AppendLeaderboard(path, row); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadLeaderboard(path)
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows %v, err %v", rows, err)
	}
	if rows[0].MRR != nil || rows[0].R5 != nil || rows[0].R10 != nil {
		t.Errorf("old row gained figures: %+v", rows[0])
	}
	n := rows[1]
	if n.MRR == nil || *n.MRR != 0.625 || n.R5 == nil || *n.R5 != 0.8 || n.R10 == nil || *n.R10 != 0.9 || n.R1 != 0.55 || n.MAPAt1000 != 0.45 {
		t.Errorf("new row = %+v, want MRR 0.625, R@5 0.8, R@10 0.9", n)
	}
	lines := strings.Split(strings.TrimSuffix(FormatLeaderboard(rows), "\n"), "\n")
	col := strings.Index(lines[0], "MRR")
	if col < 0 || lines[1][col:col+1] != "-" || lines[2][col:col+6] != "0.6250" {
		t.Errorf("MRR column: want - for the old row and 0.6250 for the new:\n%s", strings.Join(lines, "\n"))
	}
	r10 := strings.Index(lines[0], "R@10")
	if lines[2][r10:r10+6] != "0.9000" {
		t.Errorf("R@10 column misaligned:\n%s", strings.Join(lines, "\n"))
	}
}
