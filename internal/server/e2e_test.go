package server

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"prodsearch/internal/bundle"
	"prodsearch/internal/ingest"
	"prodsearch/internal/store"
	"prodsearch/internal/store/storetest"
	"prodsearch/internal/testenv"
)

// The end-to-end test drives the real page in headless Chromium: it indexes
// GroceryStore reference photos with the real backbone, uploads a query
// photo through the file input, and checks that the first result has the
// query's label. Screenshots are kept in the artifacts directory.
//
// Environment:
//
//	PRODSEARCH_E2E_DESCRIBER=fake   use the colour-histogram stand-in (no ONNX)
//	PRODSEARCH_E2E_BACKBONE=NAME    builtin backbone (default coral_mnv1)
//	PRODSEARCH_E2E_STRIDE=N         index every Nth reference (default 5; 1 = all 2,626)
//	PRODSEARCH_E2E_QUERY=I          use line I of query.tsv (default 0)
//	PRODSEARCH_ARTIFACTS=DIR        where screenshots go (default artifacts/ at the repo root)
//	PRODSEARCH_CHROMIUM=PATH        browser binary (default /usr/bin/chromium)
//	CI=true                         a missing browser, model or data fails instead of skipping

// e2eDescriber builds the describer the test indexes and searches with; the
// returned describer must be closed by the caller when it is an io.Closer.
func e2eDescriber(t *testing.T) store.Describer {
	t.Helper()
	if os.Getenv("PRODSEARCH_E2E_DESCRIBER") == "fake" {
		t.Log("using the colour-histogram stand-in describer, not the backbone")
		return storetest.NewColourDescriber(256)
	}
	testenv.Models(t)
	name := os.Getenv("PRODSEARCH_E2E_BACKBONE")
	if name == "" {
		name = "coral_mnv1"
	}
	b, err := bundle.Default(name)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := bundle.Open(b, bundle.Options{})
	testenv.Require(t, "ONNX Runtime backbone", err)
	t.Cleanup(func() { eng.Close() })
	return eng
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n >= 0 {
		return n
	}
	return def
}

