package eval

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// sameRankings compares rankings, treating a nil and an empty reference
// list alike (the formats cannot tell them apart).
func sameRankings(a, b []Ranking) bool {
	return slices.EqualFunc(a, b, func(x, y Ranking) bool {
		return x.Query == y.Query && slices.Equal(x.Refs, y.Refs)
	})
}

// FuzzRankings feeds arbitrary bytes to the rankings reader (TSV or JSON,
// told apart by content). Accepted rankings must hold only non-empty IDs,
// and writing them in either format must either be refused for a reason
// that format documents or read back unchanged.
func FuzzRankings(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rks, err := ParseRankings(bytes.NewReader(data))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// TSV cannot hold a line the reader would skip as blank, nor a
		// first line that looks like the start of a JSON file.
		tsvOK, jsonOK := true, true
		for i, rk := range rks {
			line := rk.Query + "\t" + strings.Join(rk.Refs, ",")
			tsvOK = tsvOK && strings.TrimSpace(line) != ""
			if t := strings.TrimLeft(line, " \t"); i == 0 && t != "" {
				tsvOK = tsvOK && t[0] != '[' && t[0] != '{'
			}
			ids := append([]string{rk.Query}, rk.Refs...)
			for _, id := range ids {
				if id == "" {
					t.Fatalf("accepted an empty ID in %+v", rk)
				}
				tsvOK = tsvOK && !strings.ContainsAny(id, "\t,\r\n")
				jsonOK = jsonOK && utf8.ValidString(id)
			}
		}
		for _, c := range []struct {
			format string
			ok     bool
		}{{FormatTSV, tsvOK}, {FormatJSON, jsonOK}} {
			var buf bytes.Buffer
			err := WriteRankings(&buf, rks, c.format)
			if (err == nil) != c.ok {
				t.Fatalf("%s: write error %v, want error %v, for %q", c.format, err, !c.ok, rks)
			}
			if err != nil {
				if buf.Len() != 0 {
					t.Fatalf("%s: wrote %q before failing", c.format, buf.Bytes())
				}
				continue
			}
			again, err := ParseRankings(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("%s: reading back %q: %v", c.format, buf.Bytes(), err)
			}
			if !sameRankings(again, rks) {
				t.Fatalf("%s: round trip %q changed\n%q\nto\n%q", c.format, buf.Bytes(), rks, again)
			}
		}
	})
}
