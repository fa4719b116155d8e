package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"prodsearch/internal/bundle"
	"prodsearch/internal/eval"
	"prodsearch/internal/imageio"
	"prodsearch/internal/rerank"
	"prodsearch/internal/store"
	"prodsearch/internal/store/storetest"
)

func solid(c color.Color, w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	return img
}

func pngBytes(t testing.TB, c color.Color) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, solid(c, 48, 32)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB, c color.Color) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, solid(c, 64, 64), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type fixture struct {
	t   *testing.T
	st  *store.Store
	srv *Server
	ts  *httptest.Server
	log bytes.Buffer
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	return newFixtureWith(t, storetest.NewColourDescriber(64), mod)
}

type part struct {
	field, fileName string
	data            []byte
}

func multipartBody(t testing.TB, parts ...part) (io.Reader, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.fileName != "" {
			w, err = mw.CreateFormFile(p.field, p.fileName)
		} else {
			w, err = mw.CreateFormField(p.field)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p.data)
	}
	mw.Close()
	return &b, mw.FormDataContentType()
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (f *fixture) do(method, path, ctype string, body io.Reader, hdr map[string]string, out any) *http.Response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			f.t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, data, err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp
}

// wantError checks status and a JSON error body with the given code.
func (f *fixture) wantError(resp *http.Response, status int, code string) {
	f.t.Helper()
	var e errorBody
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || json.Unmarshal(data, &e) != nil || e.Error.Code != code || e.Error.Message == "" {
		f.t.Errorf("%s %s: got %d %s, want %d with code %q", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, data, status, code)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		f.t.Errorf("error content type %q", ct)
	}
}

var (
	red   = color.RGBA{230, 20, 20, 255}
	green = color.RGBA{20, 200, 40, 255}
	blue  = color.RGBA{20, 40, 220, 255}
)

func (f *fixture) addColours() {
	f.t.Helper()
	body, ct := multipartBody(f.t,
		part{"image", "tomato.png", pngBytes(f.t, red)},
		part{"image", "lime.png", pngBytes(f.t, green)},
		part{"image", "berry.jpg", jpegBytes(f.t, blue)},
		part{"label", "", []byte("red")}, part{"label", "", []byte("green")}, part{"label", "", []byte("blue")},
		part{"metadata", "", []byte(`{"sku": "T-1"}`)}, part{"metadata", "", []byte(`null`)}, part{"metadata", "", []byte(`{"sku":"B-3"}`)},
	)
	var ar AddResponse
	resp := f.do("POST", "/v1/items", ct, body, nil, &ar)
	if resp.StatusCode != http.StatusCreated || ar.Count != 3 {
		f.t.Fatalf("add: %d %+v", resp.StatusCode, ar)
	}
}

