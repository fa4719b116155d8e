package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"prodsearch/internal/backbone"
	"prodsearch/internal/testenv"
)

// TestSoakServe builds prodsearch, serves a new store with the real default
// backbone on loopback and runs the soak: 8 clients for
// $PRODSEARCH_SOAK_DURATION (default 12s) after a warm-up of a third of
// that. It fails on any transport error, 5xx or unexpected status, a lost
// item or ghost, RSS growth past the bound, an unclean shutdown, or a
// reopened store that differs from what the API acknowledged.
func TestSoakServe(t *testing.T) {
	models, lib := testenv.Models(t)
	d := testenv.Duration(t, testenv.EnvSoakDuration, 12*time.Second)
	bin, err := testenv.GoBuild(t.TempDir(), "prodsearch/cmd/prodsearch")
	testenv.RequireBuilt(t, err)
	t.Setenv(backbone.EnvLibrary, lib)
	t.Setenv(backbone.EnvModels, models)

	out := filepath.Join(t.TempDir(), "soak.json")
	var stdout bytes.Buffer
	err = dispatch(context.Background(), []string{"soak", "-duration", d.String(), "-warmup", (d / 3).String(), "-clients", "8", "-items", "16",
		"-prodsearch", bin, "-json", out}, &stdout)
	t.Log("\n" + stdout.String())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep soakReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 || rep.RSSWarm <= 0 || rep.RSSEnd <= 0 || rep.RSSEnd > rep.RSSLimit {
		t.Errorf("report: %d errors, RSS %d -> %d (limit %d)", rep.Errors, rep.RSSWarm, rep.RSSEnd, rep.RSSLimit)
	}
	for code := range rep.Status {
		if !strings.HasPrefix(code, "2") && !strings.HasPrefix(code, "4") {
			t.Errorf("status %s seen", code)
		}
	}
	seen := map[string]int{}
	bad := 0
	for _, e := range rep.Endpoints {
		seen[e.Name] = e.Count
		if strings.HasPrefix(e.Name, "bad: ") {
			bad += e.Count
		}
		if e.P50 <= 0 || e.P99 < e.P50 {
			t.Errorf("%s: p50 %v, p99 %v", e.Name, e.P50, e.P99)
		}
	}
	for _, op := range []string{"search", "search (photo not stored)", "add", "add batch", "replace", "remove", "list", "get"} {
		if seen[op] == 0 {
			t.Errorf("no %q requests in the soak", op)
		}
	}
	if bad == 0 {
		t.Error("no bad requests in the soak")
	}
	for _, c := range []string{"own photo found in top k", "search results checked for ghosts", "count within the model's bounds",
		"final catalogue equals the model", "reopened store equals the model"} {
		if rep.Checks[c] == 0 {
			t.Errorf("check %q never ran", c)
		}
	}
}