func TestE2EChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	splits := testenv.GroceryStore(t)
	bctx := testenv.Browser(t, 1280, 1000)
	d := e2eDescriber(t)

	// Index a deterministic subset of the references through the same code
	// path as `prodsearch index add`.
	refs := testenv.Split(t, "reference.tsv").Items
	stride := max(1, envInt("PRODSEARCH_E2E_STRIDE", 5))
	var manifest strings.Builder
	n := 0
	taken := map[string]bool{} // GroceryStore repeats file names across train/val/test
	for i, r := range refs {
		if id := store.RefID(r.Path); i%stride == 0 && !taken[id] {
			taken[id] = true
			fmt.Fprintf(&manifest, "%s\t%s\n", r.Path, r.Label)
			n++
		}
	}
	tmp := t.TempDir()
	mpath := filepath.Join(tmp, "refs.tsv")
	if err := os.WriteFile(mpath, []byte(manifest.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// Product names from classes.csv, as `make shop` gives them.
	names := classNames(t, filepath.Join(splits, "..", "dataset", "classes.csv"))
	dir := filepath.Join(tmp, "store")
	ctx := context.Background()
	t0 := time.Now()
	srcs, err := ingest.Collect([]string{mpath}, "", ingest.IDsName, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dir, d.BundleID(), d.Dim())
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if _, err := ingest.Add(ctx, st, d, srcs, ingest.Options{Batch: 64, Workers: 2, Names: names}, &out); err != nil {
		t.Fatalf("index add: %v\n%s", err, out.String())
	}
	t.Logf("indexed %d of %d references in %v with %s", n, len(refs), time.Since(t0).Round(time.Millisecond), d.BundleID())

	defer st.Close()
	srv, err := New(Config{Store: st, Describer: d, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	queries := testenv.Split(t, "query.tsv").Items
	q := queries[min(envInt("PRODSEARCH_E2E_QUERY", 0), len(queries)-1)]

	if err := chromedp.Do(bctx, chromedp.Navigate(ts.URL+"/")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	tctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()
	shoot := func(name string) {
		t.Helper()
		testenv.Screenshot(tctx, t, name)
	}
	imagesLoaded := chromedp.Poll[bool](`Array.from(document.querySelectorAll('#results img, #catalogue img')).every(i => i.complete)`, chromedp.WithPollingTimeout(30*time.Second))
	// search sends q through the file input sel once the page has loaded
	// the catalogue (after the steps before), and waits for result cards.
	search := func(what, sel, failure string, before ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		err := chromedp.Do(tctx, append(before,
			chromedp.WaitVisible(chromedp.CSS("#drop")),
			testenv.Void(chromedp.Poll[bool](`document.querySelector('#status').textContent.includes('references')`)),
			chromedp.SetUploadFiles(chromedp.CSS(sel), []string{q.Path}),
			chromedp.WaitVisible(chromedp.CSS("#results .card")),
		)...)
		if err != nil {
			shoot(failure)
			t.Fatalf("%s: %v", what, err)
		}
	}

	search("search in the page", "#file", "e2e-failure.png")
	first, err := chromedp.Run(tctx, chromedp.AttributeValue(chromedp.CSS("#results .card"), "data-label"))
	if err != nil {
		t.Fatal(err)
	}
	firstID, _ := chromedp.Run(tctx, chromedp.AttributeValue(chromedp.CSS("#results .card"), "data-id"))
	timing, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS("#timing")))
	if _, err := chromedp.Run(tctx, imagesLoaded); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Log(err)
	}
	shoot("e2e-search.png")
	t.Logf("query %s (label %s): first result %s (label %s); %s", filepath.Base(q.Path), q.Label, firstID.Value, first.Value, timing)
	if first.Value != q.Label {
		t.Errorf("first result has label %q, want the query's label %q", first.Value, q.Label)
	}
	firstName, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS("#results .card .label")))
	if want := names[first.Value]; firstName != want {
		t.Errorf("first card is titled %q, want the product name %q", firstName, want)
	}

	// Enlarge the first result, then browse the catalogue.
	err = chromedp.Do(tctx,
		chromedp.Click(chromedp.CSS("#results .card")),
		chromedp.WaitVisible(chromedp.CSS("#viewer-img")),
		testenv.Void(chromedp.Poll[bool](`document.querySelector('#viewer-img').complete && document.querySelectorAll('#viewer-meta dt').length >= 4`)),
	)
	if err != nil {
		t.Fatalf("viewer: %v", err)
	}
	shoot("e2e-viewer.png")
	err = chromedp.Do(tctx,
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#viewer').close()`),
		chromedp.Click(chromedp.CSS(`.tab[data-tab="catalogue"]`)),
		chromedp.WaitVisible(chromedp.CSS("#catalogue .card")),
		chromedp.Click(chromedp.CSS("#next")),
		testenv.Void(chromedp.Poll[bool](`document.querySelector('#page-info').textContent.startsWith('25')`)),
	)
	if err != nil {
		t.Fatalf("catalogue: %v", err)
	}
	if _, err := chromedp.Run(tctx, imagesLoaded); err != nil {
		t.Log(err)
	}
	shoot("e2e-catalogue.png")

	// The same on a 360x740 phone: no sideways scroll on either tab, the
	// camera offered, names on the cards, errors in plain words.
	fits := `document.documentElement.scrollWidth <= window.innerWidth && document.body.scrollWidth <= window.innerWidth`
	search("phone search", "#camera", "e2e-phone-failure.png",
		chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(ts.URL+"/"))
	if _, err := chromedp.Run(tctx, imagesLoaded); err != nil {
		t.Log(err)
	}
	shoot("e2e-phone-search.png")
	checkPhone := func(where string) {
		t.Helper()
		ok, err := chromedp.Run(tctx, chromedp.Evaluate[bool](fits))
		if err != nil || !ok {
			w, _ := chromedp.Run(tctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
			t.Errorf("%s at 360 px: the page is %d px wide (%v)", where, w, err)
		}
	}
	checkPhone("search results")
	capture, _ := chromedp.Run(tctx, chromedp.Evaluate[string](`document.querySelector('#camera').getAttribute('capture') || ''`))
	accept, _ := chromedp.Run(tctx, chromedp.Evaluate[string](`document.querySelector('#camera').accept`))
	if capture == "" || accept != "image/*" {
		t.Errorf("camera input: capture=%q accept=%q, want capture and image/*", capture, accept)
	}
	phoneName, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS("#results .card .label")))
	if phoneName != names[q.Label] {
		t.Errorf("phone: first card is titled %q, want %q", phoneName, names[q.Label])
	}
	// A text file sent as a photo: the shopper reads plain words.
	notPhoto := filepath.Join(tmp, "notes.jpg")
	if err := os.WriteFile(notPhoto, []byte("hello, this is not a photo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(tctx,
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#toast').textContent = ''`),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{notPhoto}),
		testenv.Void(chromedp.Poll[bool](`document.querySelector('#toast').textContent.length > 0`)),
	)
	if err != nil {
		t.Fatalf("bad upload: %v", err)
	}
	toast, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS("#toast")))
	if strings.Contains(toast, "imageio") || strings.Contains(toast, "signature") || !strings.Contains(toast, "photo") {
		t.Errorf("error shown to the shopper: %q", toast)
	}
	shoot("e2e-phone-error.png")
	err = chromedp.Do(tctx,
		chromedp.Click(chromedp.CSS(`.tab[data-tab="catalogue"]`)),
		chromedp.WaitVisible(chromedp.CSS("#catalogue .card")),
	)
	if err != nil {
		t.Fatalf("phone catalogue: %v", err)
	}
	if _, err := chromedp.Run(tctx, imagesLoaded); err != nil {
		t.Log(err)
	}
	checkPhone("catalogue")
	shoot("e2e-phone-catalogue.png")
}

// classNames maps GroceryStore class IDs to product names from classes.csv
// ("Granny-Smith" becomes "Granny Smith", as `make shop` writes them).
func classNames(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	testenv.Require(t, "GroceryStore classes.csv", err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, r := range rows[1:] {
		if len(r) >= 2 {
			names[r[1]] = strings.ReplaceAll(r[0], "-", " ")
		}
	}
	return names
}

// testWriter sends server logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
