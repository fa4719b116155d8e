package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"image/jpeg"
	"io"
	"maps"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"prodsearch/internal/imageio/imagetest"
	"prodsearch/internal/index"
	"prodsearch/internal/server"
	"prodsearch/internal/store"
	"prodsearch/internal/store/storetest"
)

// soakOptions configure soak: a real `prodsearch serve` on a fresh store
// in a temporary directory, driven by clients that search, add, replace,
// remove, list and send bad requests for a fixed time.
type soakOptions struct {
	duration, warmup time.Duration
	clients, items   int
	k                int
	binary           string
	serveArgs        []string
	vectors          string
	jsonOut          string
}

// The RSS bound: at the end, the server may hold at most rssGrowth times
// its resident set after the warm-up plus rssSlack. The catalogue is
// bounded (clients x items), so steady work must not keep growing memory.
const (
	rssGrowth = 1.5
	rssSlack  = 64 << 20
)

// soakCmd (bench soak) starts `prodsearch serve` on a new store in a
// temporary directory and drives it on loopback with clients that search by
// photo, add, replace, delete, list and send bad requests, for a fixed time;
// it fails on a transport error, a 5xx or any other unexpected status, an
// item lost or a ghost seen, or the server's RSS growing past a bound:
//
//	go run ./cmd/bench soak -duration 5m -clients 8 -prodsearch bin/prodsearch
func soakCmd(fs *flag.FlagSet) runFunc {
	var so soakOptions
	fs.DurationVar(&so.duration, "duration", 5*time.Minute, "how long to drive the server after the warm-up")
	fs.DurationVar(&so.warmup, "warmup", 0, "load before the RSS baseline (default a quarter of -duration, at most 1m)")
	fs.IntVar(&so.clients, "clients", 8, "concurrent clients")
	fs.IntVar(&so.items, "items", 48, "item IDs each client cycles through add, replace and delete")
	fs.StringVar(&so.binary, "prodsearch", filepath.Join("bin", "prodsearch"), "the prodsearch binary to serve with")
	serveArgs := fs.String("serve-args", "", "more flags for `prodsearch serve`, space-separated (e.g. \"--backbone coral_mnv2\")")
	fs.IntVar(&so.k, "k", 10, "results per search")
	index.Flag(fs, &so.vectors, index.KindFlat)
	fs.StringVar(&so.jsonOut, "json", "", "also write the report as JSON to this file")
	return func(ctx context.Context, stdout io.Writer) error {
		so.serveArgs = strings.Fields(*serveArgs)
		return runSoak(ctx, so, stdout)
	}
}

// soakReport is what soak prints and writes with -json.
type soakReport struct {
	Duration   string           `json:"duration"`
	Warmup     string           `json:"warmup"`
	Clients    int              `json:"clients"`
	Requests   int              `json:"requests"`
	RPS        float64          `json:"requests_per_second"`
	Endpoints  []endpointReport `json:"endpoints"`
	Status     map[string]int   `json:"status_counts"`
	Checks     map[string]int   `json:"checks"`
	Errors     int              `json:"errors"`
	FirstError []string         `json:"first_errors,omitempty"`
	ItemsEnd   int              `json:"items_at_end"`

	RSSWarm  int64 `json:"rss_warm_bytes"`
	RSSEnd   int64 `json:"rss_end_bytes"`
	RSSPeak  int64 `json:"rss_peak_bytes"`
	RSSLimit int64 `json:"rss_limit_bytes"`
	// Go heap in use and goroutines of the server, from its /metrics.
	HeapWarm       float64 `json:"heap_inuse_warm_bytes"`
	HeapEnd        float64 `json:"heap_inuse_end_bytes"`
	GoroutinesWarm float64 `json:"goroutines_warm"`
	GoroutinesEnd  float64 `json:"goroutines_end"`
}

// endpointReport is one kind of request; latencies in milliseconds.
type endpointReport struct {
	Name   string         `json:"name"`
	Count  int            `json:"count"`
	Status map[string]int `json:"status"`
	P50    float64        `json:"p50_ms"`
	P99    float64        `json:"p99_ms"`
	Max    float64        `json:"max_ms"`
}

// soak is the state shared by the clients of one run.
type soak struct {
	base   string
	client *http.Client
	m      *storetest.Model
	k      int

	mu     sync.Mutex
	lat    map[string][]float64
	status map[string]map[int]int
	checks map[string]int
	errs   []string
	nerr   int
}

