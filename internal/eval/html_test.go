package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"prodsearch/internal/testenv"
)

// reportFixture writes one small PNG per item (queries under photos/,
// references under "catalogue #1/", a name that needs URL escaping) and
// returns a report over a hand-made ranking, written into dir/out:
//
//	qa (label A, R = 2): a1, x1, a2           AP = (1 + 2/3)/2 = 5/6
//	qb (label B, R = 1): x1, a1, b1           AP = 1/3
//	qc (label C, R = 1): a1, a2, x1, b1 (no C) AP = 0
func reportFixture(t *testing.T, dir string) Report {
	t.Helper()
	colours := map[string]color.RGBA{"A": {220, 40, 40, 255}, "B": {40, 160, 40, 255}, "C": {40, 40, 220, 255}, "X": {128, 128, 128, 255}}
	save := func(p string, c color.RGBA) {
		img := image.NewRGBA(image.Rect(0, 0, 32, 24))
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	queries := map[string]string{"qa": "A", "qb": "B", "qc": "C"}
	refs := map[string]string{"a1": "A", "a2": "A", "b1": "B", "c1": "C", "x1": "X"}
	qImages, rImages := map[string]string{}, map[string]string{}
	for id, l := range queries {
		qImages[id] = filepath.Join(dir, "data", "photos", id+".png")
		save(qImages[id], colours[l])
	}
	for id, l := range refs {
		rImages[id] = filepath.Join(dir, "data", "catalogue #1", id+".png")
		save(rImages[id], colours[l])
	}
	rankings := []Ranking{
		{Query: "qa", Refs: []string{"a1", "x1", "a2"}},
		{Query: "qb", Refs: []string{"x1", "a1", "b1"}},
		{Query: "qc", Refs: []string{"a1", "a2", "x1", "b1"}},
	}
	ev, err := Evaluate(rankings, queries, refs)
	if err != nil {
		t.Fatal(err)
	}
	return Report{Title: "test report", Notes: []string{"hand-made <ranking>"}, Eval: ev, Rankings: rankings, RefLabels: refs,
		QueryImages: qImages, RefImages: rImages, Dir: filepath.Join(dir, "out"), Top: 2, Levels: 5}
}

func writeReportFile(t *testing.T, r Report) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(r.Dir, "report.html")
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, buf.String()
}

func TestReportHTML(t *testing.T) {
	dir := t.TempDir()
	r := reportFixture(t, dir)
	p, html := writeReportFile(t, r)

	data := reportDataOf(t, html)
	// Worst query first.
	var got []string
	for _, q := range data.Queries {
		got = append(got, fmt.Sprintf("%s %.4f", q.ID, q.AP))
	}
	if want := []string{"qc 0.0000", "qb 0.3333", "qa 0.8333"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("queries in order %v, want %v (worst first)", got, want)
	}
	// Top 2 per query, right or wrong: qc a1 a2; qb x1 a1; qa a1 x1.
	var marks []string
	for _, q := range data.Queries {
		for _, r := range q.Top {
			marks = append(marks, fmt.Sprintf("%s:%d", data.Refs[r[0]].ID, r[1]))
		}
	}
	if want := "[a1:0 a2:0 x1:0 a1:0 a1:1 x1:0]"; fmt.Sprint(marks) != want {
		t.Errorf("results %v, want %s", marks, want)
	}
	// qb's right answer is below the top 2, at rank 3: shown after them.
	if l := data.Queries[1].Late; l == nil || data.Refs[l[0]].ID != "b1" || l[1] != 3 || data.Queries[0].Late != nil || data.Queries[2].Late != nil {
		t.Errorf("late answers %v %v %v, want b1 at 3 for qb only", data.Queries[0].Late, data.Queries[1].Late, data.Queries[2].Late)
	}
	if len(data.Refs) != 4 {
		t.Errorf("%d references listed, want each of a1, a2, x1, b1 once", len(data.Refs))
	}
	for _, want := range []string{"<th>MRR</th><td class=\"n\">0.4444</td>", "<th>mAP</th><td class=\"n\">0.3889</td>", "<polyline", "mAP 0.3889", "hand-made &lt;ranking&gt;"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(html, "http://") || strings.Contains(html, "https://") || strings.Contains(html, "<script src") {
		t.Error("report refers to an external asset")
	}
	// Every image link, resolved against <base> and the report's own
	// location, names an image that exists.
	base := regexp.MustCompile(`<base href="([^"]*)">`).FindStringSubmatch(html)
	if base == nil || !strings.HasPrefix(base[1], "../data/") {
		t.Fatalf("base %v, want the images' common folder relative to the report", base)
	}
	srcs := []string{}
	for _, q := range data.Queries {
		srcs = append(srcs, q.Src)
	}
	for _, r := range data.Refs {
		srcs = append(srcs, r.Src)
	}
	for _, src := range srcs {
		rel, err := url.PathUnescape(base[1] + src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), filepath.FromSlash(rel))); err != nil {
			t.Errorf("image link %s: %v", src, err)
		}
	}
	if !strings.Contains(html, "catalogue%20%231/") {
		t.Error("folder name with a space and # not escaped in links")
	}
}

