package eval

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Row is one leaderboard entry: which run, on which data, how it scored, and
// a hash of the settings so equal scores from different settings stay apart.
// The leaderboard file is JSON Lines, one Row per line; readers ignore
// fields they do not know, so rows can grow fields later.
type Row struct {
	Time       time.Time `json:"time"`
	Run        string    `json:"run"`
	Checkpoint string    `json:"checkpoint"`
	Dataset    string    `json:"dataset"`
	MAP        float64   `json:"map"`
	MAPAt1000  float64   `json:"map@1000"`
	R1         float64   `json:"recall@1"`
	// MRR, R@5 and R@10 came later: rows written before have none, and
	// nil shows as "-" rather than as a score of 0.
	MRR          *float64 `json:"mrr,omitempty"`
	R5           *float64 `json:"recall@5,omitempty"`
	R10          *float64 `json:"recall@10,omitempty"`
	SettingsHash string   `json:"settings_hash"`
	Note         string   `json:"note,omitempty"`
}

// ScoreRow is the leaderboard row for s: every figure Scores has; the
// caller fills in who, what and when.
func ScoreRow(s Scores) Row {
	return Row{MAP: s.MAP, MAPAt1000: s.MAPAt1000, R1: s.R1, MRR: &s.MRR, R5: &s.R5, R10: &s.R10}
}

// SettingsHash is the short hash a Row records for a run's settings: the
// first 12 hex digits of the SHA-256 of their JSON encoding. Maps hash the
// same whatever their order; a struct hashes by field order, so compare
// hashes of the same settings type.
func SettingsHash(settings any) (string, error) {
	b, err := json.Marshal(settings)
	if err != nil {
		return "", fmt.Errorf("eval: hashing settings: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6]), nil
}

// AppendLeaderboard adds row to the leaderboard at path, creating the file
// (and its directory) if needed; a zero Time is set to now (UTC).
//
// The row goes out as a single write to a file opened O_APPEND, followed by
// fsync, so concurrent runs do not interleave rows and a crash can at worst
// leave a torn last line, which ReadLeaderboard skips. If the file does not
// end in a newline (a previous torn write), the row starts with one, so it
// stays whole.
func AppendLeaderboard(path string, row Row) error {
	if row.Time.IsZero() {
		row.Time = time.Now().UTC()
	}
	line, err := json.Marshal(row) // escapes newlines: one row, one line
	if err != nil {
		return fmt.Errorf("eval: leaderboard row: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("eval: leaderboard: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("eval: leaderboard: %w", err)
	}
	buf := make([]byte, 0, len(line)+2)
	if torn, err := lacksFinalNewline(f); err != nil {
		f.Close()
		return fmt.Errorf("eval: leaderboard %s: %w", path, err)
	} else if torn {
		buf = append(buf, '\n')
	}
	buf = append(buf, line...)
	buf = append(buf, '\n')
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("eval: appending to leaderboard %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("eval: syncing leaderboard %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("eval: closing leaderboard %s: %w", path, err)
	}
	return nil
}

// lacksFinalNewline reports whether f is non-empty and does not end in '\n'.
func lacksFinalNewline(f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() == 0 {
		return false, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], fi.Size()-1); err != nil {
		return false, err
	}
	return last[0] != '\n', nil
}

// TornLinesError reports leaderboard lines that were skipped because a write
// was cut short. ReadLeaderboard returns it together with the rows it could
// read, which are complete and usable.
type TornLinesError struct {
	Path  string
	Lines []int // 1-based line numbers
}

// Error lists the skipped lines so a warning can point at them.
func (e *TornLinesError) Error() string {
	nums := make([]string, len(e.Lines))
	for i, n := range e.Lines {
		nums[i] = fmt.Sprint(n)
	}
	return fmt.Sprintf("eval: leaderboard %s: skipped torn line(s) %s (interrupted writes)", e.Path, strings.Join(nums, ", "))
}

// ReadLeaderboard reads every row of the leaderboard at path, in file order.
//
// A line cut short by a crash is skipped and reported: ReadLeaderboard then
// returns the good rows together with a *TornLinesError, which callers can
// print as a warning (errors.As). A line counts as torn if it is the last
// line and has no newline, or if it is JSON cut off before its end (a torn
// line that later appends moved up). Any other bad line is an error naming
// path:line, and no rows are returned.
func ReadLeaderboard(path string) ([]Row, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	lines := bytes.Split(data, []byte("\n"))
	unterminated := len(lines) - 1 // index of the line with no newline, if not empty
	var rows []Row
	var torn []int
	for i, line := range lines {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var row Row
		err := json.Unmarshal(line, &row)
		if err == nil {
			rows = append(rows, row)
			continue
		}
		if i == unterminated || isTruncatedJSON(err, line) {
			torn = append(torn, i+1)
			continue
		}
		return nil, fmt.Errorf("eval: %s:%d: %w", path, i+1, err)
	}
	if len(torn) > 0 {
		return rows, &TornLinesError{Path: path, Lines: torn}
	}
	return rows, nil
}

// isTruncatedJSON reports whether err says the JSON ended too early, as a
// line cut off mid-write does.
func isTruncatedJSON(err error, line []byte) bool {
	var syn *json.SyntaxError
	return errors.As(err, &syn) && syn.Offset >= int64(len(bytes.TrimRight(line, " \t\r")))
}

// SortRows orders rows best first: mAP descending, then R@1 descending.
// Ties keep their order (for a file, oldest first).
func SortRows(rows []Row) {
	slices.SortStableFunc(rows, func(a, b Row) int {
		if c := cmp.Compare(b.MAP, a.MAP); c != 0 {
			return c
		}
		return cmp.Compare(b.R1, a.R1)
	})
}

// FormatLeaderboard renders rows, in the order given, as an aligned text
// table with a rank column; sort them with SortRows first for a ranking.
func FormatLeaderboard(rows []Row) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\ttime (UTC)\trun\tcheckpoint\tdataset\tmAP\tmAP@1000\tMRR\tR@1\tR@5\tR@10\tsettings\tnote")
	for i, r := range rows {
		t := ""
		if !r.Time.IsZero() {
			t = r.Time.UTC().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.4f\t%.4f\t%s\t%.4f\t%s\t%s\t%s\t%s\n",
			i+1, t, cell(r.Run), cell(r.Checkpoint), cell(r.Dataset),
			r.MAP, r.MAPAt1000, optional(r.MRR), r.R1, optional(r.R5), optional(r.R10), cell(r.SettingsHash), cell(r.Note))
	}
	tw.Flush()
	return b.String()
}

// optional formats a figure that older rows lack.
func optional(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.4f", *v)
}

// cell keeps a free-text field on one table row: control characters (tabs,
// newlines) become spaces, and an empty field shows as "-".
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