func (s *soak) record(op string, d time.Duration, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lat[op] = append(s.lat[op], float64(d.Microseconds())/1000)
	if s.status[op] == nil {
		s.status[op] = map[int]int{}
	}
	s.status[op][code]++
}

func (s *soak) check(name string) {
	s.mu.Lock()
	s.checks[name]++
	s.mu.Unlock()
}

func (s *soak) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nerr++
	if len(s.errs) < 10 {
		s.errs = append(s.errs, err.Error())
	}
}

// errUnexpected marks a status the operation does not allow: any 5xx, and
// any 4xx other than the ones a bad request was meant to draw.
var errUnexpected = errors.New("unexpected status")

// do sends one request of operation op and returns its status and body;
// a transport error or a status outside want is an error.
func (s *soak) do(ctx context.Context, op, method, path, ctype string, body []byte, want ...int) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	t0 := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		s.record(op, time.Since(t0), 0)
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.record(op, time.Since(t0), resp.StatusCode)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if !slices.Contains(want, resp.StatusCode) {
		return resp.StatusCode, data, fmt.Errorf("%s %s: %w %d (want %v): %.300s", method, path, errUnexpected, resp.StatusCode, want, data)
	}
	return resp.StatusCode, data, nil
}

func (s *soak) doJSON(ctx context.Context, op, method, path, ctype string, body []byte, out any, want ...int) (int, error) {
	code, data, err := s.do(ctx, op, method, path, ctype, body, want...)
	if err != nil || out == nil || code >= 300 {
		return code, err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return code, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return code, nil
}

// soakImage draws a photo for (id, gen) (imagetest.Photo), different for
// every pair, so that the backbone describes each item distinctly; JPEG
// encoding is deterministic, so the same pair gives the same bytes and the
// same descriptor.
func soakImage(id string, gen int) []byte {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s#%d", id, gen)
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, imagetest.Photo(h.Sum64(), 160, 160), &jpeg.Options{Quality: 90})
	return buf.Bytes()
}

func soakLabel(id string, gen int) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("product-%02d", (int(h.Sum32()%16)+gen)%16)
}

func soakItemPath(id string) string { return "/v1/items/" + url.PathEscape(id) }