func TestSearchAndItems(t *testing.T) {
	f := newFixture(t, nil)
	f.addColours()

	// Multipart search.
	body, ct := multipartBody(t, part{"image", "q.jpg", jpegBytes(t, color.RGBA{225, 30, 25, 255})})
	var sr SearchResponse
	resp := f.do("POST", "/v1/search?k=2", ct, body, nil, &sr)
	if resp.StatusCode != 200 || len(sr.Results) != 2 || sr.Results[0].ID != "tomato" || sr.Results[0].Label != "red" {
		t.Fatalf("search: %d %+v", resp.StatusCode, sr)
	}
	if sr.Results[0].ImageURL != "/v1/items/tomato/image" || sr.TimingMS.Total <= 0 || sr.TimingMS.Describe <= 0 {
		t.Errorf("search details: %+v", sr)
	}
	// Raw body search with a label filter.
	resp = f.do("POST", "/v1/search?label=blue", "image/jpeg", bytes.NewReader(jpegBytes(t, red)), nil, &sr)
	if resp.StatusCode != 200 || len(sr.Results) != 1 || sr.Results[0].ID != "berry" {
		t.Errorf("label search: %d %+v", resp.StatusCode, sr)
	}
	resp = f.do("POST", "/v1/search?rerank=qe&k=3", "", bytes.NewReader(pngBytes(t, green)), nil, &sr)
	if resp.StatusCode != 200 || len(sr.Results) != 3 || sr.Results[0].ID != "lime" {
		t.Errorf("QE search: %d %+v", resp.StatusCode, sr)
	}

	// The stored image comes back byte for byte.
	resp = f.do("GET", "/v1/items/berry/image", "", nil, nil, nil)
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || !bytes.Equal(got, jpegBytes(t, blue)) {
		t.Errorf("image: %d %s %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(got))
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("ETag") == "" {
		t.Errorf("image headers: %v", resp.Header)
	}

	var it ItemJSON
	resp = f.do("GET", "/v1/items/tomato", "", nil, nil, &it)
	if resp.StatusCode != 200 || it.Label != "red" || it.FileName != "tomato.png" || string(it.Metadata) != `{"sku":"T-1"}` || it.ImageURL == "" {
		t.Errorf("item: %d %+v", resp.StatusCode, it)
	}

	var list ListResponse
	f.do("GET", "/v1/items?offset=1&limit=1", "", nil, nil, &list)
	if list.Total != 3 || len(list.Items) != 1 || list.Items[0].ID != "lime" {
		t.Errorf("list page: %+v", list)
	}
	f.do("GET", "/v1/items?label=red", "", nil, nil, &list)
	if list.Total != 1 || list.Items[0].ID != "tomato" {
		t.Errorf("list by label: %+v", list)
	}
	var labels struct{ Labels []LabelCount }
	f.do("GET", "/v1/labels", "", nil, nil, &labels)
	if len(labels.Labels) != 3 || labels.Labels[0] != (LabelCount{"blue", 1}) {
		t.Errorf("labels: %+v", labels)
	}

	resp = f.do("DELETE", "/v1/items/lime", "", nil, nil, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	f.wantError(f.do("DELETE", "/v1/items/lime", "", nil, nil, nil), 404, "not_found")
	f.wantError(f.do("GET", "/v1/items/lime", "", nil, nil, nil), 404, "not_found")
	f.wantError(f.do("GET", "/v1/items/lime/image", "", nil, nil, nil), 404, "not_found")

	var h HealthResponse
	f.do("GET", "/healthz", "", nil, nil, &h)
	if h.Status != "ok" || h.Items != 2 || h.Bundle != f.st.BundleID() || h.Auth {
		t.Errorf("healthz: %+v", h)
	}
}

func TestAddRawBodyAndOddIDs(t *testing.T) {
	f := newFixture(t, nil)
	id := "../shop/Bio Äpfel 50% #1?"
	resp := f.do("POST", "/v1/items?id="+url.QueryEscape(id)+"&label=apple&metadata="+url.QueryEscape(`{"a":1}`), "image/png", bytes.NewReader(pngBytes(t, red)), nil, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("raw add: %d %s", resp.StatusCode, readAll(resp))
	}
	var sr SearchResponse
	f.do("POST", "/v1/search", "image/png", bytes.NewReader(pngBytes(t, red)), nil, &sr)
	if len(sr.Results) != 1 || sr.Results[0].ID != id {
		t.Fatalf("search: %+v", sr)
	}
	resp = f.do("GET", sr.Results[0].ImageURL, "", nil, nil, nil)
	if resp.StatusCode != 200 {
		t.Errorf("GET %s: %d", sr.Results[0].ImageURL, resp.StatusCode)
	}
	var it ItemJSON
	if resp := f.do("GET", "/v1/items/"+url.PathEscape(id), "", nil, nil, &it); resp.StatusCode != 200 || it.ID != id {
		t.Errorf("GET item %q: %d %+v", id, resp.StatusCode, it)
	}
	// Path tricks name no item; they never reach the file system.
	for _, p := range []string{"/v1/items/..%2F..%2Fetc%2Fpasswd/image", "/v1/items/%2e%2e/image"} {
		if resp := f.do("GET", p, "", nil, nil, nil); resp.StatusCode != 404 && resp.StatusCode != 400 {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}
	f.wantError(f.do("POST", "/v1/items", "image/png", bytes.NewReader(pngBytes(t, red)), nil, nil), 400, "missing_id")
	f.wantError(f.do("POST", "/v1/items?id=a%5Cb", "image/png", bytes.NewReader(pngBytes(t, red)), nil, nil), 400, "invalid")
	f.wantError(f.do("POST", "/v1/items?id=..", "image/png", bytes.NewReader(pngBytes(t, red)), nil, nil), 400, "invalid")
}

func readAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Limits = imageio.Limits{MaxBytes: 4000, MaxPixels: 100 * 100} })
	f.addColours()
	before := f.st.Len()
	png := pngBytes(t, red)

	f.wantError(f.do("GET", "/v1/search", "", nil, nil, nil), 405, "method_not_allowed")
	f.wantError(f.do("POST", "/v1/search", "image/png", nil, nil, nil), 400, "no_image")
	f.wantError(f.do("POST", "/v1/search", "image/jpeg", strings.NewReader("\xff\xd8\xff\xe0garbage"), nil, nil), 400, "corrupt_image")
	f.wantError(f.do("POST", "/v1/search", "image/bmp", strings.NewReader("BM\x00\x00\x00\x00\x00\x00\x00\x00"), nil, nil), 415, "unsupported_image")
	f.wantError(f.do("POST", "/v1/search", "image/png", bytes.NewReader(make([]byte, 100_000)), nil, nil), 413, "body_too_large")
	var big bytes.Buffer
	if err := pngEncode(&big, solid(red, 200, 200)); err != nil {
		t.Fatal(err)
	}
	f.wantError(f.do("POST", "/v1/search", "image/png", &big, nil, nil), 413, "image_too_large")
	for _, q := range []string{"k=0", "k=abc", "k=100000", "rerank=magic"} {
		f.wantError(f.do("POST", "/v1/search?"+q, "image/png", bytes.NewReader(png), nil, nil), 400, "bad_parameter")
	}
	body, ct := multipartBody(t, part{"photo", "x.png", png})
	f.wantError(f.do("POST", "/v1/search", ct, body, nil, nil), 400, "no_image")
	f.wantError(f.do("POST", "/v1/search", "multipart/form-data; boundary=zz", strings.NewReader("--zz\r\nbroken"), nil, nil), 400, "bad_multipart")
	f.wantError(f.do("GET", "/v1/nothing", "", nil, nil, nil), 404, "not_found")
	f.wantError(f.do("PUT", "/v1/items/tomato", "", nil, nil, nil), 405, "method_not_allowed")
	f.wantError(f.do("GET", "/v1/items?limit=0", "", nil, nil, nil), 400, "bad_parameter")

	// A batch with one bad image stores nothing, and says which image.
	body, ct = multipartBody(t,
		part{"image", "good.png", pngBytes(t, green)},
		part{"image", "bad.jpg", []byte("\xff\xd8\xff\xe0 nope")})
	resp := f.do("POST", "/v1/items", ct, body, nil, nil)
	msg := readAll(resp)
	if resp.StatusCode != 400 || !strings.Contains(msg, "bad.jpg") || !strings.Contains(msg, "nothing was added") {
		t.Errorf("bad batch: %d %s", resp.StatusCode, msg)
	}
	body, ct = multipartBody(t, part{"image", "a.png", png}, part{"image", "b.png", png}, part{"id", "", []byte("only-one")})
	f.wantError(f.do("POST", "/v1/items", ct, body, nil, nil), 400, "misaligned_fields")
	body, ct = multipartBody(t, part{"image", "n.png", png}, part{"metadata", "", []byte("{bad")})
	f.wantError(f.do("POST", "/v1/items", ct, body, nil, nil), 400, "invalid")
	body, ct = multipartBody(t, part{"image", "n.png", png}, part{"colour", "", []byte("red")})
	f.wantError(f.do("POST", "/v1/items", ct, body, nil, nil), 400, "unknown_field")
	// An existing ID is a conflict unless replace=true.
	body, ct = multipartBody(t, part{"image", "tomato.png", pngBytes(t, blue)})
	f.wantError(f.do("POST", "/v1/items", ct, body, nil, nil), 409, "exists")
	if f.st.Len() != before {
		t.Errorf("failed requests changed the store: %d -> %d", before, f.st.Len())
	}
	body, ct = multipartBody(t, part{"image", "tomato.png", pngBytes(t, blue)}, part{"label", "", []byte("blue now")})
	if resp := f.do("POST", "/v1/items?replace=true", ct, body, nil, nil); resp.StatusCode != 201 {
		t.Errorf("replace: %d %s", resp.StatusCode, readAll(resp))
	}
	if it, _ := f.st.Get("tomato"); it.Label != "blue now" || f.st.Len() != before {
		t.Errorf("after replace: %+v, %d items", it, f.st.Len())
	}
}

func pngEncode(w io.Writer, img image.Image) error { return png.Encode(w, img) }

func TestBearerToken(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Token = "s3cret" })
	png := pngBytes(t, red)
	resp := f.do("POST", "/v1/items?id=x", "image/png", bytes.NewReader(png), nil, nil)
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	f.wantError(resp, 401, "unauthorized")
	f.wantError(f.do("POST", "/v1/items?id=x", "image/png", bytes.NewReader(png), map[string]string{"Authorization": "Bearer wrong"}, nil), 401, "unauthorized")
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	if resp := f.do("POST", "/v1/items?id=x", "image/png", bytes.NewReader(png), auth, nil); resp.StatusCode != 201 {
		t.Fatalf("with token: %d", resp.StatusCode)
	}
	f.wantError(f.do("DELETE", "/v1/items/x", "", nil, nil, nil), 401, "unauthorized")
	// Reading and searching stay open.
	if resp := f.do("POST", "/v1/search", "image/png", bytes.NewReader(png), nil, nil); resp.StatusCode != 200 {
		t.Errorf("search: %d", resp.StatusCode)
	}
	if resp := f.do("DELETE", "/v1/items/x", "", nil, auth, nil); resp.StatusCode != 204 {
		t.Errorf("delete with token: %d", resp.StatusCode)
	}
}

