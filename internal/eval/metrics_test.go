package eval

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func relSet(ids ...string) func(string) bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return func(id string) bool { return m[id] }
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestAveragePrecision(t *testing.T) {
	list := []string{"a", "b", "c", "d", "e"}
	ace := relSet("a", "c", "e")
	cases := []struct {
		name string
		refs []string
		rel  func(string) bool
		nRel int
		k    int
		want float64
	}{
		// Hits at ranks 1, 3, 5: P = 1/1, 2/3, 3/5.
		{"all relevant retrieved", list, ace, 3, 0, (1.0 + 2.0/3 + 3.0/5) / 3}, // 34/45
		{"one relevant not retrieved", list, ace, 4, 0, (1.0 + 2.0/3 + 3.0/5) / 4},
		{"cut at 1", list, ace, 3, 1, 1.0 / 3},
		{"cut at 2", list, ace, 3, 2, 1.0 / 3},
		{"cut at 3", list, ace, 3, 3, (1.0 + 2.0/3) / 3},
		{"cut beyond list", list, ace, 3, 50, 34.0 / 45},
		{"negative k is whole list", list, ace, 3, -1, 34.0 / 45},
		// R > k: even a perfect list cannot reach 1 (R unchanged by the cut).
		{"perfect list, R > k", []string{"a", "c", "e"}, ace, 3, 2, 2.0 / 3},
		{"perfect list", []string{"a", "c", "e", "b"}, ace, 3, 0, 1},
		{"late single hit", []string{"b", "d", "a"}, relSet("a"), 1, 0, 1.0 / 3},
		{"no hits", []string{"b", "d"}, ace, 3, 0, 0},
		{"empty list", nil, ace, 3, 0, 0},
		{"R = 0", list, ace, 0, 0, 0},
		{"nil isRel", list, nil, 3, 0, 0},
	}
	for _, c := range cases {
		if got := AveragePrecision(c.refs, c.rel, c.nRel, c.k); !near(got, c.want) {
			t.Errorf("%s: AveragePrecision = %v, want %v", c.name, got, c.want)
		}
	}
	if !near(34.0/45, 0.7555555555555555) {
		t.Fatal("hand arithmetic")
	}
}

func TestRecallAt(t *testing.T) {
	refs := []string{"x", "y", "a", "z"}
	rel := relSet("a")
	for k, want := range map[int]float64{0: 0, 1: 0, 2: 0, 3: 1, 5: 1, 10: 1} {
		if got := RecallAt(refs, rel, k); got != want {
			t.Errorf("RecallAt(k=%d) = %v, want %v", k, got, want)
		}
	}
	if got := RecallAt(refs, relSet("nope"), 10); got != 0 {
		t.Errorf("RecallAt without hits = %v, want 0", got)
	}
	if got := RecallAt(refs, rel, -1); got != 0 {
		t.Errorf("RecallAt(k=-1) = %v, want 0", got)
	}
}

func TestReciprocalRank(t *testing.T) {
	cases := []struct {
		name     string
		refs     []string
		rel      func(string) bool
		firstHit int
		want     float64
	}{
		{"hit first", []string{"a", "x"}, relSet("a"), 1, 1},
		{"hit third", []string{"x", "y", "a", "b"}, relSet("a", "b"), 3, 1.0 / 3},
		// Only the first relevant reference counts: b at rank 4 adds nothing.
		{"two hits, first at 2", []string{"x", "a", "y", "b"}, relSet("a", "b"), 2, 0.5},
		{"no hit", []string{"x", "y"}, relSet("a"), 0, 0},
		{"empty list", nil, relSet("a"), 0, 0},
		{"nil isRel", []string{"a"}, nil, 0, 0},
	}
	for _, c := range cases {
		if got := FirstHit(c.refs, c.rel); got != c.firstHit {
			t.Errorf("%s: FirstHit = %d, want %d", c.name, got, c.firstHit)
		}
		if got := ReciprocalRank(c.refs, c.rel); !near(got, c.want) {
			t.Errorf("%s: ReciprocalRank = %v, want %v", c.name, got, c.want)
		}
	}
	// One relevant reference: RR equals AP, which is why a catalogue of one
	// image per product reports MRR.
	one := []string{"x", "y", "z", "a"}
	if rr, ap := ReciprocalRank(one, relSet("a")), AveragePrecision(one, relSet("a"), 1, 0); !near(rr, ap) || !near(rr, 0.25) {
		t.Errorf("single relevant: RR %v, AP %v; want both 1/4", rr, ap)
	}
}

var (
	testQueries = map[string]string{"q1": "A", "q2": "B", "q3": "A"}
	testRefs    = map[string]string{"a1": "A", "a2": "A", "b1": "B", "c1": "C", "c2": "C"}
)