// runSoak starts the server, drives it and checks it; the report is
// printed (and written) whether or not the run passed.
func runSoak(ctx context.Context, o soakOptions, stdout io.Writer) error {
	if o.clients < 1 || o.items < 2 || o.duration <= 0 {
		return fmt.Errorf("soak: want -clients >= 1, -items >= 2 and a positive -soak")
	}
	if o.warmup <= 0 {
		o.warmup = min(o.duration/4, time.Minute)
	}
	tmp, err := os.MkdirTemp("", "prodsearch-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "store")
	args := append([]string{"serve", "--store", dir, "--addr", "127.0.0.1:0"}, o.serveArgs...)
	if o.vectors != "" {
		args = append(args, "--index", o.vectors)
	}
	srv, err := startServer(ctx, o.binary, args)
	if err != nil {
		return err
	}
	defer srv.kill()
	fmt.Fprintf(stdout, "soak: %s serving %s on %s (pid %d); %d clients for %v after a %v warm-up\n",
		o.binary, dir, srv.url, srv.cmd.Process.Pid, o.clients, o.duration, o.warmup)

	var universe []string
	owned := make([][]string, o.clients)
	for c := range o.clients {
		for i := range o.items {
			id := fmt.Sprintf("soak/client %d/item %03d", c, i)
			owned[c] = append(owned[c], id)
			universe = append(universe, id)
		}
	}
	never := []string{"never/added-1", "never/added 2"}
	universe = append(universe, never...)
	s := &soak{
		base:   srv.url,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.clients}, Timeout: 2 * time.Minute},
		m:      storetest.NewModel(universe),
		k:      o.k,
		lat:    map[string][]float64{},
		status: map[string]map[int]int{},
		checks: map[string]int{},
	}
	defer s.client.CloseIdleConnections()

	rep := soakReport{Duration: o.duration.String(), Warmup: o.warmup.String(), Clients: o.clients}
	start := time.Now()
	// Clients stop between requests, never during one: a request cut short
	// would leave its outcome, and so the model, unknown.
	end := start.Add(o.warmup + o.duration)
	var wg sync.WaitGroup
	for c := range o.clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			for time.Now().Before(end) && ctx.Err() == nil {
				if err := s.step(ctx, r, owned[c], never); err != nil && ctx.Err() == nil {
					s.fail(fmt.Errorf("client %d: %w", c, err))
				}
			}
		})
	}
	// The baseline is taken once the backbone, caches and the catalogue
	// have reached their working size.
	select {
	case <-time.After(o.warmup):
		rep.RSSWarm, _ = procStatus(srv.cmd.Process.Pid, "VmRSS")
		rep.HeapWarm, rep.GoroutinesWarm = serverGauges(s)
		fmt.Fprintf(stdout, "soak: warm after %v: RSS %.1f MiB, Go heap in use %.1f MiB, %v goroutines, %d requests so far\n",
			o.warmup, mib(rep.RSSWarm), rep.HeapWarm/(1<<20), rep.GoroutinesWarm, s.total())
	case <-ctx.Done():
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return err
	}
	s.client.CloseIdleConnections()

	// With the load stopped: the catalogue must be exactly the model.
	present, err := s.m.Present()
	if err == nil {
		err = s.verifyServed(ctx, present)
	}
	if err != nil {
		s.fail(fmt.Errorf("final state: %w", err))
	}
	rep.ItemsEnd = len(present)

	rep.RSSLimit = int64(float64(rep.RSSWarm)*rssGrowth) + rssSlack
	rep.RSSEnd, _ = procStatus(srv.cmd.Process.Pid, "VmRSS")
	if rep.RSSEnd > rep.RSSLimit {
		// Freed memory goes back to the system lazily: look again after an
		// idle spell before calling it growth.
		time.Sleep(10 * time.Second)
		rep.RSSEnd, _ = procStatus(srv.cmd.Process.Pid, "VmRSS")
	}
	rep.RSSPeak, _ = procStatus(srv.cmd.Process.Pid, "VmHWM")
	rep.HeapEnd, rep.GoroutinesEnd = serverGauges(s)
	if rep.RSSWarm == 0 || rep.RSSEnd == 0 {
		s.fail(errors.New("could not read the server's VmRSS from /proc"))
	} else if rep.RSSEnd > rep.RSSLimit {
		s.fail(fmt.Errorf("RSS grew from %.1f MiB after the warm-up to %.1f MiB, over the bound of %.1f MiB (x%.1f + %d MiB)",
			mib(rep.RSSWarm), mib(rep.RSSEnd), mib(rep.RSSLimit), rssGrowth, rssSlack>>20))
	}

	if err := srv.stop(); err != nil {
		s.fail(err)
	}
	if present != nil {
		if err := verifyStore(ctx, dir, present); err != nil {
			s.fail(fmt.Errorf("after the server stopped: %w", err))
		} else {
			s.check("reopened store equals the model")
		}
	}
	s.fill(&rep, elapsed)
	rep.print(stdout)
	if err := writeJSON(o.jsonOut, rep); err != nil {
		return err
	}
	if rep.Errors > 0 {
		return fmt.Errorf("soak: %d errors; first: %s", rep.Errors, strings.Join(rep.FirstError, "; "))
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (s *soak) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lat {
		n += len(l)
	}
	return n
}

