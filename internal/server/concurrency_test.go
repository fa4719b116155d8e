package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"maps"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"prodsearch/internal/imageio"
	"prodsearch/internal/store"
	"prodsearch/internal/store/storetest"
	"prodsearch/internal/testenv"
)

// stressPNG draws item number n in generation gen so that the colour
// describer tells every (n, gen) apart: each quadrant is one of its 64
// colour bins, the top two spell n and the bottom two gen. PNG keeps the
// colours exact.
func stressPNG(n, gen int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	codes := [4]int{n % 64, n / 64 % 64, gen % 64, gen / 64 % 64}
	for y := range 32 {
		for x := range 32 {
			c := codes[y/16*2+x/16]
			v := func(b int) uint8 { return uint8(32 + 64*b) }
			img.Set(x, y, color.RGBA{v(c / 16), v(c / 4 % 4), v(c % 4), 255})
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

func stressLabel(n, gen int) string { return fmt.Sprintf("label %d", (n+gen)%3) }

// httpStress is the state of one HTTP concurrency run.
type httpStress struct {
	base   string
	client *http.Client
	m      *storetest.Model
	num    map[string]int // id -> item number
	never  []string

	added, removed, replaced, conflicts, notFound     atomic.Int64
	searches, results, rank1, selfFound, absent, gets atomic.Int64
	healthChecks, lists, quiescent                    atomic.Int64
}

// call sends one request and decodes a JSON answer into out when the
// status is want; any other status is an error carrying the body.
func (h *httpStress) call(method, path, ctype string, body []byte, want int, out any) error {
	req, err := http.NewRequest(method, h.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return &statusError{method: method, path: path, code: resp.StatusCode, body: string(data)}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

type statusError struct {
	method, path, body string
	code               int
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: status %d: %s", e.method, e.path, e.code, strings.TrimSpace(e.body))
}

// formBody is multipartBody for goroutines other than the test's.
func formBody(parts ...part) ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		var w io.Writer
		if p.fileName != "" {
			w, _ = mw.CreateFormFile(p.field, p.fileName)
		} else {
			w, _ = mw.CreateFormField(p.field)
		}
		w.Write(p.data)
	}
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

func itemPath(id string) string { return "/v1/items/" + url.PathEscape(id) }

// TestConcurrentHTTP is TestConcurrentAddRemoveSearch of the store package
// through the API: writers add (multipart batches and raw bodies), replace
// and delete their own items while readers search by photo, fetch items,
// list and poll /healthz, for $PRODSEARCH_STRESS_DURATION (default 3s).
// Every status must be the expected one, and the same invariants hold: no
// lost items, no ghosts, and at quiescent points and after reopening the
// store, the catalogue equals the model of acknowledged requests.
func TestConcurrentHTTP(t *testing.T) {
	const (
		writers  = 3
		readers  = 3
		perOwner = 24
	)
	d := testenv.Duration(t, testenv.EnvStressDuration, 3*time.Second)
	f := newFixture(t, nil)
	h := &httpStress{base: f.ts.URL, client: f.ts.Client(), num: map[string]int{}}
	var universe []string
	owned := make([][]string, writers)
	for w := range writers {
		for i := range perOwner {
			// Slashes, spaces and a percent sign travel escaped in paths and
			// queries.
			id := fmt.Sprintf("w%d/item %02d%%", w, i)
			h.num[id] = len(universe)
			owned[w] = append(owned[w], id)
			universe = append(universe, id)
		}
	}
	for i := range 8 {
		id := fmt.Sprintf("never/%d", i)
		h.num[id] = len(universe)
		h.never = append(h.never, id)
		universe = append(universe, id)
	}
	h.m = storetest.NewModel(universe)
	// Half the items exist from the start, so deletes and replacements
	// begin at once rather than after a run of adds.
	var seed []part
	for _, own := range owned {
		for _, id := range own[:len(own)/2] {
			g := h.m.BeginAdd(id)
			seed = append(seed, part{"image", "p.png", stressPNG(h.num[id], g)}, part{"id", "", []byte(id)}, part{"label", "", []byte(stressLabel(h.num[id], g))})
		}
	}
	body, ct := formBody(seed...)
	if err := h.call("POST", "/v1/items", ct, body, http.StatusCreated, nil); err != nil {
		t.Fatal(err)
	}
	for _, own := range owned {
		for _, id := range own[:len(own)/2] {
			h.m.EndAdd(id)
		}
	}

	q, err := storetest.Stress(storetest.StressConfig{
		Duration: d, Writers: writers, Readers: readers, Seed: 3,
		Write:  func(w int, r *rand.Rand) error { return h.write(owned[w], r) },
		Read:   h.read,
		Verify: func() error { return h.verify(f.st, false) },
	})
	h.quiescent.Add(int64(q))
	if err != nil {
		t.Fatal(err)
	}

	// What the API acknowledged is what a reopened store holds.
	f.ts.Close()
	dir := f.st.Info().Dir
	if err := f.st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), dir, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	present, _ := h.m.Present()
	if err := h.verifyReopened(st, present); err != nil {
		t.Fatal(err)
	}
	t.Logf("HTTP for %v: %d added, %d replaced, %d deleted, %d conflicts (409) and %d deletes of absent items (404); "+
		"%d searches by photo checking %d results (%d rank-1 checks of an item's own photo, %d found in top 5 after QE, %d photos of absent items), "+
		"%d item fetches, %d /healthz and %d list bound checks, %d quiescent checks; %d items equal the model after reopening",
		d, h.added.Load(), h.replaced.Load(), h.removed.Load(), h.conflicts.Load(), h.notFound.Load(),
		h.searches.Load(), h.results.Load(), h.rank1.Load(), h.selfFound.Load(), h.absent.Load(),
		h.gets.Load(), h.healthChecks.Load(), h.lists.Load(), h.quiescent.Load(), len(present))
	if h.rank1.Load() == 0 || h.absent.Load() == 0 || h.removed.Load() == 0 || h.replaced.Load() == 0 || h.quiescent.Load() == 0 {
		t.Error("the run checked too little to mean anything")
	}
}

// write performs one write request on IDs the caller owns.
func (h *httpStress) write(own []string, r *rand.Rand) error {
	m := h.m
	id := own[r.IntN(len(own))]
	st := m.State(id)
	rawAdd := func(id string, gen int, replace bool, want int) error {
		q := url.Values{"id": {id}, "label": {stressLabel(h.num[id], gen)}}
		if replace {
			q.Set("replace", "true")
		}
		return h.call("POST", "/v1/items?"+q.Encode(), "image/png", stressPNG(h.num[id], gen), want, nil)
	}
	switch {
	case st.Phase() == storetest.Absent:
		ids := m.Pick(own, id, storetest.Absent, 1+r.IntN(3))
		gens := make([]int, len(ids))
		for i, x := range ids {
			gens[i] = m.BeginAdd(x)
		}
		if len(ids) == 1 && r.IntN(2) == 0 {
			if err := rawAdd(ids[0], gens[0], false, http.StatusCreated); err != nil {
				return err
			}
		} else {
			var parts []part
			for i, x := range ids {
				parts = append(parts, part{"image", "p.png", stressPNG(h.num[x], gens[i])},
					part{"id", "", []byte(x)}, part{"label", "", []byte(stressLabel(h.num[x], gens[i]))})
			}
			body, ct := formBody(parts...)
			var ar AddResponse
			if err := h.call("POST", "/v1/items", ct, body, http.StatusCreated, &ar); err != nil {
				return err
			}
			if ar.Count != len(ids) {
				return fmt.Errorf("batch of %d answered count %d", len(ids), ar.Count)
			}
		}
		for _, x := range ids {
			m.EndAdd(x)
		}
		h.added.Add(int64(len(ids)))
	case r.IntN(2) == 0:
		m.BeginRemove(id)
		if err := h.call("DELETE", itemPath(id), "", nil, http.StatusNoContent, nil); err != nil {
			return err
		}
		m.EndRemove(id)
		h.removed.Add(1)
		// The removal of an ID that was never added says so.
		if err := h.call("DELETE", itemPath(h.never[r.IntN(len(h.never))]), "", nil, http.StatusNotFound, nil); err != nil {
			return err
		}
		h.notFound.Add(1)
	case r.IntN(3) > 0:
		g := m.BeginAdd(id)
		if err := rawAdd(id, g, true, http.StatusCreated); err != nil {
			return err
		}
		m.EndAdd(id)
		h.replaced.Add(1)
	default:
		// Refused whole: the absent item of the batch is not stored either.
		parts := []part{{"image", "p.png", stressPNG(h.num[id], st.Gen()+1)}, {"id", "", []byte(id)}}
		if a := m.Pick(own, id, storetest.Absent, 1); len(a) > 0 {
			parts = append(parts, part{"image", "p.png", stressPNG(h.num[a[0]], m.State(a[0]).Gen()+1)}, part{"id", "", []byte(a[0])})
		}
		body, ct := formBody(parts...)
		if err := h.call("POST", "/v1/items", ct, body, http.StatusConflict, nil); err != nil {
			return err
		}
		h.conflicts.Add(1)
	}
	return nil
}

// read performs one read request and checks it against the window.
func (h *httpStress) read(r *rand.Rand) error {
	m := h.m
	id := m.Any(r)
	w := m.Watch()
	gen := max(w.Before(id).Gen(), 1)
	switch op := r.IntN(10); {
	case op < 6:
		q := url.Values{"k": {"5"}}
		if r.IntN(3) == 0 {
			q.Set("label", stressLabel(h.num[id], gen))
		}
		qe := r.IntN(5) == 0
		if qe {
			q.Set("rerank", "qe")
		}
		var sr SearchResponse
		err := h.call("POST", "/v1/search?"+q.Encode(), "image/png", stressPNG(h.num[id], gen), http.StatusOK, &sr)
		w.End()
		if err != nil {
			return err
		}
		h.searches.Add(1)
		if err := h.checkResults(w, sr.Results, q.Get("label")); err != nil {
			return fmt.Errorf("search for %s (%s): %w", id, q.Encode(), err)
		}
		h.results.Add(int64(len(sr.Results)))
		switch {
		case w.MustHave(id) && qe:
			if !slices.ContainsFunc(sr.Results, func(x SearchResult) bool { return x.ID == id }) {
				return fmt.Errorf("lost: %s, present throughout, not in the top 5 for its own photo after QE: %+v", id, sr.Results)
			}
			h.selfFound.Add(1)
		case w.MustHave(id):
			if len(sr.Results) == 0 || sr.Results[0].ID != id {
				return fmt.Errorf("lost: %s, present throughout, is not first for its own photo: %+v", id, sr.Results)
			}
			h.rank1.Add(1)
		case w.MustLack(id):
			h.absent.Add(1)
		}
	case op < 8:
		var it ItemJSON
		err := h.call("GET", itemPath(id), "", nil, http.StatusOK, &it)
		w.End()
		var se *statusError
		switch {
		case w.MustHave(id):
			if err != nil || it.ID != id || it.Label != stressLabel(h.num[id], w.Before(id).Gen()) {
				return fmt.Errorf("lost: GET %s = %+v, %v while present in generation %d", id, it, err, w.Before(id).Gen())
			}
		case w.MustLack(id):
			if !errors.As(err, &se) || se.code != http.StatusNotFound {
				return fmt.Errorf("ghost: GET %s = %+v, %v while absent", id, it, err)
			}
		case err != nil && (!errors.As(err, &se) || se.code != http.StatusNotFound):
			return err
		}
		h.gets.Add(1)
	case op < 9:
		var hr HealthResponse
		err := h.call("GET", "/healthz", "", nil, http.StatusOK, &hr)
		w.End()
		if err != nil {
			return err
		}
		if lo, hi := w.Bounds(); hr.Items < lo || hr.Items > hi {
			return fmt.Errorf("/healthz says %d items, the model allows %d..%d", hr.Items, lo, hi)
		}
		h.healthChecks.Add(1)
	default:
		var lr ListResponse
		err := h.call("GET", "/v1/items?limit=500", "", nil, http.StatusOK, &lr)
		w.End()
		if err != nil {
			return err
		}
		listed := make([]string, len(lr.Items))
		for i, it := range lr.Items {
			listed[i] = it.ID
		}
		if err := w.CheckListing(listed, lr.Total); err != nil {
			return err
		}
		h.lists.Add(1)
	}
	return nil
}

func (h *httpStress) checkResults(w *storetest.Window, res []SearchResult, label string) error {
	seen := map[string]bool{}
	for _, x := range res {
		if err := w.CheckHit(x.ID, x.Label, seen, func(g int) string { return stressLabel(h.num[x.ID], g) }); err != nil {
			return err
		}
		if label != "" && x.Label != label {
			return fmt.Errorf("%s has label %q outside the filter %q", x.ID, x.Label, label)
		}
		if x.ImageURL != itemPath(x.ID)+"/image" {
			return fmt.Errorf("%s has image URL %q", x.ID, x.ImageURL)
		}
	}
	return nil
}

// verify checks through the API, with no write in flight, that the
// catalogue is the model: list, labels, /healthz and the file; with full,
// also each item's own photo finding it first and its stored image, and no
// absent item found. The search readers check the rest while writers run.
func (h *httpStress) verify(st *store.Store, full bool) error {
	present, err := h.m.Present()
	if err != nil {
		return err
	}
	var lr ListResponse
	if err := h.call("GET", "/v1/items?limit=500", "", nil, http.StatusOK, &lr); err != nil {
		return err
	}
	if lr.Total != len(present) || len(lr.Items) != lr.Total {
		return fmt.Errorf("list: %d items of %d, the model holds %d", len(lr.Items), lr.Total, len(present))
	}
	want := map[string]int{}
	for id, g := range present {
		want[stressLabel(h.num[id], g)]++
	}
	for _, it := range lr.Items {
		g, ok := present[it.ID]
		if !ok || it.Label != stressLabel(h.num[it.ID], g) {
			return fmt.Errorf("list shows %+v; the model has generation %d (present %v)", it.Item, g, ok)
		}
	}
	var labels struct{ Labels []LabelCount }
	if err := h.call("GET", "/v1/labels", "", nil, http.StatusOK, &labels); err != nil {
		return err
	}
	got := map[string]int{}
	for _, l := range labels.Labels {
		got[l.Label] = l.Count
	}
	if !maps.Equal(got, want) {
		return fmt.Errorf("labels %v, the model has %v", got, want)
	}
	var hr HealthResponse
	if err := h.call("GET", "/healthz", "", nil, http.StatusOK, &hr); err != nil || hr.Items != len(present) {
		return fmt.Errorf("/healthz: %+v, %v; the model holds %d", hr, err, len(present))
	}
	if err := st.Check(context.Background()); err != nil || !full {
		return err
	}
	for _, id := range h.m.IDs() {
		gen := h.m.State(id).Gen()
		var sr SearchResponse
		if err := h.call("POST", "/v1/search?k=3", "image/png", stressPNG(h.num[id], max(gen, 1)), http.StatusOK, &sr); err != nil {
			return err
		}
		if _, ok := present[id]; ok {
			if len(sr.Results) == 0 || sr.Results[0].ID != id {
				return fmt.Errorf("lost: %s is not first for its own photo: %+v", id, sr.Results)
			}
			img, err := h.raw("GET", itemPath(id)+"/image")
			if err != nil || !bytes.Equal(img, stressPNG(h.num[id], gen)) {
				return fmt.Errorf("image of %s: %d bytes, %v", id, len(img), err)
			}
			continue
		}
		if slices.ContainsFunc(sr.Results, func(x SearchResult) bool { return x.ID == id }) {
			return fmt.Errorf("ghost: absent %s found: %+v", id, sr.Results)
		}
		if err := h.call("GET", itemPath(id), "", nil, http.StatusNotFound, nil); err != nil {
			return fmt.Errorf("ghost: %w", err)
		}
	}
	return nil
}

func (h *httpStress) raw(method, path string) ([]byte, error) {
	req, err := http.NewRequest(method, h.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// verifyReopened checks a reopened store against the model, describing
// the photos the way the server did.
func (h *httpStress) verifyReopened(st *store.Store, present map[string]int) error {
	ctx := context.Background()
	if st.Len() != len(present) {
		return fmt.Errorf("reopened: %d items, the model holds %d", st.Len(), len(present))
	}
	if err := st.Check(ctx); err != nil {
		return err
	}
	d := storetest.NewColourDescriber(st.Dim())
	for _, id := range h.m.IDs() {
		gen, ok := present[id]
		img, err := imageio.Decode(stressPNG(h.num[id], max(gen, 1)), imageio.DefaultLimits())
		if err != nil {
			return err
		}
		vec, err := d.Describe(ctx, img)
		if err != nil {
			return err
		}
		res, err := st.Search(ctx, vec, store.SearchOptions{K: 3})
		if err != nil {
			return err
		}
		it, gerr := st.Get(id)
		switch {
		case ok && (len(res) == 0 || res[0].ID != id || gerr != nil || it.Label != stressLabel(h.num[id], gen)):
			return fmt.Errorf("reopened: lost %s: %+v, %+v, %v", id, res, it, gerr)
		case !ok && (!errors.Is(gerr, store.ErrNotFound) || slices.ContainsFunc(res, func(x store.Result) bool { return x.ID == id })):
			return fmt.Errorf("reopened: ghost %s: %+v, %v", id, res, gerr)
		}
	}
	return nil
}
