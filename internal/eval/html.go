package eval

import (
	"cmp"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Report is an evaluation laid out for people: the summary figures, the
// mean precision-recall curve, and every query with its top results marked
// right or wrong, worst query first. WriteHTML renders it as one HTML file
// with no external assets: the curve is inline SVG, and images are linked
// by paths relative to the report's folder, so the report opens from disk
// (file://) as long as the images stay where they are, and stays small
// (a few hundred bytes per query) instead of carrying the photos.
type Report struct {
	Title     string
	Notes     []string // lines shown under the title: the bundle, the data
	Eval      Evaluation
	Rankings  []Ranking
	RefLabels map[string]string
	// QueryImages and RefImages map IDs to image files (queries and
	// references may share IDs); an ID without one is shown as text.
	QueryImages, RefImages map[string]string
	// Dir is the folder the report is written into; image links are
	// relative to it.
	Dir string
	// Top is the number of results shown per query (default 10).
	Top int
	// Levels is the number of recall levels the curve is sampled at
	// (default 101: recall 0, 0.01, ..., 1).
	Levels int
}

// WriteHTML renders the report.
func (r Report) WriteHTML(w io.Writer) error {
	top, levels := r.Top, r.Levels
	if top <= 0 {
		top = 10
	}
	if levels < 2 {
		levels = 101
	}
	dir, err := filepath.Abs(r.Dir)
	if err != nil {
		return fmt.Errorf("eval: report folder: %w", err)
	}
	// Image links share a long prefix (the dataset's folder): a <base>
	// element holds it once.
	base, rel := imageBase(dir, r.QueryImages, r.RefImages)

	byQuery := make(map[string][]string, len(r.Rankings))
	for _, rk := range r.Rankings {
		byQuery[rk.Query] = rk.Refs
	}
	mean := make([]float64, levels)
	page := reportPage{Title: r.Title, Notes: r.Notes, Base: base, Scores: r.Eval.Scores, Top: top, Generated: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	// References recur in many lists: each is listed once and results
	// point at it by index, which keeps a report of thousands of queries
	// to a few hundred bytes per query.
	refIndex := map[string]int{}
	for _, q := range r.Eval.PerQuery {
		refs := byQuery[q.Query]
		isRel := func(id string) bool { return r.RefLabels[id] == q.Label }
		for i, p := range PRCurve(RelevantRanks(refs, isRel), q.Relevant, levels) {
			mean[i] += p
		}
		row := reportQuery{ID: q.Query, Label: q.Label, AP: q.AP, FirstHit: q.FirstHit, Relevant: q.Relevant, Missing: q.Missing, Src: rel[0][q.Query]}
		index := func(id string) int {
			k, ok := refIndex[id]
			if !ok {
				k = len(page.Data.Refs)
				refIndex[id] = k
				page.Data.Refs = append(page.Data.Refs, reportRef{ID: id, Label: r.RefLabels[id], Src: rel[1][id]})
			}
			return k
		}
		for _, id := range refs[:min(top, len(refs))] {
			right := 0
			if isRel(id) {
				right = 1
			}
			row.Top = append(row.Top, [2]int{index(id), right})
		}
		// The first right answer below the top: what the query should
		// have found, and how far down it was.
		if q.FirstHit > top {
			row.Late = &[2]int{index(refs[q.FirstHit-1]), q.FirstHit}
		}
		page.Data.Queries = append(page.Data.Queries, row)
	}
	if n := len(r.Eval.PerQuery); n > 0 {
		for i := range mean {
			mean[i] /= float64(n)
		}
	}
	page.Curve = template.HTML(prSVG(mean, r.Eval.Scores.MAP))
	// Worst first: lowest AP, then the first right answer furthest down
	// (none at all first), then by ID so the order is reproducible.
	slices.SortStableFunc(page.Data.Queries, func(a, b reportQuery) int {
		if c := cmp.Compare(a.AP, b.AP); c != 0 {
			return c
		}
		if c := cmp.Compare(hitOrder(b.FirstHit), hitOrder(a.FirstHit)); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if err := reportTemplate.Execute(w, page); err != nil {
		return fmt.Errorf("eval: writing the report: %w", err)
	}
	return nil
}

// hitOrder ranks "no right answer" below every rank.
func hitOrder(firstHit int) int {
	if firstHit == 0 {
		return math.MaxInt
	}
	return firstHit
}

// imageBase returns the <base href> for the report and, for each map of
// images, each image's link relative to it: the base is the images' common
// folder, relative to dir. An image that cannot be made relative (another
// volume) gets a file:// URL.
func imageBase(dir string, sets ...map[string]string) (string, []map[string]string) {
	rels := make([]map[string]string, len(sets))
	var common []string
	first := true
	for i, images := range sets {
		rels[i] = make(map[string]string, len(images))
		for id, p := range images {
			abs, err := filepath.Abs(p)
			if err != nil {
				continue
			}
			r, err := filepath.Rel(dir, abs)
			if err != nil {
				rels[i][id] = (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
				continue
			}
			r = filepath.ToSlash(r)
			rels[i][id] = r
			parts := strings.Split(path.Dir(r), "/")
			if first {
				common, first = parts, false
				continue
			}
			n := 0
			for n < len(common) && n < len(parts) && common[n] == parts[n] {
				n++
			}
			common = common[:n]
		}
	}
	prefix := strings.Join(common, "/")
	if prefix == "." || prefix == "" {
		prefix = ""
	} else {
		prefix += "/"
	}
	for _, rel := range rels {
		for id, r := range rel {
			if !strings.HasPrefix(r, "file:") {
				rel[id] = escapePath(strings.TrimPrefix(r, prefix))
			}
		}
	}
	return escapePath(prefix), rels
}

// escapePath escapes each segment of a slash-separated relative path for
// use in a URL ("#", "?" and spaces are legal in file names).
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// prSVG draws the mean precision-recall curve as inline SVG.
func prSVG(curve []float64, mAP float64) string {
	const w, h, left, bottom, top, right = 360.0, 260.0, 44.0, 36.0, 12.0, 12.0
	pw, ph := w-left-right, h-top-bottom
	x := func(r float64) float64 { return left + r*pw }
	y := func(p float64) float64 { return top + (1-p)*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="pr" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-label="mean precision-recall curve">`, w, h, w, h)
	for i := 0; i <= 5; i++ {
		v := float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="grid"/>`, x(0), y(v), x(1), y(v))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="grid"/>`, x(v), y(0), x(v), y(1))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%.1f</text>`, x(0)-5, y(v)+4, v)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.1f</text>`, x(v), y(0)+15, v)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">recall</text>`, x(0.5), h-4)
	fmt.Fprintf(&b, `<text x="12" y="%.1f" text-anchor="middle" transform="rotate(-90 12 %.1f)">precision</text>`, y(0.5), y(0.5))
	if len(curve) > 1 {
		var pts strings.Builder
		fmt.Fprintf(&pts, "%.1f,%.1f ", x(0), y(0))
		for i, p := range curve {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(float64(i)/float64(len(curve)-1)), y(p))
		}
		fmt.Fprintf(&pts, "%.1f,%.1f", x(1), y(0))
		fmt.Fprintf(&b, `<polygon points="%s" class="area"/>`, pts.String())
		pts.Reset()
		for i, p := range curve {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(float64(i)/float64(len(curve)-1)), y(p))
		}
		fmt.Fprintf(&b, `<polyline points="%s" class="curve"/>`, strings.TrimSpace(pts.String()))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" class="map">mAP %.4f</text>`, x(1)-4, y(1)+14, mAP)
	b.WriteString(`</svg>`)
	return b.String()
}

type reportPage struct {
	Title, Base, Generated string
	Notes                  []string
	Scores                 Scores
	Curve                  template.HTML
	Top                    int
	Data                   reportData // rendered by the page's script
}

type reportData struct {
	Refs    []reportRef   `json:"refs"`
	Queries []reportQuery `json:"queries"`
}

type reportRef struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	Src   string `json:"src,omitempty"`
}

type reportQuery struct {
	ID       string   `json:"id"`
	Label    string   `json:"label"`
	AP       float64  `json:"ap"`
	FirstHit int      `json:"hit"`
	Relevant int      `json:"r"`
	Missing  bool     `json:"missing,omitempty"`
	Src      string   `json:"src,omitempty"`
	Top      [][2]int `json:"top"`            // [index into refs, 1 if right]
	Late     *[2]int  `json:"late,omitempty"` // [index into refs, rank] of the first right answer below the top
}

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"f4":  func(v float64) string { return fmt.Sprintf("%.4f", v) },
	"src": func(s string) template.URL { return template.URL(s) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.Title}}</title>
{{if .Base}}<base href="{{src .Base}}">{{end}}
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} .notes{color:#555;margin:0 0 16px} .notes div{overflow-wrap:anywhere}
.top{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start;margin-bottom:24px}
table.sum{border-collapse:collapse;background:#fff} table.sum td,table.sum th{border:1px solid #ddd;padding:4px 12px;text-align:left} table.sum td.n{text-align:right;font-variant-numeric:tabular-nums}
svg.pr{background:#fff;border:1px solid #ddd} svg.pr text{font-size:11px;fill:#444} svg.pr .grid{stroke:#eee} svg.pr .curve{fill:none;stroke:#2563eb;stroke-width:2} svg.pr .area{fill:#2563eb22} svg.pr .map{font-size:13px;fill:#1b1f24}
.q{display:flex;gap:12px;align-items:flex-start;background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;margin:0 0 8px}
.qi{width:150px;flex:none} .qi img{width:150px;height:150px;object-fit:cover;border:3px solid #888;border-radius:4px}
.meta{font-size:12px;color:#444;overflow-wrap:anywhere} .ap{font-weight:600;font-size:15px;color:#1b1f24}
.res{display:flex;gap:6px;flex-wrap:wrap}
figure{margin:0;width:84px;font-size:11px;color:#444;text-align:center}
figure img,figure .noimg{width:78px;height:78px;object-fit:cover;border:3px solid;border-radius:4px;display:block}
figure.ok img,figure.ok .noimg{border-color:#16a34a} figure.no img,figure.no .noimg{border-color:#dc2626}
figure .m{font-weight:700} figure.ok .m{color:#16a34a} figure.no .m{color:#dc2626}
.noimg{background:#eee;overflow:hidden;font-size:9px}
.gap{align-self:center;font-size:20px;color:#888} figure.late img{opacity:.85}
</style></head><body>
<h1>{{.Title}}</h1>
<div class="notes">{{range .Notes}}<div>{{.}}</div>{{end}}<div>written {{.Generated}}; images are linked relative to this file</div></div>
<div class="top">
<table class="sum"><tbody>
<tr><th>mAP</th><td class="n">{{f4 .Scores.MAP}}</td></tr>
<tr><th>mAP@1000</th><td class="n">{{f4 .Scores.MAPAt1000}}</td></tr>
<tr><th>MRR</th><td class="n">{{f4 .Scores.MRR}}</td></tr>
<tr><th>R@1</th><td class="n">{{f4 .Scores.R1}}</td></tr>
<tr><th>R@5</th><td class="n">{{f4 .Scores.R5}}</td></tr>
<tr><th>R@10</th><td class="n">{{f4 .Scores.R10}}</td></tr>
<tr><th>queries</th><td class="n">{{.Scores.Queries}}</td></tr>
{{if .Scores.Missing}}<tr><th>missing (scored 0)</th><td class="n">{{.Scores.Missing}}</td></tr>{{end}}
</tbody></table>
{{.Curve}}
</div>
<h2>Queries, worst first (top {{.Top}}: <span style="color:#16a34a">&#10003; right product</span>, <span style="color:#dc2626">&#10007; wrong</span>)</h2>
<div id="queries"></div>
<noscript>The list of queries is drawn by the page's script: allow JavaScript for this file.</noscript>
<script>
const D = {{.Data}};
(function () {
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
  const img = (src, alt) => { const i = el("img"); i.src = src; i.loading = "lazy"; i.alt = alt; return i; };
  const figure = (ref, right, rank, extra) => {
    const fig = el("figure", (right ? "ok" : "no") + extra), cap = el("figcaption");
    fig.title = ref.id;
    fig.append(ref.src ? img(ref.src, "") : el("div", "noimg", ref.id));
    cap.append(el("span", "m", right ? "\u2713" : "\u2717"), " " + rank + " · " + ref.label);
    fig.append(cap);
    return fig;
  };
  const box = document.getElementById("queries"), frag = document.createDocumentFragment();
  D.queries.forEach((q, n) => {
    const row = el("div", "q"); row.dataset.ap = q.ap.toFixed(4);
    const qi = el("div", "qi");
    if (q.src) qi.append(img(q.src, "query " + q.id));
    const meta = el("div", "meta");
    meta.append(el("span", "ap", "AP " + q.ap.toFixed(4)), el("br"),
      "#" + (n + 1) + " · label " + q.label + " · first right " + (q.hit ? "at " + q.hit : "none") + " · R " + q.r + (q.missing ? " · no ranking" : ""),
      el("br"), q.id);
    qi.append(meta);
    const res = el("div", "res");
    q.top.forEach(([k, right], i) => res.append(figure(D.refs[k], right, i + 1, "")));
    if (q.late) res.append(el("div", "gap", "\u2026"), figure(D.refs[q.late[0]], 1, q.late[1], " late"));
    row.append(qi, res);
    frag.append(row);
  });
  box.append(frag);
})();
</script>
</body></html>
`))