func TestScore(t *testing.T) {
	rankings := []Ranking{
		// R = 2; hits at ranks 2 and 4: AP = (1/2 + 2/4) / 2 = 0.5.
		{Query: "q1", Refs: []string{"c1", "a1", "b1", "a2"}},
		// R = 1; hit at rank 1: AP = 1.
		{Query: "q2", Refs: []string{"b1", "c2"}},
		// q3 is missing: AP 0, no recall.
	}
	ev, err := Evaluate(rankings, testQueries, testRefs)
	if err != nil {
		t.Fatal(err)
	}
	s := ev.Scores
	// RR: q1 1/2, q2 1, q3 0: MRR = 1.5/3.
	want := Scores{MAP: 0.5, MAPAt1000: 0.5, MRR: 0.5, R1: 1.0 / 3, R5: 2.0 / 3, R10: 2.0 / 3, Queries: 3, Missing: 1}
	if !near(s.MAP, want.MAP) || !near(s.MAPAt1000, want.MAPAt1000) || !near(s.MRR, want.MRR) || !near(s.R1, want.R1) ||
		!near(s.R5, want.R5) || !near(s.R10, want.R10) || s.Queries != want.Queries || s.Missing != want.Missing {
		t.Errorf("Scores = %+v, want %+v", s, want)
	}
	wantPQ := []QueryResult{
		{Query: "q1", Label: "A", Relevant: 2, AP: 0.5, APAt1000: 0.5, FirstHit: 2, RR: 0.5},
		{Query: "q2", Label: "B", Relevant: 1, AP: 1, APAt1000: 1, FirstHit: 1, RR: 1},
		{Query: "q3", Label: "A", Relevant: 2, Missing: true},
	}
	if fmt.Sprint(ev.PerQuery) != fmt.Sprint(wantPQ) {
		t.Errorf("PerQuery =\n%+v\nwant\n%+v", ev.PerQuery, wantPQ)
	}
	s2, err := Score(rankings, testQueries, testRefs)
	if err != nil || s2 != s {
		t.Errorf("Score = %+v, %v; want Evaluate's %+v", s2, err, s)
	}
}

func TestScoreRecallCutoffs(t *testing.T) {
	refs := map[string]string{"hit": "A"}
	var list []string
	for i := range 12 {
		id := fmt.Sprintf("n%02d", i)
		refs[id] = "B"
		list = append(list, id)
	}
	queries := map[string]string{}
	var rankings []Ranking
	// Query qN has its only relevant reference at rank N.
	for _, rank := range []int{1, 2, 5, 6, 10, 11} {
		q := fmt.Sprintf("q%d", rank)
		queries[q] = "A"
		l := append(append(append([]string{}, list[:rank-1]...), "hit"), list[rank-1:]...)
		rankings = append(rankings, Ranking{Query: q, Refs: l})
	}
	s, err := Score(rankings, queries, refs)
	if err != nil {
		t.Fatal(err)
	}
	if !near(s.R1, 1.0/6) || !near(s.R5, 3.0/6) || !near(s.R10, 5.0/6) {
		t.Errorf("R@1, R@5, R@10 = %v, %v, %v; want 1/6, 3/6, 5/6", s.R1, s.R5, s.R10)
	}
	wantMAP := (1.0 + 1.0/2 + 1.0/5 + 1.0/6 + 1.0/10 + 1.0/11) / 6
	if !near(s.MAP, wantMAP) {
		t.Errorf("MAP = %v, want %v", s.MAP, wantMAP)
	}
	// One relevant reference per query: MRR = mAP.
	if !near(s.MRR, wantMAP) {
		t.Errorf("MRR = %v, want %v", s.MRR, wantMAP)
	}
}

func TestScoreMAPAt1000(t *testing.T) {
	// 1,500 relevant references ranked perfectly: AP = 1, but the list cut
	// at 1,000 keeps R = 1,500, so AP@1000 = 1000/1500.
	refs := map[string]string{}
	var list []string
	for i := range 1500 {
		id := fmt.Sprintf("r%04d", i)
		refs[id] = "A"
		list = append(list, id)
	}
	s, err := Score([]Ranking{{Query: "q", Refs: list}}, map[string]string{"q": "A"}, refs)
	if err != nil {
		t.Fatal(err)
	}
	if !near(s.MAP, 1) || !near(s.MAPAt1000, 2.0/3) {
		t.Errorf("MAP, MAPAt1000 = %v, %v; want 1, 2/3", s.MAP, s.MAPAt1000)
	}
}

