// Package eval holds the one definition of the retrieval metrics (mAP,
// mAP@1000, MRR, Recall@K), the ranking-file contract, score reports and the
// leaderboard, so every command scores and records runs the same way.
//
// Relevance is by label: a reference is relevant to a query when both carry
// the same label. The task is open set: query labels need not appear in
// training, only among the references.
package eval

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// CutoffK is the list length the hackathon scored (mAP@1000) and the
// longest list its submissions carried.
const CutoffK = 1000

// Ranking is one query's answer: reference IDs, best first.
type Ranking struct {
	Query string   `json:"query"`
	Refs  []string `json:"refs"`
}

// Scores are means over every labeled query; a query without a ranking
// counts as 0 in each metric and is counted in Missing, so dropping hard
// queries cannot raise a score.
type Scores struct {
	MAP       float64 `json:"map"`
	MAPAt1000 float64 `json:"map@1000"`
	MRR       float64 `json:"mrr"` // mean reciprocal rank of the first relevant reference
	R1        float64 `json:"recall@1"`
	R5        float64 `json:"recall@5"`
	R10       float64 `json:"recall@10"`
	Queries   int     `json:"queries"`
	Missing   int     `json:"missing,omitempty"`
}

// QueryResult is one query's contribution, for per-query reports and
// error analysis.
type QueryResult struct {
	Query    string  `json:"query"`
	Label    string  `json:"label"`
	Relevant int     `json:"relevant"` // R: relevant references in the whole reference set
	AP       float64 `json:"ap"`
	APAt1000 float64 `json:"ap@1000"`
	FirstHit int     `json:"first_hit"` // 1-based rank of the first relevant reference; 0 if none
	RR       float64 `json:"rr"`        // reciprocal rank: 1/FirstHit, 0 if none
	Missing  bool    `json:"missing,omitempty"`
}

// Evaluation is Scores together with the per-query results they average.
type Evaluation struct {
	Scores   Scores        `json:"scores"`
	PerQuery []QueryResult `json:"per_query"` // sorted by query ID
}

// AveragePrecision scores one ranked list:
//
//	AP = (1/nRel) * sum over ranks i of P(i) * rel(i)
//
// where P(i) is the fraction of the first i references that are relevant and
// nRel (R) is the number of relevant references in the whole reference set,
// not just in the list, so relevant references the list misses pull AP down.
//
// k > 0 cuts the list at k with R unchanged, as the hackathon scored
// mAP@1000: when R > k even a perfect list scores k/R, not 1. (Some other
// benchmarks divide by min(R, k) instead; this package does not, but a
// caller that must can pass that denominator to APRanks.) k <= 0 scores the
// whole list.
//
// The caller must pass a list without repeated IDs and an nRel that counts
// every relevant reference, or AP can exceed 1; Score checks both. nRel <= 0
// or a nil isRel gives 0.
func AveragePrecision(refs []string, isRel func(string) bool, nRel, k int) float64 {
	if nRel <= 0 || isRel == nil {
		return 0
	}
	n := len(refs)
	if k > 0 && k < n {
		n = k
	}
	return APRanks(RelevantRanks(refs[:n], isRel), nRel)
}

// RelevantRanks lists the 0-based positions of the relevant references in
// refs, ascending: the input of APRanks and PRCurve.
func RelevantRanks(refs []string, isRel func(string) bool) []int {
	var ranks []int
	for i, r := range refs {
		if isRel(r) {
			ranks = append(ranks, i)
		}
	}
	return ranks
}