// step performs one randomly chosen operation of a client. The client is
// the only writer of the IDs in own, so its writes are sequential per ID,
// as the model requires; reads may concern any ID.
func (s *soak) step(ctx context.Context, r *rand.Rand, own, never []string) error {
	m := s.m
	id := own[r.IntN(len(own))]
	st := m.State(id)
	p := r.IntN(100)
	switch {
	case p < 30 && st.Phase() == storetest.Present:
		return s.searchOwn(ctx, id)
	case p < 38:
		return s.searchOther(ctx, r)
	case p < 55 && st.Phase() == storetest.Absent, p < 30:
		return s.add(ctx, r, own, id)
	case p < 55:
		g := m.BeginAdd(id)
		q := url.Values{"id": {id}, "label": {soakLabel(id, g)}, "replace": {"true"}}
		if _, _, err := s.do(ctx, "replace", "POST", "/v1/items?"+q.Encode(), "image/jpeg", soakImage(id, g), http.StatusCreated); err != nil {
			return err
		}
		m.EndAdd(id)
	case p < 66:
		if st.Phase() != storetest.Present {
			return s.add(ctx, r, own, id)
		}
		m.BeginRemove(id)
		if _, _, err := s.do(ctx, "remove", "DELETE", soakItemPath(id), "", nil, http.StatusNoContent); err != nil {
			return err
		}
		m.EndRemove(id)
	case p < 74:
		return s.list(ctx, r)
	case p < 80:
		return s.get(ctx, r)
	case p < 83:
		if st.Phase() != storetest.Present {
			return s.get(ctx, r)
		}
		_, data, err := s.do(ctx, "image", "GET", soakItemPath(id)+"/image", "", nil, http.StatusOK)
		if err == nil && !bytes.Equal(data, soakImage(id, st.Gen())) {
			return fmt.Errorf("the image of %s is not the one sent", id)
		}
		return err
	case p < 85:
		_, err := s.doJSON(ctx, "labels", "GET", "/v1/labels", "", nil, nil, http.StatusOK)
		return err
	case p < 88:
		w := m.Watch()
		var hr server.HealthResponse
		_, err := s.doJSON(ctx, "healthz", "GET", "/healthz", "", nil, &hr, http.StatusOK)
		w.End()
		if err != nil {
			return err
		}
		if lo, hi := w.Bounds(); hr.Items < lo || hr.Items > hi {
			return fmt.Errorf("/healthz says %d items, the model allows %d..%d", hr.Items, lo, hi)
		}
		s.check("count within the model's bounds")
	default:
		return s.bad(ctx, r, own, never)
	}
	return nil
}

func (s *soak) add(ctx context.Context, r *rand.Rand, own []string, id string) error {
	m := s.m
	ids := m.Pick(own, id, storetest.Absent, 1+r.IntN(2))
	if len(ids) == 0 {
		return nil
	}
	gens := make([]int, len(ids))
	for i, x := range ids {
		gens[i] = m.BeginAdd(x)
	}
	if len(ids) == 1 {
		q := url.Values{"id": {ids[0]}, "label": {soakLabel(ids[0], gens[0])}, "metadata": {`{"source":"soak"}`}}
		if _, _, err := s.do(ctx, "add", "POST", "/v1/items?"+q.Encode(), "image/jpeg", soakImage(ids[0], gens[0]), http.StatusCreated); err != nil {
			return err
		}
	} else {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for i, x := range ids {
			fw, _ := mw.CreateFormFile("image", "photo.jpg")
			fw.Write(soakImage(x, gens[i]))
			mw.WriteField("id", x)
			mw.WriteField("label", soakLabel(x, gens[i]))
		}
		mw.Close()
		var ar server.AddResponse
		if _, err := s.doJSON(ctx, "add batch", "POST", "/v1/items", mw.FormDataContentType(), b.Bytes(), &ar, http.StatusCreated); err != nil {
			return err
		}
		if ar.Count != len(ids) {
			return fmt.Errorf("a batch of %d was answered with count %d", len(ids), ar.Count)
		}
	}
	for _, x := range ids {
		m.EndAdd(x)
	}
	return nil
}

// searchOwn searches by the photo of an item the client holds: nobody else
// writes it, so it must come back.
func (s *soak) searchOwn(ctx context.Context, id string) error {
	w := s.m.Watch()
	gen := w.Before(id).Gen()
	var sr server.SearchResponse
	_, err := s.doJSON(ctx, "search", "POST", fmt.Sprintf("/v1/search?k=%d", s.k), "image/jpeg", soakImage(id, gen), &sr, http.StatusOK)
	w.End()
	if err != nil {
		return err
	}
	if err := s.checkResults(w, sr.Results); err != nil {
		return fmt.Errorf("search for %s: %w", id, err)
	}
	if w.MustHave(id) {
		i := slices.IndexFunc(sr.Results, func(x server.SearchResult) bool { return x.ID == id })
		if i < 0 {
			return fmt.Errorf("lost: %s, present throughout, not in the top %d for its own photo: %+v", id, s.k, sr.Results)
		}
		s.check("own photo found in top k")
		if i == 0 {
			s.check("own photo found first")
		}
	}
	return nil
}

