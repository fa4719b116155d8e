package main

import (
	"bytes"
	"strings"
	"testing"

	"prodsearch/internal/bundle"
	"prodsearch/internal/eval"
)

func TestCheckDiff(t *testing.T) {
	ms := []compareModel{
		{"committed", bundle.Bundle{Recipes: []bundle.Recipe{{Shape: bundle.ShapeOne, Val: &bundle.ValScores{MAP: 0.80}}}}},
		{"rebuilt", bundle.Bundle{Recipes: []bundle.Recipe{{Shape: bundle.ShapeOne, Val: &bundle.ValScores{MAP: 0.805}}}}},
	}
	ts := []compareTask{{name: "photos"}}
	same := [][]eval.Scores{{{MAP: 0.9, MRR: 0.95, R1: 1}}, {{MAP: 0.905, MRR: 0.95, R1: 1}}}
	var out bytes.Buffer
	if err := checkDiff(&out, ms, ts, same, 0.01); err != nil {
		t.Fatalf("within tolerance: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "validation one-image mAP") {
		t.Fatalf("validation figures not compared:\n%s", out.String())
	}
	far := [][]eval.Scores{{{MAP: 0.9, MRR: 0.95, R1: 1}}, {{MAP: 0.85, MRR: 0.95, R1: 1}}}
	err := checkDiff(&out, ms, ts, far, 0.01)
	if err == nil || !strings.Contains(err.Error(), "photos mAP") {
		t.Fatalf("a 0.05 mAP gap passed: %v", err)
	}
}

func TestCompareRefusesBadFlags(t *testing.T) {
	var out bytes.Buffer
	for _, args := range [][]string{
		{"compare"},
		{"compare", "--task", "nocolon=q.tsv"},
		{"compare", "--task", "a=q.tsv:r.tsv", "--max-diff", "0.1", "--model", "x=coral_mnv1"},
	} {
		if err := dispatch(t.Context(), args, &out, &out); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