// PRCurve is one query's interpolated precision-recall curve sampled at
// recall 0, 1/(levels-1), ..., 1: at recall level rho it is the highest
// precision the list reaches at any recall >= rho, and 0 beyond the list's
// last relevant reference. After the j-th relevant reference (0-based), at
// 0-based position ranks[j], recall is (j+1)/nRel and precision
// (j+1)/(ranks[j]+1). Averaged over queries it is the mean PR curve whose
// area approximates mAP. levels < 2 or nRel <= 0 gives nil.
func PRCurve(ranks []int, nRel, levels int) []float64 {
	if levels < 2 || nRel <= 0 {
		return nil
	}
	curve := make([]float64, levels)
	level := func(i int) float64 { return float64(i) / float64(levels-1) }
	const eps = 1e-12 // a level equal to a hit's recall belongs to that hit
	// Walk the hits from the last, keeping the best precision at this or a
	// later hit; levels in (recall of the previous hit, recall of this hit]
	// take it.
	next, best := levels-1, 0.0
	for j := len(ranks) - 1; j >= 0; j-- {
		best = max(best, float64(j+1)/float64(ranks[j]+1))
		for next >= 0 && level(next) > float64(j+1)/float64(nRel)+eps {
			next-- // beyond the last hit's recall: stays 0
		}
		for next >= 0 && level(next) > float64(j)/float64(nRel)+eps {
			curve[next] = best
			next--
		}
	}
	for ; next >= 0; next-- {
		curve[next] = best
	}
	return curve
}

// APRanks is the one AP computation every caller shares (after
// cnnimageretrieval-pytorch's compute_ap(ranks, nres), without its
// trapezoidal interpolation): ranks are the 0-based positions at which the
// relevant references stand in a ranked list, ascending, and nRel is the
// denominator, normally R (see AveragePrecision):
//
//	AP = (1/nRel) * sum over j of (j+1) / (ranks[j]+1)
//
// It takes positions rather than a list so that callers holding index hits,
// class ids or a partial sort need not build ID lists. nRel <= 0 gives 0.
func APRanks(ranks []int, nRel int) float64 {
	if nRel <= 0 {
		return 0
	}
	var sum float64
	for j, r := range ranks {
		sum += float64(j+1) / float64(r+1)
	}
	return sum / float64(nRel)
}

// Score computes the summary metrics; see Evaluate for the rules.
func Score(rankings []Ranking, queryLabels, refLabels map[string]string) (Scores, error) {
	ev, err := Evaluate(rankings, queryLabels, refLabels)
	return ev.Scores, err
}