// reportDataOf reads back the data the report's script draws.
func reportDataOf(t *testing.T, html string) reportData {
	t.Helper()
	_, after, ok := strings.Cut(html, "const D = ")
	js, _, ok2 := strings.Cut(after, ";\n(function")
	if !ok || !ok2 {
		t.Fatal("no report data in the page")
	}
	var d reportData
	if err := json.Unmarshal([]byte(js), &d); err != nil {
		t.Fatalf("report data: %v", err)
	}
	return d
}

func TestMeanPRCurveInReport(t *testing.T) {
	// Levels 0, .25, .5, .75, 1; qa hits at 0 and 2 of R = 2: precision 1
	// up to recall .5, then 2/3; qb hit at 2 of R = 1: 1/3 everywhere; qc
	// none. Mean at recall 0 = (1 + 1/3 + 0)/3 = 4/9; at 1 = (2/3 + 1/3)/3 = 1/3.
	r := reportFixture(t, t.TempDir())
	_, html := writeReportFile(t, r)
	line := regexp.MustCompile(`<polyline points="([^"]+)"`).FindStringSubmatch(html)
	if line == nil {
		t.Fatal("no curve")
	}
	pts := strings.Fields(line[1])
	if len(pts) != 5 {
		t.Fatalf("%d points, want 5", len(pts))
	}
	// y = top + (1-p)*ph with top 12, ph 212.
	yOf := func(pt string) float64 {
		v, err := strconv.ParseFloat(strings.Split(pt, ",")[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for i, want := range []float64{4.0 / 9, 4.0 / 9, 4.0 / 9, 1.0 / 3, 1.0 / 3} {
		if y := yOf(pts[i]); y < 12+(1-want)*212-0.06 || y > 12+(1-want)*212+0.06 {
			t.Errorf("point %d at y %.1f, want precision %.4f (y %.1f)", i, y, want, 12+(1-want)*212)
		}
	}
}

// TestReportInChromium opens the report from disk in headless Chromium,
// checks that every image loaded and the worst query comes first, and keeps
// a screenshot (artifacts/eval-report.png).
func TestReportInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	ctx := testenv.Browser(t, 1100, 800)
	r := reportFixture(t, t.TempDir())
	p, _ := writeReportFile(t, r)
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var broken, firstAP string
	err := chromedp.Do(tctx,
		chromedp.Navigate((&url.URL{Scheme: "file", Path: p}).String()),
		chromedp.WaitVisible(chromedp.CSS("svg.pr polyline")),
		testenv.Void(chromedp.Poll[bool](`Array.from(document.images).every(i => i.complete)`, chromedp.WithPollingTimeout(20*time.Second))),
	)
	if err != nil {
		t.Fatal(err)
	}
	broken, err = chromedp.Run(tctx, chromedp.Evaluate[string](`Array.from(document.images).filter(i => i.naturalWidth === 0).map(i => i.src).join(" ")`))
	if err != nil {
		t.Fatal(err)
	}
	if broken != "" {
		t.Errorf("images that did not load: %s", broken)
	}
	v, err := chromedp.Run(tctx, chromedp.AttributeValue(chromedp.CSS(".q"), "data-ap"))
	if err != nil {
		t.Fatal(err)
	}
	firstAP = v.Value
	if firstAP != "0.0000" {
		t.Errorf("first query's AP %s, want the worst (0.0000)", firstAP)
	}
	marks, err := chromedp.Run(tctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll(".q")).map(q => q.dataset.ap + ":" + Array.from(q.querySelectorAll("figure")).map(f => f.className).join(",")).join(" ")`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "0.0000:no,no 0.3333:no,no,ok late 0.8333:ok,no"; marks != want {
		t.Errorf("drawn queries %q, want %q", marks, want)
	}
	testenv.Screenshot(tctx, t, "eval-report.png")
}
