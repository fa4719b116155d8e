package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"prodsearch/internal/bundle"
	"prodsearch/internal/dataset"
	"prodsearch/internal/eval"
)

// addReportFlag adds --report to a command that scores.
func addReportFlag(fs *flag.FlagSet) *string {
	return fs.String("report", "", "also write an HTML evaluation report to this `file`: summary, mean precision-recall curve, and every query with its top 10 marked right or wrong, worst first (images are linked relative to the file, not copied)")
}

// writeReport writes the HTML report to path, if one was asked for; what
// describes the ranking (bundle or ranking file) heads it.
func writeReport(path string, stderr io.Writer, ev eval.Evaluation, rk []eval.Ranking, qs, rs *dataset.Set, what string) error {
	if path == "" {
		return nil
	}
	images := func(s *dataset.Set) map[string]string {
		m := make(map[string]string, len(s.Items))
		for _, it := range s.Items {
			m[it.ID] = it.Path
		}
		return m
	}
	r := eval.Report{
		Title:       fmt.Sprintf("prodsearch: %s against %s", filepath.Base(qs.Source), filepath.Base(rs.Source)),
		Notes:       []string{what, "queries " + qs.Source + ", references " + rs.Source},
		Eval:        ev,
		Rankings:    rk,
		RefLabels:   rs.Labels(),
		QueryImages: images(qs),
		RefImages:   images(rs),
		Dir:         filepath.Dir(path),
	}
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		return err
	}
	if err := bundle.WriteFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("writing the report %s: %w", path, err)
	}
	fmt.Fprintf(stderr, "report: %s (%d KB)\n", path, (buf.Len()+1023)/1024)
	return nil
}
