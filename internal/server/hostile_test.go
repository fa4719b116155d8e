package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"prodsearch/internal/describe"
	"prodsearch/internal/describe/describetest"
	"prodsearch/internal/imageio/imagetest"
	"prodsearch/internal/store"
	"prodsearch/internal/store/storetest"
)

// newFixtureWith is newFixture with a chosen describer.
func newFixtureWith(t *testing.T, d store.Describer, mod func(*Config)) *fixture {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir(), d.BundleID(), d.Dim())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st}
	cfg := Config{Store: st, Describer: d, Logger: slog.New(slog.NewTextHandler(&f.log, nil))}
	if mod != nil {
		mod(&cfg)
	}
	if f.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.ts = httptest.NewServer(f.srv)
	t.Cleanup(f.ts.Close)
	return f
}

// describers are the two stand-ins the hostile uploads go through: the
// colour histogram of the other server tests, and the real describe
// pipeline (crop, capped resize, tensor fill, pooling) on a fake backbone.
func describers(t *testing.T) map[string]func() (store.Describer, *describetest.QuadRunner) {
	return map[string]func() (store.Describer, *describetest.QuadRunner){
		"colour": func() (store.Describer, *describetest.QuadRunner) { return storetest.NewColourDescriber(64), nil },
		"pipeline": func() (store.Describer, *describetest.QuadRunner) {
			d, err := describetest.New(describe.DefaultSettings())
			if err != nil {
				t.Fatal(err)
			}
			return d, d.Runner
		},
	}
}

// snapshot is what the store held before the hostile requests.
type snapshot struct {
	items  map[string]store.Item
	images map[string][]byte
}

