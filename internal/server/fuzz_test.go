package server

import (
	"bytes"
	"context"
	"encoding/json"
	"image/color"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"prodsearch/internal/imageio"
	"prodsearch/internal/store"
	"prodsearch/internal/store/storetest"
)

// fuzzServer is one server per fuzz worker, with three items every input
// must leave untouched.
type fuzzServer struct {
	st   *store.Store
	srv  *Server
	base map[string]store.Item
	vecs map[string][]float32
}

func newFuzzServer(f *testing.F) *fuzzServer {
	d := storetest.NewColourDescriber(16)
	st, err := store.Open(context.Background(), f.TempDir(), d.BundleID(), d.Dim())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	srv, err := New(Config{
		Store: st, Describer: d, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Limits: imageio.Limits{MaxBytes: 8 << 10, MaxPixels: 256 * 256}, MaxBatchBytes: 64 << 10, MaxBatch: 4,
	})
	if err != nil {
		f.Fatal(err)
	}
	body, ct := multipartBody(f,
		part{"image", "tomato.png", pngBytes(f, color.RGBA{230, 20, 20, 255})},
		part{"image", "lime.png", pngBytes(f, color.RGBA{20, 200, 40, 255})},
		part{"id", "", []byte("base/berry")}, part{"id", "", []byte("base/lime")},
		part{"label", "", []byte("fruit")}, part{"metadata", "", []byte(`{"sku":"B-1"}`)},
	)
	req := httptest.NewRequest("POST", "/v1/items", body)
	req.Header.Set("Content-Type", ct)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		f.Fatalf("baseline add: %d %s", rec.Code, rec.Body)
	}
	fs := &fuzzServer{st: st, srv: srv, base: map[string]store.Item{}, vecs: map[string][]float32{}}
	for _, id := range []string{"base/berry", "base/lime"} {
		it, err := st.Get(id)
		if err != nil {
			f.Fatal(err)
		}
		v, err := st.Vector(id)
		if err != nil {
			f.Fatal(err)
		}
		fs.base[id], fs.vecs[id] = it, v
	}
	return fs
}

// post sends body with a multipart Content-Type carrying boundary (quoted
// when it needs to be, raw when it cannot be quoted) and checks what every
// answer must be: no 5xx, JSON, and for errors a code and a message.
func (fs *fuzzServer) post(t *testing.T, target, boundary string, body []byte) (int, []byte) {
	ct := mime.FormatMediaType("multipart/form-data", map[string]string{"boundary": boundary})
	if ct == "" {
		ct = "multipart/form-data; boundary=" + boundary
	}
	req := httptest.NewRequest("POST", target, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	rec := httptest.NewRecorder()
	fs.srv.ServeHTTP(rec, req)
	out := rec.Body.Bytes()
	if rec.Code >= 500 {
		t.Fatalf("%s: %d %s", target, rec.Code, out)
	}
	if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, "application/json") || !json.Valid(out) {
		t.Fatalf("%s: %d with %q body %q", target, rec.Code, got, out)
	}
	if rec.Code >= 400 {
		var e errorBody
		if err := json.Unmarshal(out, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s: %d without a code and message: %s", target, rec.Code, out)
		}
	}
	return rec.Code, out
}

// intact checks that the baseline items are still there, unchanged, and
// that the store passes its own consistency check.
func (fs *fuzzServer) intact(t *testing.T) {
	for id, want := range fs.base {
		it, err := fs.st.Get(id)
		if err != nil {
			t.Fatalf("baseline item %q: %v", id, err)
		}
		v, err := fs.st.Vector(id)
		if err != nil || it.Label != want.Label || !it.Added.Equal(want.Added) || !bytes.Equal(it.Metadata, want.Metadata) ||
			!slices.Equal(v, fs.vecs[id]) {
			t.Fatalf("baseline item %q changed: %+v (%v)", id, it, err)
		}
	}
	if err := fs.st.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// FuzzSearchMultipart posts arbitrary multipart bodies (and boundaries) to
// POST /v1/search: answers are JSON, errors are 4xx with a message, hits
// name stored items with their labels, and the catalogue is not touched.
func FuzzSearchMultipart(f *testing.F) {
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		code, out := fs.post(t, "/v1/search?k=3", boundary, body)
		if code == http.StatusOK {
			var sr SearchResponse
			if err := json.Unmarshal(out, &sr); err != nil {
				t.Fatal(err)
			}
			if len(sr.Results) > 3 {
				t.Fatalf("%d results for k=3", len(sr.Results))
			}
			for _, r := range sr.Results {
				if it, err := fs.st.Get(r.ID); err != nil || it.Label != r.Label {
					t.Fatalf("result %+v is not a stored item (%v)", r, err)
				}
			}
		}
		if fs.st.Len() != len(fs.base) {
			t.Fatalf("a search changed the catalogue to %d items", fs.st.Len())
		}
		fs.intact(t)
	})
}

// FuzzAddMultipart posts arbitrary multipart bodies (and boundaries) to
// POST /v1/items: a refused batch adds nothing, an accepted one adds
// exactly the items it reports (never over an existing one), and the
// baseline items survive either way.
func FuzzAddMultipart(f *testing.F) {
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		code, out := fs.post(t, "/v1/items", boundary, body)
		if code != http.StatusCreated {
			if fs.st.Len() != len(fs.base) {
				t.Fatalf("refused batch (%d %s) left %d items, want %d", code, out, fs.st.Len(), len(fs.base))
			}
			fs.intact(t)
			return
		}
		var ar AddResponse
		if err := json.Unmarshal(out, &ar); err != nil {
			t.Fatal(err)
		}
		if ar.Count == 0 || ar.Count != len(ar.Added) || fs.st.Len() != len(fs.base)+ar.Count {
			t.Fatalf("added %d (%d listed), catalogue has %d items over %d", ar.Count, len(ar.Added), fs.st.Len(), len(fs.base))
		}
		var ids []string
		for _, it := range ar.Added {
			if _, ok := fs.base[it.ID]; ok {
				t.Fatalf("add without replace overwrote %q", it.ID)
			}
			got, err := fs.st.Get(it.ID)
			if err != nil || got.Label != it.Label || got.ImageSize != it.ImageSize {
				t.Fatalf("added %+v, stored %+v (%v)", it, got, err)
			}
			ids = append(ids, it.ID)
		}
		fs.intact(t)
		// Back to the baseline, so the next input starts from it.
		if gone, err := fs.st.Remove(context.Background(), ids...); err != nil || len(gone) != len(ids) {
			t.Fatalf("removing %q: %v (%d gone)", ids, err, len(gone))
		}
	})
}