// searchOther searches by a photo that is not in the catalogue, sometimes
// with a label filter or query expansion.
func (s *soak) searchOther(ctx context.Context, r *rand.Rand) error {
	q := [...]string{"", "?k=3", "?rerank=qe"}[r.IntN(3)]
	label := ""
	if r.IntN(4) == 0 {
		label = soakLabel("x", r.IntN(16))
		q = "?label=" + url.QueryEscape(label)
	}
	w := s.m.Watch()
	var sr server.SearchResponse
	_, err := s.doJSON(ctx, "search (photo not stored)", "POST", "/v1/search"+q, "image/jpeg", soakImage("query", r.IntN(1000)), &sr, http.StatusOK)
	w.End()
	if err != nil {
		return err
	}
	for _, x := range sr.Results {
		if label != "" && x.Label != label {
			return fmt.Errorf("search with label %q returned %+v", label, x)
		}
	}
	return s.checkResults(w, sr.Results)
}

func (s *soak) checkResults(w *storetest.Window, res []server.SearchResult) error {
	seen := map[string]bool{}
	for _, x := range res {
		if err := w.CheckHit(x.ID, x.Label, seen, func(g int) string { return soakLabel(x.ID, g) }); err != nil {
			return err
		}
	}
	s.check("search results checked for ghosts")
	return nil
}

func (s *soak) list(ctx context.Context, r *rand.Rand) error {
	w := s.m.Watch()
	var lr server.ListResponse
	offset := r.IntN(len(s.m.IDs()) / 2)
	_, err := s.doJSON(ctx, "list", "GET", fmt.Sprintf("/v1/items?limit=50&offset=%d", offset), "", nil, &lr, http.StatusOK)
	w.End()
	if err != nil {
		return err
	}
	if lo, hi := w.Bounds(); lr.Total < lo || lr.Total > hi {
		return fmt.Errorf("list total %d, the model allows %d..%d", lr.Total, lo, hi)
	}
	for _, it := range lr.Items {
		if w.MustLack(it.ID) {
			return fmt.Errorf("ghost: list shows %s while absent", it.ID)
		}
	}
	s.check("count within the model's bounds")
	return nil
}

func (s *soak) get(ctx context.Context, r *rand.Rand) error {
	id := s.m.Any(r)
	w := s.m.Watch()
	var it server.ItemJSON
	code, err := s.doJSON(ctx, "get", "GET", soakItemPath(id), "", nil, &it, http.StatusOK, http.StatusNotFound)
	w.End()
	switch {
	case err != nil:
		return err
	case w.MustHave(id) && (code != http.StatusOK || it.Label != soakLabel(id, w.Before(id).Gen())):
		return fmt.Errorf("lost: GET %s: %d %+v while present", id, code, it)
	case w.MustLack(id) && code != http.StatusNotFound:
		return fmt.Errorf("ghost: GET %s: %d while absent", id, code)
	}
	s.check("item lookups checked")
	return nil
}

// bad sends one request the server must refuse with the given 4xx.
func (s *soak) bad(ctx context.Context, r *rand.Rand, own, never []string) error {
	jpg := soakImage("bad", 0)
	type badReq struct {
		name, method, path, ctype string
		body                      []byte
		want                      int
	}
	reqs := []badReq{
		{"bad: corrupt image", "POST", "/v1/search", "image/jpeg", append([]byte("\xff\xd8\xff\xe0"), bytes.Repeat([]byte("garbage"), 50)...), http.StatusBadRequest},
		{"bad: truncated image", "POST", "/v1/search", "image/jpeg", jpg[:len(jpg)/3], http.StatusBadRequest},
		{"bad: empty body", "POST", "/v1/search", "image/jpeg", nil, http.StatusBadRequest},
		{"bad: k=0", "POST", "/v1/search?k=0", "image/jpeg", jpg, http.StatusBadRequest},
		{"bad: unsupported format", "POST", "/v1/search", "image/bmp", []byte("BM\x00\x00\x00\x00\x00\x00\x00\x00"), http.StatusUnsupportedMediaType},
		{"bad: GET /v1/search", "GET", "/v1/search", "", nil, http.StatusMethodNotAllowed},
		{"bad: unknown endpoint", "GET", "/v1/nothing", "", nil, http.StatusNotFound},
		{"bad: delete never added", "DELETE", soakItemPath(never[r.IntN(len(never))]), "", nil, http.StatusNotFound},
		{"bad: add without id", "POST", "/v1/items", "image/jpeg", jpg, http.StatusBadRequest},
		{"bad: invalid id", "POST", "/v1/items?id=a%5Cb", "image/jpeg", jpg, http.StatusBadRequest},
	}
	// Re-adding an item the client holds, without replace, is a conflict.
	for _, id := range own {
		if st := s.m.State(id); st.Phase() == storetest.Present {
			reqs = append(reqs, badReq{"bad: add existing", "POST", "/v1/items?id=" + url.QueryEscape(id), "image/jpeg", jpg, http.StatusConflict})
			break
		}
	}
	b := reqs[r.IntN(len(reqs))]
	_, _, err := s.do(ctx, b.name, b.method, b.path, b.ctype, b.body, b.want)
	return err
}