// Evaluate scores rankings against labels and keeps the per-query results.
//
// The query set is queryLabels: a query there without a ranking scores 0 and
// is counted in Scores.Missing. It is an error for a ranking to name a query
// not in queryLabels, for two rankings to share a query, for a list to
// repeat a reference or name one not in refLabels, for any label to be
// empty, and for a query to have no relevant reference at all (R = 0 would
// make AP undefined; such queries are listed so the split can be fixed
// rather than silently scored).
func Evaluate(rankings []Ranking, queryLabels, refLabels map[string]string) (Evaluation, error) {
	if len(queryLabels) == 0 {
		return Evaluation{}, fmt.Errorf("eval: no labeled queries")
	}
	relevant := make(map[string]int) // label -> R
	for id, label := range refLabels {
		if label == "" {
			return Evaluation{}, fmt.Errorf("eval: reference %q has an empty label", id)
		}
		relevant[label]++
	}
	var noRel []string
	for q, label := range queryLabels {
		if label == "" {
			return Evaluation{}, fmt.Errorf("eval: query %q has an empty label", q)
		}
		if relevant[label] == 0 {
			noRel = append(noRel, fmt.Sprintf("%s (label %q)", q, label))
		}
	}
	if len(noRel) > 0 {
		slices.Sort(noRel)
		return Evaluation{}, fmt.Errorf("eval: %d queries have no relevant reference: %s", len(noRel), listSome(noRel, 10))
	}

	ranked := make(map[string]QueryResult, len(rankings))
	for _, rk := range rankings {
		label, ok := queryLabels[rk.Query]
		if !ok {
			return Evaluation{}, fmt.Errorf("eval: ranking for unknown query %q", rk.Query)
		}
		if _, dup := ranked[rk.Query]; dup {
			return Evaluation{}, fmt.Errorf("eval: query %q is ranked twice", rk.Query)
		}
		seen := make(map[string]struct{}, len(rk.Refs))
		for i, ref := range rk.Refs {
			if _, ok := refLabels[ref]; !ok {
				return Evaluation{}, fmt.Errorf("eval: query %q: rank %d: unknown or unlabeled reference %q", rk.Query, i+1, ref)
			}
			if _, dup := seen[ref]; dup {
				return Evaluation{}, fmt.Errorf("eval: query %q: reference %q appears more than once", rk.Query, ref)
			}
			seen[ref] = struct{}{}
		}
		isRel := func(ref string) bool { return refLabels[ref] == label }
		r := relevant[label]
		ranked[rk.Query] = QueryResult{
			Query:    rk.Query,
			Label:    label,
			Relevant: r,
			AP:       AveragePrecision(rk.Refs, isRel, r, 0),
			APAt1000: AveragePrecision(rk.Refs, isRel, r, CutoffK),
			FirstHit: FirstHit(rk.Refs, isRel),
			RR:       ReciprocalRank(rk.Refs, isRel),
		}
	}

	ev := Evaluation{PerQuery: make([]QueryResult, 0, len(queryLabels))}
	for q, label := range queryLabels {
		res, ok := ranked[q]
		if !ok {
			res = QueryResult{Query: q, Label: label, Relevant: relevant[label], Missing: true}
			ev.Scores.Missing++
		}
		ev.PerQuery = append(ev.PerQuery, res)
	}
	// Sum in query order: map order would change the float sums' last bits
	// from run to run.
	slices.SortFunc(ev.PerQuery, func(a, b QueryResult) int { return cmp.Compare(a.Query, b.Query) })
	for _, res := range ev.PerQuery {
		ev.Scores.MAP += res.AP
		ev.Scores.MAPAt1000 += res.APAt1000
		ev.Scores.MRR += res.RR
		ev.Scores.R1 += recallWithin(res.FirstHit, 1)
		ev.Scores.R5 += recallWithin(res.FirstHit, 5)
		ev.Scores.R10 += recallWithin(res.FirstHit, 10)
	}
	n := float64(len(queryLabels))
	ev.Scores.Queries = len(queryLabels)
	ev.Scores.MAP /= n
	ev.Scores.MAPAt1000 /= n
	ev.Scores.MRR /= n
	ev.Scores.R1 /= n
	ev.Scores.R5 /= n
	ev.Scores.R10 /= n
	return ev, nil
}

// FirstHit is the 1-based rank of the first relevant reference in refs, 0
// when there is none. Recall@K and the reciprocal rank are both read off it.
func FirstHit(refs []string, isRel func(string) bool) int {
	if isRel == nil {
		return 0
	}
	for i, r := range refs {
		if isRel(r) {
			return i + 1
		}
	}
	return 0
}

// RecallAt is Recall@k for one list: 1 if any of the first k references is
// relevant, else 0. Its mean over queries is what a shop reads as "the
// right product in the first k".
func RecallAt(refs []string, isRel func(string) bool, k int) float64 {
	return recallWithin(FirstHit(refs[:min(max(k, 0), len(refs))], isRel), k)
}

// ReciprocalRank is 1/rank of the first relevant reference, 0 when the list
// has none; its mean over queries is MRR. With exactly one relevant
// reference per query (one catalogue image per product) it equals AP.
func ReciprocalRank(refs []string, isRel func(string) bool) float64 {
	if h := FirstHit(refs, isRel); h > 0 {
		return 1 / float64(h)
	}
	return 0
}

// recallWithin is Recall@k given the first hit's rank.
func recallWithin(firstHit, k int) float64 {
	if firstHit > 0 && firstHit <= k {
		return 1
	}
	return 0
}

// listSome joins up to n items and says how many were left out.
func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s, and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
