package eval

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestScoresJSON(t *testing.T) {
	b, err := json.Marshal(Scores{MAP: 0.5, Queries: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"map":0.5,"map@1000":0,"mrr":0,"recall@1":0,"recall@5":0,"recall@10":0,"queries":3}`
	if string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
	b, _ = json.Marshal(Scores{Missing: 2})
	if !strings.Contains(string(b), `"missing":2`) {
		t.Errorf("JSON %s lacks missing", b)
	}
}

var roundTrip = []Ranking{
	{Query: "Fruit/Apple/q_001.jpg", Refs: []string{"../dataset/test/a.jpg", "b", "café"}},
	{Query: "q2", Refs: nil}, // empty list
	{Query: "q3", Refs: []string{"<x&y>"}},
}

func TestRankingsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, format := range []string{FormatTSV, FormatJSON} {
		var buf bytes.Buffer
		if err := WriteRankings(&buf, roundTrip, format); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		path := filepath.Join(dir, "rankings."+format)
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadRankings(path)
		if err != nil {
			t.Fatalf("%s: %v\n%s", format, err, buf.String())
		}
		if len(got) != len(roundTrip) {
			t.Fatalf("%s: read %d rankings, want %d", format, len(got), len(roundTrip))
		}
		for i := range got {
			if got[i].Query != roundTrip[i].Query || len(got[i].Refs) != len(roundTrip[i].Refs) ||
				(len(got[i].Refs) > 0 && !reflect.DeepEqual(got[i].Refs, roundTrip[i].Refs)) {
				t.Errorf("%s: ranking %d = %+v, want %+v", format, i, got[i], roundTrip[i])
			}
		}
	}
}

func TestWriteRankingsExactOutput(t *testing.T) {
	rk := []Ranking{{Query: "q1", Refs: []string{"r1", "r2"}}, {Query: "q2"}}
	var tsv, js bytes.Buffer
	if err := WriteRankings(&tsv, rk, FormatTSV); err != nil {
		t.Fatal(err)
	}
	if want := "q1\tr1,r2\nq2\t\n"; tsv.String() != want {
		t.Errorf("TSV = %q, want %q", tsv.String(), want)
	}
	if err := WriteRankings(&js, rk, FormatJSON); err != nil {
		t.Fatal(err)
	}
	want := "[\n{\"query\":\"q1\",\"refs\":[\"r1\",\"r2\"]},\n{\"query\":\"q2\",\"refs\":[]}\n]\n"
	if js.String() != want {
		t.Errorf("JSON = %q, want %q", js.String(), want)
	}
	js.Reset()
	if err := WriteRankings(&js, nil, FormatJSON); err != nil || js.String() != "[\n]\n" {
		t.Errorf("empty JSON = %q, %v", js.String(), err)
	}
}

func TestWriteRankingsErrors(t *testing.T) {
	cases := []struct {
		name   string
		rk     []Ranking
		format string
		sub    string
	}{
		{"tab in query", []Ranking{{Query: "a\tb"}}, FormatTSV, "cannot hold"},
		{"comma in ref", []Ranking{{Query: "q", Refs: []string{"ok", "a,b"}}}, FormatTSV, `ref 2: ID "a,b"`},
		{"newline in ref", []Ranking{{Query: "q", Refs: []string{"a\nb"}}}, FormatTSV, "cannot hold"},
		{"CR in query", []Ranking{{Query: "q\r"}}, FormatTSV, "cannot hold"},
		{"empty ref", []Ranking{{Query: "q", Refs: []string{""}}}, FormatTSV, "empty ID"},
		{"empty query TSV", []Ranking{{Query: ""}}, FormatTSV, "empty ID"},
		{"empty query JSON", []Ranking{{Query: ""}}, FormatJSON, "empty query ID"},
		{"bad UTF-8 JSON", []Ranking{{Query: "q", Refs: []string{"\xff"}}}, FormatJSON, "not valid UTF-8"},
		{"blank query line", []Ranking{{Query: "  ", Refs: []string{" "}}}, FormatTSV, "blank line"},
		{"empty ref JSON", []Ranking{{Query: "q", Refs: []string{"a", ""}}}, FormatJSON, "empty reference ID at position 2"},
		{"unknown format", nil, "csv", `unknown rankings format "csv"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A good ranking first: nothing of it may reach the writer.
			rk := append([]Ranking{{Query: "good", Refs: []string{"r"}}}, c.rk...)
			var buf bytes.Buffer
			err := WriteRankings(&buf, rk, c.format)
			if err == nil || !strings.Contains(err.Error(), c.sub) {
				t.Fatalf("err = %v, want one containing %q", err, c.sub)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %q before failing", buf.String())
			}
		})
	}
}