// verifyServed pages through the catalogue and /healthz with no write in
// flight and compares them with the model.
func (s *soak) verifyServed(ctx context.Context, present map[string]int) error {
	seen := map[string]bool{}
	for offset := 0; ; offset += 500 {
		var lr server.ListResponse
		if _, err := s.doJSON(ctx, "list", "GET", fmt.Sprintf("/v1/items?limit=500&offset=%d", offset), "", nil, &lr, http.StatusOK); err != nil {
			return err
		}
		if lr.Total != len(present) {
			return fmt.Errorf("the catalogue lists %d items, the model holds %d", lr.Total, len(present))
		}
		for _, it := range lr.Items {
			g, ok := present[it.ID]
			if !ok || it.Label != soakLabel(it.ID, g) {
				return fmt.Errorf("listed %s with label %q; the model has generation %d (present %v)", it.ID, it.Label, g, ok)
			}
			seen[it.ID] = true
		}
		if len(lr.Items) < 500 {
			break
		}
	}
	if len(seen) != len(present) {
		return fmt.Errorf("listed %d distinct items, the model holds %d", len(seen), len(present))
	}
	var hr server.HealthResponse
	if _, err := s.doJSON(ctx, "healthz", "GET", "/healthz", "", nil, &hr, http.StatusOK); err != nil {
		return err
	}
	if hr.Items != len(present) {
		return fmt.Errorf("/healthz says %d items, the model holds %d", hr.Items, len(present))
	}
	s.check("final catalogue equals the model")
	return nil
}

// verifyStore opens the store the stopped server left and compares it
// with the model: every acknowledged item, nothing else, all whole.
func verifyStore(ctx context.Context, dir string, present map[string]int) error {
	st, err := store.Open(ctx, dir, "", 0)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		return err
	}
	items, total, err := st.List(ctx, store.ListOptions{Limit: 1 << 30})
	if err != nil {
		return err
	}
	if total != len(present) {
		return fmt.Errorf("the store holds %d items, the model %d", total, len(present))
	}
	for _, it := range items {
		if g, ok := present[it.ID]; !ok || it.Label != soakLabel(it.ID, g) {
			return fmt.Errorf("the store holds %s with label %q; the model has generation %d (present %v)", it.ID, it.Label, g, ok)
		}
	}
	return nil
}

// serverGauges reads the Go heap in use and the goroutines from the
// unlabelled gauges of the server's /metrics (0 when unreadable).
func serverGauges(s *soak) (heapInuse, goroutines float64) {
	out := map[string]float64{}
	resp, err := s.client.Get(s.base + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = f
		}
	}
	return out["go_memstats_heap_inuse_bytes"], out["go_goroutines"]
}

func (s *soak) fill(rep *soakReport, elapsed time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep.Status = map[string]int{}
	for op, lat := range s.lat {
		e := endpointReport{Name: op, Count: len(lat), Status: map[string]int{}}
		sum := summarise(lat)
		e.P50, e.P99, e.Max = sum.P50, sum.P99, slices.Max(lat)
		for code, n := range s.status[op] {
			c := strconv.Itoa(code)
			if code == 0 {
				c = "transport error"
			}
			e.Status[c] += n
			rep.Status[c] += n
		}
		rep.Requests += e.Count
		rep.Endpoints = append(rep.Endpoints, e)
	}
	slices.SortFunc(rep.Endpoints, func(a, b endpointReport) int { return strings.Compare(a.Name, b.Name) })
	rep.RPS = float64(rep.Requests) / elapsed.Seconds()
	rep.Checks = s.checks
	rep.Errors, rep.FirstError = s.nerr, s.errs
}