func (f *fixture) snapshot() snapshot {
	f.t.Helper()
	items, _, err := f.st.List(context.Background(), store.ListOptions{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	s := snapshot{items: map[string]store.Item{}, images: map[string][]byte{}}
	for _, it := range items {
		s.items[it.ID] = it
		resp := f.do("GET", "/v1/items/"+it.ID+"/image", "", nil, nil, nil)
		s.images[it.ID], _ = io.ReadAll(resp.Body)
	}
	return s
}

// intact checks that every stored item is unchanged and is still found by
// its own image, so its descriptor is intact too, and that nothing was
// added.
func (f *fixture) intact(s snapshot) {
	f.t.Helper()
	if n := f.st.Len(); n != len(s.items) {
		f.t.Errorf("store holds %d items, want %d", n, len(s.items))
	}
	for id, want := range s.items {
		got, err := f.st.Get(id)
		if err != nil || got.Label != want.Label || got.ImageSize != want.ImageSize || !bytes.Equal(got.Metadata, want.Metadata) {
			f.t.Errorf("item %s: %+v, %v; want %+v", id, got, err, want)
			continue
		}
		var sr SearchResponse
		resp := f.do("POST", "/v1/search?k=1", "", bytes.NewReader(s.images[id]), nil, &sr)
		if resp.StatusCode != 200 || len(sr.Results) != 1 || sr.Results[0].ID != id || sr.Results[0].Score < 0.99 {
			f.t.Errorf("search by the image of %s: %d %+v", id, resp.StatusCode, sr.Results)
		}
	}
}

// goodSearch is the request that must still succeed after a hostile one.
func (f *fixture) goodSearch() {
	f.t.Helper()
	var sr SearchResponse
	resp := f.do("POST", "/v1/search?k=1", "image/png", bytes.NewReader(pngBytes(f.t, red)), nil, &sr)
	if resp.StatusCode != 200 || len(sr.Results) != 1 || sr.Results[0].ID != "tomato" {
		f.t.Errorf("good search after a hostile request: %d %+v", resp.StatusCode, sr)
	}
}

// readError decodes a JSON error body, failing on anything else.
func readError(t *testing.T, resp *http.Response) errorBody {
	t.Helper()
	var e errorBody
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("%d: not a JSON error: %q", resp.StatusCode, data)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error content type %q", ct)
	}
	return e
}

// TestHostileUploadsRefused sends each refused input of the issue-7 table
// to search (raw body and multipart) and add (multipart), and checks the
// status, the JSON error naming the problem, that a good request follows,
// and that the stored items are untouched.
func TestHostileUploadsRefused(t *testing.T) {
	jpg := imagetest.JPEG(t, imagetest.Quadrants(64, 48), 90)
	red := func(int, int) color.CMYK { return color.CMYK{0, 255, 255, 0} }
	cases := []struct {
		name, file string
		data       []byte
		status     int
		code, msg  string
	}{
		{"truncated JPEG", "cut.jpg", imagetest.Truncated(jpg, 0.5), 400, "corrupt_image", "truncated image (jpeg)"},
		{"PNG 100000x100000", "bomb.png", imagetest.PNGHeader(100000, 100000), 413, "image_too_large", "100000x100000 pixels exceeds limit"},
		{"zero bytes", "empty.jpg", nil, 400, "empty_image", "empty"},
		{"text named .jpg", "notes.jpg", imagetest.Text(), 415, "unsupported_image", "unrecognised signature 68 65 6c 6c"},
		{"CMYK JPEG without Adobe marker", "cmyk.jpg", imagetest.CMYKJPEG(16, 16, red, false), 415, "unsupported_image", "4-component JPEG"},
	}
	for dname, newDesc := range describers(t) {
		t.Run(dname, func(t *testing.T) {
			d, _ := newDesc()
			f := newFixtureWith(t, d, nil)
			f.addColours()
			before := f.snapshot()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					f.t = t
					// Raw body search: an empty body is "no image".
					status, code := c.status, c.code
					if len(c.data) == 0 {
						status, code = 400, "no_image"
					}
					resp := f.do("POST", "/v1/search", "image/jpeg", bytes.NewReader(c.data), nil, nil)
					e := readError(t, resp)
					if resp.StatusCode != status || e.Error.Code != code {
						t.Errorf("raw search: %d %+v, want %d %s", resp.StatusCode, e, status, code)
					}
					t.Logf("search, raw body: %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
					f.goodSearch()

					body, ct := multipartBody(t, part{"image", c.file, c.data})
					resp = f.do("POST", "/v1/search", ct, body, nil, nil)
					e = readError(t, resp)
					if resp.StatusCode != c.status || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.msg) {
						t.Errorf("multipart search: %d %+v, want %d %s mentioning %q", resp.StatusCode, e, c.status, c.code, c.msg)
					}
					t.Logf("search, multipart: %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
					f.goodSearch()

					// A batch with a good image and the bad one stores nothing
					// and names the bad file.
					body, ct = multipartBody(t, part{"image", "fine.png", pngBytes(t, green)}, part{"image", c.file, c.data},
						part{"id", "", []byte("fine")}, part{"id", "", []byte("bad")}, part{"label", "", []byte("x")})
					resp = f.do("POST", "/v1/items", ct, body, nil, nil)
					e = readError(t, resp)
					if resp.StatusCode != c.status || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.msg) ||
						!strings.Contains(e.Error.Message, "image 2 ("+c.file+")") || !strings.Contains(e.Error.Message, "nothing was added") {
						t.Errorf("add: %d %+v, want %d %s naming %s", resp.StatusCode, e, c.status, c.code, c.file)
					}
					t.Logf("add, multipart: %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
					f.goodSearch()
					f.intact(before)
				})
			}
			if strings.Contains(f.log.String(), "level=ERROR") {
				t.Errorf("hostile uploads logged server errors:\n%s", f.log.String())
			}
		})
	}
}