func TestScoreErrors(t *testing.T) {
	cases := []struct {
		name     string
		rankings []Ranking
		queries  map[string]string
		refs     map[string]string
		subs     []string
	}{
		{"unknown query", []Ranking{{Query: "qx", Refs: []string{"a1"}}}, testQueries, testRefs, []string{`unknown query "qx"`}},
		{"duplicate query", []Ranking{{Query: "q1"}, {Query: "q2"}, {Query: "q1"}}, testQueries, testRefs, []string{`query "q1" is ranked twice`}},
		{"duplicate ref", []Ranking{{Query: "q2", Refs: []string{"a1", "b1", "a1"}}}, testQueries, testRefs, []string{`query "q2"`, `"a1" appears more than once`}},
		{"unknown ref", []Ranking{{Query: "q2", Refs: []string{"a1", "zz"}}}, testQueries, testRefs, []string{`query "q2"`, "rank 2", `"zz"`}},
		{"no relevant reference", nil, map[string]string{"q1": "A", "q9": "Z", "q8": "Y"}, testRefs, []string{"2 queries have no relevant reference", `q8 (label "Y")`, `q9 (label "Z")`}},
		{"empty query label", nil, map[string]string{"q1": ""}, testRefs, []string{`query "q1" has an empty label`}},
		{"empty ref label", nil, testQueries, map[string]string{"a1": "A", "b1": ""}, []string{`reference "b1" has an empty label`}},
		{"no queries", nil, nil, testRefs, []string{"no labeled queries"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Score(c.rankings, c.queries, c.refs)
			if err == nil {
				t.Fatalf("Score succeeded, want error containing %q", c.subs)
			}
			for _, sub := range c.subs {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not contain %q", err, sub)
				}
			}
		})
	}
}

func TestListSome(t *testing.T) {
	if got := listSome([]string{"a", "b", "c"}, 2); got != "a, b, and 1 more" {
		t.Errorf("listSome = %q", got)
	}
}

func TestTable(t *testing.T) {
	s := Scores{MAP: 0.5, MAPAt1000: 0.25, MRR: 0.625, R1: 1.0 / 3, R5: 0.8, R10: 1, Queries: 80, Missing: 2}
	want := "" +
		"mAP       0.5000\n" +
		"mAP@1000  0.2500\n" +
		"MRR       0.6250\n" +
		"R@1       0.3333\n" +
		"R@5       0.8000\n" +
		"R@10      1.0000\n" +
		"queries   80\n" +
		"missing   2 (scored 0)\n"
	if got := s.Table(); got != want {
		t.Errorf("Table() =\n%s\nwant\n%s", got, want)
	}
	s.Missing = 0
	if got := s.Table(); strings.Contains(got, "missing") {
		t.Errorf("Table() shows missing with none missing:\n%s", got)
	}
}

// TestAPRanks checks the shared core on hand-computed cases, including the
// min(R, k) denominator a phase-2 caller passes.
func TestAPRanks(t *testing.T) {
	for _, c := range []struct {
		ranks []int
		nRel  int
		want  float64
	}{
		{nil, 3, 0},
		{[]int{0, 1}, 2, 1},
		{[]int{0, 2}, 2, (1 + 2.0/3) / 2},
		{[]int{1}, 4, 0.5 / 4},
		{[]int{0, 1}, 0, 0},
		{[]int{0, 1}, min(5, 2), 1}, // R = 5 cut at k = 2: a perfect list
	} {
		if got := APRanks(c.ranks, c.nRel); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("APRanks(%v, %d) = %v, want %v", c.ranks, c.nRel, got, c.want)
		}
	}
	// The list form is the rank form on the same list.
	refs := []string{"a1", "b", "a2", "c", "a3"}
	isA := func(s string) bool { return s[0] == 'a' }
	if got, want := AveragePrecision(refs, isA, 4, 3), APRanks([]int{0, 2}, 4); got != want {
		t.Errorf("AveragePrecision %v != APRanks %v", got, want)
	}
}

func TestPRCurve(t *testing.T) {
	cases := []struct {
		name         string
		ranks        []int
		nRel, levels int
		want         []float64
	}{
		// Hits at positions 0, 2, 4 of R = 4: recall .25/.5/.75 at
		// precision 1, 2/3, 3/5; recall 1 is never reached.
		{"three of four", []int{0, 2, 4}, 4, 5, []float64{1, 1, 2.0 / 3, 3.0 / 5, 0}},
		// Interpolation: precision at a level is the best at any recall >= it.
		{"later hit more precise", []int{2, 3}, 2, 3, []float64{2.0 / 4, 2.0 / 4, 2.0 / 4}},
		{"single late hit", []int{3}, 1, 3, []float64{0.25, 0.25, 0.25}},
		{"perfect", []int{0, 1}, 2, 5, []float64{1, 1, 1, 1, 1}},
		{"no hit", nil, 2, 3, []float64{0, 0, 0}},
		{"one level", []int{0}, 1, 1, nil},
		{"R = 0", nil, 0, 3, nil},
	}
	for _, c := range cases {
		got := PRCurve(c.ranks, c.nRel, c.levels)
		if len(got) != len(c.want) {
			t.Errorf("%s: PRCurve = %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if !near(got[i], c.want[i]) {
				t.Errorf("%s: PRCurve = %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
	if got := RelevantRanks([]string{"a", "x", "b"}, relSet("a", "b")); fmt.Sprint(got) != "[0 2]" {
		t.Errorf("RelevantRanks = %v, want [0 2]", got)
	}
}
