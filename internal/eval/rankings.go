package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// Ranking file formats accepted by WriteRankings.
//
// TSV is the hackathon contract: one line per query,
// `query_id<TAB>ref1,ref2,...`, refs best first; an empty list is
// `query_id<TAB>`. IDs may contain '/' but not a tab, comma, CR or LF.
//
// JSON is an array of objects, `[{"query": "q1", "refs": ["r1", "r2"]}]`,
// written one object per line; any ID that is a non-empty JSON string is
// allowed. An array rather than an object keyed by query keeps the file's
// query order and lets a duplicated query reach Score as an error instead of
// being merged by the decoder.
const (
	FormatTSV  = "tsv"
	FormatJSON = "json"
)

// FormatForPath picks the format a file name suggests (".json" is JSON,
// anything else TSV), so commands need no separate format flag.
func FormatForPath(path string) string {
	if strings.EqualFold(filepath.Ext(path), ".json") {
		return FormatJSON
	}
	return FormatTSV
}

// WriteRankings writes rankings in format (FormatTSV or FormatJSON). Every
// ID is checked before anything is written, so an unwritable ID leaves w
// untouched rather than holding half a file.
func WriteRankings(w io.Writer, rankings []Ranking, format string) error {
	switch format {
	case FormatTSV:
		for i, rk := range rankings {
			if err := checkTSVID(rk.Query); err != nil {
				return fmt.Errorf("eval: ranking %d: query: %w", i, err)
			}
			if err := checkTSVLine(rk, i == 0); err != nil {
				return fmt.Errorf("eval: ranking %d: %w", i, err)
			}
			for j, ref := range rk.Refs {
				if err := checkTSVID(ref); err != nil {
					return fmt.Errorf("eval: query %q: ref %d: %w", rk.Query, j+1, err)
				}
			}
		}
		bw := bufio.NewWriter(w)
		for _, rk := range rankings {
			bw.WriteString(rk.Query)
			bw.WriteByte('\t')
			bw.WriteString(strings.Join(rk.Refs, ","))
			bw.WriteByte('\n')
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("eval: writing rankings: %w", err)
		}
		return nil
	case FormatJSON:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		buf.WriteString("[")
		for i, rk := range rankings {
			if rk.Query == "" {
				return fmt.Errorf("eval: ranking %d: empty query ID", i)
			}
			if err := checkJSONIDs(rk); err != nil {
				return fmt.Errorf("eval: ranking %d: %w", i, err)
			}
			if rk.Refs == nil {
				rk.Refs = []string{} // "refs": [] rather than null
			}
			if i > 0 {
				buf.WriteString(",")
			}
			buf.WriteString("\n")
			if err := enc.Encode(rk); err != nil {
				return fmt.Errorf("eval: query %q: %w", rk.Query, err)
			}
			buf.Truncate(buf.Len() - 1) // Encode's newline; the separator follows
		}
		buf.WriteString("\n]\n")
		if _, err := w.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("eval: writing rankings: %w", err)
		}
		return nil
	}
	return fmt.Errorf("eval: unknown rankings format %q (want %q or %q)", format, FormatTSV, FormatJSON)
}

// checkJSONIDs rejects empty reference IDs, which the reader refuses, and
// IDs that JSON would silently alter (invalid UTF-8 becomes U+FFFD), which
// would break the round trip.
func checkJSONIDs(rk Ranking) error {
	if !utf8.ValidString(rk.Query) {
		return fmt.Errorf("query ID %q is not valid UTF-8", rk.Query)
	}
	for j, ref := range rk.Refs {
		if ref == "" {
			return fmt.Errorf("query %q: empty reference ID at position %d", rk.Query, j+1)
		}
		if !utf8.ValidString(ref) {
			return fmt.Errorf("query %q: reference ID %q is not valid UTF-8", rk.Query, ref)
		}
	}
	return nil
}

func checkTSVID(id string) error {
	if id == "" {
		return errors.New("empty ID")
	}
	if i := strings.IndexAny(id, "\t,\r\n"); i >= 0 {
		return fmt.Errorf("ID %q contains %q, which the TSV format cannot hold", id, id[i])
	}
	return nil
}