func (r soakReport) print(w io.Writer) {
	fmt.Fprintf(w, "\nsoak: %d clients, %s (+%s warm-up): %d requests, %.1f req/s, %d errors, %d items at the end\n",
		r.Clients, r.Duration, r.Warmup, r.Requests, r.RPS, r.Errors, r.ItemsEnd)
	fmt.Fprintf(w, "  %-28s %7s %9s %9s %9s  %s\n", "request", "count", "p50 ms", "p99 ms", "max ms", "status")
	for _, e := range r.Endpoints {
		fmt.Fprintf(w, "  %-28s %7d %9.1f %9.1f %9.1f  %s\n", e.Name, e.Count, e.P50, e.P99, e.Max, counts(e.Status))
	}
	fmt.Fprintf(w, "  status counts: %s\n", counts(r.Status))
	for _, n := range slices.Sorted(maps.Keys(r.Checks)) {
		fmt.Fprintf(w, "  check %-40s %d\n", n, r.Checks[n])
	}
	fmt.Fprintf(w, "  server RSS: %.1f MiB after warm-up, %.1f MiB at the end (bound %.1f MiB), peak %.1f MiB\n",
		mib(r.RSSWarm), mib(r.RSSEnd), mib(r.RSSLimit), mib(r.RSSPeak))
	fmt.Fprintf(w, "  server Go heap in use: %.1f -> %.1f MiB; goroutines %v -> %v\n",
		r.HeapWarm/(1<<20), r.HeapEnd/(1<<20), r.GoroutinesWarm, r.GoroutinesEnd)
	for _, e := range r.FirstError {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

// counts lists "key:count" pairs in key order.
func counts(m map[string]int) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(out, " ")
}

// serveProcess is a `prodsearch serve` child.
type serveProcess struct {
	cmd  *exec.Cmd
	url  string
	done chan error
	log  *logTail
}

// logTail keeps the last lines of the server's output, and every line
// that reports a problem.
type logTail struct {
	mu       sync.Mutex
	lines    []string
	problems []string
}

func (l *logTail) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 50 {
		l.lines = l.lines[1:]
	}
	l.lines = append(l.lines, line)
	if (strings.Contains(line, "level=ERROR") || strings.Contains(line, "DATA RACE") || strings.Contains(line, "panic")) && len(l.problems) < 20 {
		l.problems = append(l.problems, line)
	}
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// startServer runs binary with args and waits until it answers /healthz;
// the address comes from its "serving" log line, so it may listen on :0.
func startServer(ctx context.Context, binary string, args []string) (*serveProcess, error) {
	cmd := exec.Command(binary, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("soak: starting %s: %w", binary, err)
	}
	p := &serveProcess{cmd: cmd, done: make(chan error, 1), log: &logTail{}}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.log.add(line)
			if _, rest, ok := strings.Cut(line, " url="); ok && strings.Contains(line, "msg=serving") {
				u, _, _ := strings.Cut(rest, " ")
				select {
				case urls <- strings.TrimSuffix(u, "/"):
				default:
				}
			}
		}
		p.done <- cmd.Wait()
	}()
	select {
	case p.url = <-urls:
	case err := <-p.done:
		return nil, fmt.Errorf("soak: %s exited before serving: %v\n%s", binary, err, p.log)
	case <-time.After(3 * time.Minute):
		p.kill()
		return nil, fmt.Errorf("soak: %s did not start serving within 3 minutes\n%s", binary, p.log)
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
	for range 100 {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.kill()
	return nil, fmt.Errorf("soak: %s/healthz never answered 200\n%s", p.url, p.log)
}

// stop asks the server to shut down gracefully and checks that it exited
// cleanly and logged no error, race or panic.
func (p *serveProcess) stop() error {
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return fmt.Errorf("soak: interrupting the server: %w", err)
	}
	var err error
	select {
	case err = <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		return fmt.Errorf("soak: the server did not stop within 30s of an interrupt\n%s", p.log)
	}
	p.done <- err // for kill
	if err != nil {
		return fmt.Errorf("soak: the server exited with %v\n%s", err, p.log)
	}
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	if len(p.log.problems) > 0 {
		return fmt.Errorf("soak: the server logged problems:\n%s", strings.Join(p.log.problems, "\n"))
	}
	return nil
}

// kill ends the server if it is still running.
func (p *serveProcess) kill() {
	select {
	case err := <-p.done:
		p.done <- err
	default:
		p.cmd.Process.Kill()
	}
}
