package eval

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// Table renders the scores as a small aligned table for terminals and logs.
func (s Scores) Table() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range []struct {
		name string
		v    float64
	}{
		{"mAP", s.MAP},
		{"mAP@1000", s.MAPAt1000},
		{"MRR", s.MRR},
		{"R@1", s.R1},
		{"R@5", s.R5},
		{"R@10", s.R10},
	} {
		fmt.Fprintf(tw, "%s\t%.4f\n", r.name, r.v)
	}
	fmt.Fprintf(tw, "queries\t%d\n", s.Queries)
	if s.Missing > 0 {
		fmt.Fprintf(tw, "missing\t%d (scored 0)\n", s.Missing)
	}
	tw.Flush()
	return b.String()
}