// checkTSVLine rejects a ranking whose TSV line the reader would take for
// something else: a blank line (skipped), or, first in the file, a line
// starting with '[' or '{' (taken for JSON).
func checkTSVLine(rk Ranking, first bool) error {
	line := rk.Query + "\t" + strings.Join(rk.Refs, ",")
	if strings.TrimSpace(line) == "" {
		return fmt.Errorf("query %q: its line would be read as a blank line", rk.Query)
	}
	if t := strings.TrimLeft(line, " \t"); first && (t[0] == '[' || t[0] == '{') {
		return fmt.Errorf("query %q: a TSV file starting with %q would be read as JSON; write JSON instead", rk.Query, t[0])
	}
	return nil
}

// ReadRankings reads a rankings file written by WriteRankings (or by hand),
// telling the formats apart by content: JSON if the first non-space byte is
// '[', else TSV. Blank TSV lines and a trailing '\r' are ignored. It checks
// syntax only; Score checks the IDs against the labels.
func ReadRankings(path string) ([]Ranking, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	r, err := ParseRankings(f)
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", path, err)
	}
	return r, nil
}

// ParseRankings is ReadRankings for a stream, such as standard input.
func ParseRankings(r io.Reader) ([]Ranking, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	// Peek, not read, past leading whitespace: TSV needs every byte (a line
	// may start with a tab-less query ID) and its line numbers.
	for n := 1; ; n++ {
		buf, err := br.Peek(n)
		if len(buf) < n {
			if err == io.EOF {
				return nil, nil // empty or only whitespace
			}
			if err == bufio.ErrBufferFull {
				return parseTSV(br)
			}
			return nil, err
		}
		switch buf[n-1] {
		case ' ', '\t', '\r', '\n':
			continue
		case '[':
			return parseJSON(br)
		case '{':
			return nil, errors.New(`JSON rankings must be an array: [{"query": ..., "refs": [...]}]`)
		}
		return parseTSV(br)
	}
}

func parseJSON(r io.Reader) ([]Ranking, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var raw []struct {
		Query *string  `json:"query"`
		Refs  []string `json:"refs"`
	}
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("JSON rankings: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("JSON rankings: data after the array")
	}
	out := make([]Ranking, len(raw))
	for i, e := range raw {
		if e.Query == nil || *e.Query == "" {
			return nil, fmt.Errorf("JSON rankings: entry %d: missing or empty query", i)
		}
		if j := slices.Index(e.Refs, ""); j >= 0 {
			return nil, fmt.Errorf("JSON rankings: query %q: empty reference ID at position %d", *e.Query, j+1)
		}
		out[i] = Ranking{Query: *e.Query, Refs: e.Refs}
	}
	return out, nil
}

func parseTSV(r *bufio.Reader) ([]Ranking, error) {
	var out []Ranking
	for n := 1; ; n++ {
		line, err := r.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, err
		}
		if line == "" && err == io.EOF {
			return out, nil
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if strings.TrimSpace(line) != "" {
			rk, perr := parseTSVLine(line)
			if perr != nil {
				return nil, fmt.Errorf("line %d: %w", n, perr)
			}
			out = append(out, rk)
		}
		if err == io.EOF {
			return out, nil
		}
	}
}

func parseTSVLine(line string) (Ranking, error) {
	query, list, ok := strings.Cut(line, "\t")
	if !ok {
		return Ranking{}, errors.New("no tab between query ID and reference list")
	}
	if query == "" {
		return Ranking{}, errors.New("empty query ID")
	}
	if strings.Contains(list, "\t") {
		return Ranking{}, errors.New("more than one tab")
	}
	rk := Ranking{Query: query}
	if list == "" {
		return rk, nil
	}
	rk.Refs = strings.Split(list, ",")
	for i, ref := range rk.Refs {
		if ref == "" {
			return Ranking{}, fmt.Errorf("query %q: empty reference ID at position %d", query, i+1)
		}
	}
	return rk, nil
}