// TestWriteRankingsTSVLooksLikeJSON: ReadRankings takes a file whose first
// non-space byte is '[' or '{' for JSON, so TSV must not start that way.
func TestWriteRankingsTSVLooksLikeJSON(t *testing.T) {
	for _, rk := range [][]Ranking{
		{{Query: " [x", Refs: []string{"r"}}},
		{{Query: "{", Refs: []string{"r"}}},
		{{Query: " ", Refs: []string{"[r"}}},
	} {
		var buf bytes.Buffer
		if err := WriteRankings(&buf, rk, FormatTSV); err == nil || !strings.Contains(err.Error(), "would be read as JSON") {
			t.Errorf("%q: err = %v", rk, err)
		}
	}
	// Later lines may start with '[': only the first decides the format.
	var buf bytes.Buffer
	rk := []Ranking{{Query: "q", Refs: []string{"r"}}, {Query: "[x", Refs: []string{"{y"}}}
	if err := WriteRankings(&buf, rk, FormatTSV); err != nil {
		t.Fatal(err)
	}
	got, err := ParseRankings(&buf)
	if err != nil || len(got) != 2 || got[1].Query != "[x" {
		t.Fatalf("read back %q: %v", got, err)
	}
}

func TestParseRankings(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []Ranking
	}{
		{"TSV with CRLF and blank lines", "q1\ta,b\r\n\r\n\nq2\t\r\n", []Ranking{{Query: "q1", Refs: []string{"a", "b"}}, {Query: "q2"}}},
		{"TSV without final newline", "q1\ta", []Ranking{{Query: "q1", Refs: []string{"a"}}}},
		{"JSON after whitespace", " \n [{\"query\":\"q1\",\"refs\":[\"a,b\",\"c\"]},{\"query\":\"q2\",\"refs\":null}]\n", []Ranking{{Query: "q1", Refs: []string{"a,b", "c"}}, {Query: "q2"}}},
		{"empty", "", nil},
		{"whitespace only", " \n\n", nil},
	}
	for _, c := range cases {
		got, err := ParseRankings(strings.NewReader(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i].Query != c.want[i].Query || strings.Join(got[i].Refs, "|") != strings.Join(c.want[i].Refs, "|") {
				t.Errorf("%s: ranking %d = %+v, want %+v", c.name, i, got[i], c.want[i])
			}
		}
	}
}

func TestParseRankingsErrors(t *testing.T) {
	cases := []struct{ name, in, sub string }{
		{"no tab", "q1\ta\nq2 a,b\n", "line 2: no tab"},
		{"line numbers count leading blank lines", "\n \nq1\ta\nq2\n", "line 4: no tab"},
		{"two tabs", "q1\ta\tb\n", "line 1: more than one tab"},
		{"empty query", "\ta,b\n", "line 1: empty query ID"},
		{"empty ref", "q1\ta,,b\n", `query "q1": empty reference ID at position 2`},
		{"trailing comma", "q1\ta,\n", "empty reference ID at position 2"},
		{"JSON object", `{"q1": ["a"]}`, "must be an array"},
		{"JSON unknown field", `[{"query":"q1","ref":["a"]}]`, "unknown field"},
		{"JSON missing query", `[{"refs":["a"]}]`, "entry 0: missing or empty query"},
		{"JSON empty ref", `[{"query":"q1","refs":["a",""]}]`, `query "q1": empty reference ID at position 2`},
		{"JSON trailing data", `[] []`, "data after the array"},
		{"JSON truncated", `[{"query":"q1"`, "JSON rankings"},
	}
	for _, c := range cases {
		_, err := ParseRankings(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.sub) {
			t.Errorf("%s: err = %v, want one containing %q", c.name, err, c.sub)
		}
	}
}

func TestReadRankingsNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.tsv")
	if err := os.WriteFile(path, []byte("q1 a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadRankings(path)
	if err == nil || !strings.Contains(err.Error(), path+": line 1") {
		t.Errorf("err = %v, want it to name %s: line 1", err, path)
	}
	if _, err := ReadRankings(filepath.Join(t.TempDir(), "none")); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestFormatForPath(t *testing.T) {
	for path, want := range map[string]string{"r.json": FormatJSON, "R.JSON": FormatJSON, "r.tsv": FormatTSV, "r": FormatTSV, "r.jsonl": FormatTSV} {
		if got := FormatForPath(path); got != want {
			t.Errorf("FormatForPath(%q) = %q, want %q", path, got, want)
		}
	}
}