func TestMetricsOpenAPIAndPage(t *testing.T) {
	f := newFixture(t, nil)
	f.addColours()
	f.do("POST", "/v1/search", "image/png", bytes.NewReader(pngBytes(t, red)), nil, nil)
	f.do("GET", "/v1/items/nope", "", nil, nil, nil)
	metrics := readAll(f.do("GET", "/metrics", "", nil, nil, nil))
	for _, want := range []string{
		`prodsearch_http_requests_total{code="200",method="POST",route="/v1/search"} 1`,
		`prodsearch_http_requests_total{code="404",method="GET",route="/v1/items/{id}"} 1`,
		`prodsearch_index_items 3`,
		`prodsearch_stage_duration_seconds_count{stage="describe"} 4`,
		`prodsearch_stage_duration_seconds_count{stage="search"} 1`,
		`prodsearch_items_added_total 3`,
		`prodsearch_http_request_duration_seconds_bucket{route="/v1/search",le="0.001"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	resp := f.do("GET", "/openapi.yaml", "", nil, nil, nil)
	spec := readAll(resp)
	if resp.StatusCode != 200 || !strings.HasPrefix(spec, "openapi: 3") {
		t.Fatalf("openapi: %d", resp.StatusCode)
	}
	for _, p := range []string{"/v1/search", "/v1/items", "/v1/items/{id}", "/v1/items/{id}/image", "/v1/labels", "/v1/leaderboard", "/healthz", "/metrics"} {
		if !strings.Contains(spec, "\n  "+p+":\n") {
			t.Errorf("openapi.yaml lacks path %s", p)
		}
	}

	resp = f.do("GET", "/", "", nil, nil, nil)
	page := readAll(resp)
	if resp.StatusCode != 200 || !strings.Contains(page, `id="file"`) || resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("page: %d %q", resp.StatusCode, resp.Header)
	}
	for _, a := range []string{"/static/app.js", "/static/style.css"} {
		if resp := f.do("GET", a, "", nil, nil, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d", a, resp.StatusCode)
		}
	}
	if resp := f.do("GET", "/static/../server.go", "", nil, nil, nil); resp.StatusCode == 200 && strings.Contains(readAll(resp), "package server") {
		t.Error("source file served")
	}
}

func TestLeaderboard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leaderboard.jsonl")
	f := newFixture(t, func(c *Config) { c.Leaderboard = path })
	var lb struct {
		Available bool
		Rows      []eval.Row
	}
	f.do("GET", "/v1/leaderboard", "", nil, nil, &lb)
	if lb.Available {
		t.Errorf("missing file shown: %+v", lb)
	}
	for _, r := range []eval.Row{{Run: "a", MAP: 0.5}, {Run: "b", MAP: 0.7}} {
		if err := eval.AppendLeaderboard(path, r); err != nil {
			t.Fatal(err)
		}
	}
	f.do("GET", "/v1/leaderboard", "", nil, nil, &lb)
	if !lb.Available || len(lb.Rows) != 2 || lb.Rows[0].Run != "b" {
		t.Errorf("leaderboard: %+v", lb)
	}
}

func TestNewRefusesOtherBundle(t *testing.T) {
	d := storetest.NewColourDescriber(64)
	st, err := store.Open(context.Background(), t.TempDir(), d.BundleID(), 64)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := New(Config{Store: st, Describer: storetest.NewColourDescriber(32)}); err == nil || !strings.Contains(err.Error(), d.BundleID()) {
		t.Errorf("mismatched describer: %v", err)
	}
}

// slowDescriber lets a test hold a request in flight.
type slowDescriber struct {
	*storetest.ColourDescriber
	entered chan struct{}
	release chan struct{}
}

func (s *slowDescriber) Describe(ctx context.Context, img image.Image) ([]float32, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.ColourDescriber.Describe(ctx, img)
}

func TestGracefulShutdownAndWarning(t *testing.T) {
	cd := storetest.NewColourDescriber(16)
	d := &slowDescriber{ColourDescriber: cd, entered: make(chan struct{}, 1), release: make(chan struct{})}
	st, err := store.Open(context.Background(), t.TempDir(), cd.BundleID(), 16)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs syncBuffer
	srv, err := New(Config{Store: st, Describer: d, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skipf("cannot listen beyond loopback here: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	port := ln.Addr().(*net.TCPAddr).Port

	got := make(chan int, 1)
	go func() {
		resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/search", port), "image/png", bytes.NewReader(pngBytes(t, red)))
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	<-d.entered // the search is inside Describe
	cancel()    // shutdown starts while it is in flight
	time.Sleep(50 * time.Millisecond)
	close(d.release)
	if code := <-got; code != 200 {
		t.Errorf("in-flight search during shutdown: %d", code)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if !strings.Contains(logs.String(), "WITHOUT A TOKEN") {
		t.Errorf("no warning for a token-less public listener:\n%s", logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shapeRecipes is a model whose recipes expand queries only on one-image
// catalogues.
type shapeRecipes struct{}

func (shapeRecipes) RecipeFor(shape string) (*rerank.Params, string) {
	if shape == bundle.ShapeOne {
		return &rerank.Params{QE: 2, QEAlpha: 1}, "one"
	}
	return nil, "none"
}

func TestSearchUsesTheRecipeForTheStoresShape(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Recipes = shapeRecipes{} })
	ctx := context.Background()
	opt := func(v string) store.SearchOptions {
		var o store.SearchOptions
		if err := f.srv.searchRerank(v, &o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	// An empty store has no labels: the many-images recipe (none) applies.
	if o := opt(""); o.Rerank != store.RerankNone {
		t.Fatalf("empty store: %+v", o)
	}
	desc := storetest.NewColourDescriber(64)
	add := func(id, label string, c color.RGBA) {
		v, err := desc.Describe(ctx, solid(c, 8, 8))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.st.Add(ctx, []store.Entry{{ID: id, Label: label, Vector: v}}, store.AddOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	add("a", "apple", color.RGBA{200, 0, 0, 255})
	add("b", "banana", color.RGBA{200, 200, 0, 255})
	if o := opt(""); o.Rerank != store.RerankQE || o.QE != 2 || o.QEAlpha != 1 {
		t.Fatalf("one image per label: %+v", o)
	}
	if o := opt("none"); o.Rerank != store.RerankNone {
		t.Fatalf("rerank=none: %+v", o)
	}
	// Three images per label: the shape changes and so does the recipe.
	for i := 0; i < 4; i++ {
		add(fmt.Sprint("a", i), "apple", color.RGBA{uint8(190 + i), 0, 0, 255})
		add(fmt.Sprint("b", i), "banana", color.RGBA{uint8(190 + i), 200, 0, 255})
	}
	if o := opt(""); o.Rerank != store.RerankNone {
		t.Fatalf("five images per label: %+v", o)
	}
	if o := opt("qe"); o.Rerank != store.RerankQE || o.QE != 0 {
		t.Fatalf("rerank=qe without a QE recipe uses the usual expansion: %+v", o)
	}
	var sr SearchResponse
	resp := f.do("POST", "/v1/search?k=3", "", bytes.NewReader(pngBytes(t, color.RGBA{200, 0, 0, 255})), nil, &sr)
	if resp.StatusCode != 200 || len(sr.Results) != 3 {
		t.Fatalf("search: %d %+v", resp.StatusCode, sr)
	}
}