// TestHostileUploadsAccepted sends the unusual but valid inputs of the
// table to add and search and checks they are stored and found as what
// they show, with the backbone input bounded.
func TestHostileUploadsAccepted(t *testing.T) {
	quad := imagetest.Quadrants(64, 48)
	cmykQuad := imagetest.CMYKJPEG(64, 48, imagetest.QuadrantInk(64, 48), true)
	strip := func(w, h int) []byte {
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		for i := 0; i < len(m.Pix); i += 4 {
			x := (i / 4) % w
			m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = uint8(x*255/w), 90, 200, 255
		}
		return imagetest.PNG(t, m)
	}
	cases := []struct {
		name, file string
		data       []byte
		same       image.Image // what the upload shows; nil: itself
	}{
		{"GIF with 2000 frames", "anim.gif", imagetest.ManyFrameGIF(t, 64, 64, 2000, color.RGBA{250, 120, 0, 255}), imagetest.Solid(64, 64, color.RGBA{250, 120, 0, 255})},
		{"CMYK JPEG", "print.jpg", cmykQuad, quad},
		{"16-bit PNG RGBA", "deep.png", imagetest.PNG(t, imagetest.Quadrants16(64, 48)), quad},
		{"16-bit PNG grey", "grey16.png", imagetest.PNG(t, imagetest.Gray16(64, 48)), nil},
		{"1x1", "dot.png", imagetest.PNG(t, imagetest.Solid(1, 1, color.RGBA{10, 180, 90, 255})), imagetest.Solid(40, 40, color.RGBA{10, 180, 90, 255})},
		{"20000x100 panorama", "pano.png", strip(20000, 100), nil},
		{"20000x1 strip", "strip.png", strip(20000, 1), nil},
	}
	for o := 1; o <= 8; o++ {
		cases = append(cases, struct {
			name, file string
			data       []byte
			same       image.Image
		}{fmt.Sprintf("EXIF orientation %d", o), fmt.Sprintf("exif%d.jpg", o), imagetest.EXIF(imagetest.JPEG(t, imagetest.StoredFor(quad, o), 95), o), quad})
	}
	for dname, newDesc := range describers(t) {
		t.Run(dname, func(t *testing.T) {
			d, runner := newDesc()
			f := newFixtureWith(t, d, nil)
			f.addColours()
			// Decoys: each orientation's pixels as stored, without EXIF, so a
			// search that ignored orientation would find one of them.
			for o := 2; o <= 8; o++ {
				body, ct := multipartBody(t, part{"image", fmt.Sprintf("decoy%d.png", o), imagetest.PNG(t, imagetest.StoredFor(quad, o))})
				if resp := f.do("POST", "/v1/items", ct, body, nil, nil); resp.StatusCode != 201 {
					t.Fatalf("decoy: %d %s", resp.StatusCode, readAll(resp))
				}
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					f.t = t
					before := f.snapshot()
					start := time.Now()
					body, ct := multipartBody(t, part{"image", c.file, c.data}, part{"label", "", []byte("hostile")})
					resp := f.do("POST", "/v1/items", ct, body, nil, nil)
					if resp.StatusCode != 201 {
						t.Fatalf("add: %d %s", resp.StatusCode, readAll(resp))
					}
					id := store.RefID(c.file)
					input := ""
					if runner != nil {
						h, w := runner.Last()
						input = fmt.Sprintf("%dx%d", w, h)
					}
					// Search with what the upload shows: it must come first.
					query := c.data
					if c.same != nil {
						query = imagetest.PNG(t, c.same)
					}
					var sr SearchResponse
					resp = f.do("POST", "/v1/search?k=2", "", bytes.NewReader(query), nil, &sr)
					if resp.StatusCode != 200 || len(sr.Results) == 0 || sr.Results[0].ID != id || sr.Results[0].Score < 0.97 {
						t.Errorf("search by what %s shows: %d %+v", c.file, resp.StatusCode, sr.Results)
					}
					msg := fmt.Sprintf("add 201, search 200: top hit %s", id)
					if len(sr.Results) > 0 {
						msg += fmt.Sprintf(" (score %.4f", sr.Results[0].Score)
						if len(sr.Results) > 1 {
							msg += fmt.Sprintf(", next %s %.4f", sr.Results[1].ID, sr.Results[1].Score)
						}
						msg += ")"
					}
					if runner != nil {
						msg += "; backbone input " + input
						if lh, lw, _ := runner.Largest(); lh*lw > 224*448 {
							t.Errorf("backbone input %dx%d", lw, lh)
						}
					}
					t.Logf("%s in %v", msg, time.Since(start).Round(time.Millisecond))
					if resp := f.do("DELETE", "/v1/items/"+id, "", nil, nil, nil); resp.StatusCode != 204 {
						t.Errorf("delete: %d", resp.StatusCode)
					}
					f.goodSearch()
					f.intact(before)
				})
			}
		})
	}
}
