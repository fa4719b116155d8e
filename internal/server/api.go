package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"prodsearch/internal/bundle"
	"prodsearch/internal/describe"
	"prodsearch/internal/eval"
	"prodsearch/internal/imageio"
	"prodsearch/internal/rerank"
	"prodsearch/internal/store"
)

// errorBody is every error response: {"error":{"code":..,"message":..}}.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

// httpError carries a status and a code to the one place that writes it.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errf(status int, code, format string, args ...any) error {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// fail writes err as JSON: an *httpError as it says, store and image errors
// by kind, anything else as a 500 that is logged and not shown.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var mbe *http.MaxBytesError
	var busy *busyError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.code, he.msg)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body over the limit of %d bytes", mbe.Limit))
	case errors.Is(err, imageio.ErrEmpty):
		writeError(w, http.StatusBadRequest, "empty_image", "the image is empty: "+err.Error())
	case errors.Is(err, imageio.ErrTooLarge):
		s.log.Info("refused: image too large", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusRequestEntityTooLarge, "image_too_large", err.Error())
	case errors.Is(err, imageio.ErrUnsupported):
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_image", err.Error()+" (send JPEG, PNG, WebP, HEIC, AVIF, GIF or TIFF)")
	case errors.Is(err, imageio.ErrCorrupt):
		writeError(w, http.StatusBadRequest, "corrupt_image", err.Error())
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, store.ErrExists):
		writeError(w, http.StatusConflict, "exists", err.Error()+" (add with ?replace=true to overwrite)")
	case errors.Is(err, store.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
	case errors.As(err, &busy):
		s.log.Warn("refused: decode memory budget full", "method", r.Method, "path", r.URL.Path,
			"needs_bytes", busy.need, "budget_bytes", busy.budget, "in_use_bytes", busy.inUse)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "busy", "the server is decoding as many images as its memory allows; retry in a second")
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("refused: request timed out", "method", r.Method, "path", r.URL.Path)
		writeError(w, http.StatusServiceUnavailable, "timeout", "the server is busy: the request did not finish within its time limit; retry later")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		writeError(w, 499, "canceled", "request canceled")
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
	}
}

// busyError is a request refused because its decode would pass the memory
// budget; fail answers it 503 with Retry-After.
type busyError struct{ need, budget, inUse int64 }

func (e *busyError) Error() string {
	return fmt.Sprintf("decode needs %d bytes; %d of the %d-byte budget in use", e.need, e.inUse, e.budget)
}

// allow answers 405 unless r uses one of methods (HEAD counts as GET).
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, strings.Join(methods, " or ")))
	return false
}

// authorized checks the bearer token of write requests.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Token == "" {
		return true
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.cfg.Token)) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="prodsearch"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", "this endpoint changes the catalogue and needs 'Authorization: Bearer <token>'")
	return false
}

func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, errf(http.StatusBadRequest, "bad_parameter", "%s=%q: want an integer from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

// searchRerank reads rerank= into search options: none, qe (the model's
// query expansion for this catalogue's shape, else the usual one), or
// absent/auto (the model's recipe for this shape, if it expands queries).
func (s *Server) searchRerank(v string, opt *store.SearchOptions) error {
	var recipe *rerank.Params
	if s.cfg.Recipes != nil {
		shape := "" // no labels: the shape is unknown
		if n := s.st.MedianPerLabel(); n > 0 {
			shape = bundle.ShapeForCount(n)
		}
		recipe, _ = s.cfg.Recipes.RecipeFor(shape)
	}
	withRecipe := func() {
		if recipe != nil && recipe.QE > 0 {
			opt.Rerank, opt.QE, opt.QEAlpha = store.RerankQE, recipe.QE, recipe.QEAlpha
		}
	}
	switch strings.ToLower(v) {
	case "", "auto":
		opt.Rerank = store.RerankNone
		withRecipe()
	case "none", "false", "0", "off":
		opt.Rerank = store.RerankNone
	case "qe", "true", "1", "on":
		opt.Rerank = store.RerankQE
		withRecipe()
	default:
		return errf(http.StatusBadRequest, "bad_parameter", "rerank=%q: want auto, none or qe", v)
	}
	return nil
}

func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errf(http.StatusBadRequest, "bad_parameter", "%s=%q: want true or false", name, v)
	}
	return b, nil
}

// imageURL is where the page and clients fetch an item's photo; the ID is
// escaped, and the handler looks it up as a key, never as a path.
func imageURL(id string) string { return "/v1/items/" + url.PathEscape(id) + "/image" }

// Timing is the per-stage breakdown of a search, in milliseconds. The
// stages follow one another, so read + decode + queue + resize + describe +
// search + other = total, other being what lies between them (parsing
// parameters, writing the answer).
type Timing struct {
	Read     float64 `json:"read"`
	Decode   float64 `json:"decode"`   // header, admission and decode
	Queue    float64 `json:"queue"`    // waiting for a describe slot
	Resize   float64 `json:"resize"`   // crop and resize to the views' sizes
	Describe float64 `json:"describe"` // tensor, backbone, pooling, heads
	Search   float64 `json:"search"`
	Other    float64 `json:"other"`
	Total    float64 `json:"total"`
}

// SearchResult is one hit of POST /v1/search.
type SearchResult struct {
	ID    string  `json:"id"`
	Score float32 `json:"score"`
	Label string  `json:"label"`
	// Name is the product name from the item's metadata ("name"), if any.
	Name     string `json:"name,omitempty"`
	ImageURL string `json:"image_url"`
}

// productName is metadata's "name" string, or "".
func productName(meta json.RawMessage) string {
	var m struct {
		Name string `json:"name"`
	}
	if len(meta) == 0 || json.Unmarshal(meta, &m) != nil {
		return ""
	}
	return m.Name
}

// SearchResponse is the body of POST /v1/search.
type SearchResponse struct {
	Results  []SearchResult `json:"results"`
	TimingMS Timing         `json:"timing_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	start := time.Now()
	q := r.URL.Query()
	k, err := intParam(q, "k", 10, 1, store.MaxK)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	opt := store.SearchOptions{K: k, Label: q.Get("label")}
	if err := s.searchRerank(q.Get("rerank"), &opt); err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()

	data, err := s.readQueryImage(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var t Timing
	t.Read = ms(time.Since(start))
	vec, err := s.decodeDescribe(ctx, data, &t)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	t0 := time.Now()
	hits, err := s.st.Search(ctx, vec, opt)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := time.Since(t0)
	s.metrics.observe("search", d)
	t.Search = ms(d)
	resp := SearchResponse{Results: make([]SearchResult, len(hits))}
	for i, h := range hits {
		resp.Results[i] = SearchResult{ID: h.ID, Score: h.Score, Label: h.Label, ImageURL: imageURL(h.ID)}
		if it, err := s.st.Get(h.ID); err == nil { // removed since the search: no name
			resp.Results[i].Name = productName(it.Metadata)
		}
	}
	t.Total = ms(time.Since(start))
	t.Other = max(0, t.Total-(t.Read+t.Decode+t.Queue+t.Resize+t.Describe+t.Search))
	s.metrics.observe("total", time.Since(start))
	resp.TimingMS = t
	writeJSON(w, http.StatusOK, resp)
}

// decodeDescribe turns upload bytes into a descriptor, filling the timing.
// The decode's memory is reserved from the budget before anything is
// allocated and held until the descriptor is made, when the image is
// garbage.
func (s *Server) decodeDescribe(ctx context.Context, data []byte, t *Timing) ([]float32, error) {
	t0 := time.Now()
	info, err := imageio.Probe(data, s.cfg.Limits, s.minShort)
	if err != nil {
		return nil, err
	}
	if !s.budget.tryAcquire(info.DecodeBytes) {
		s.metrics.refused.Inc()
		return nil, &busyError{need: info.DecodeBytes, budget: s.budget.limit, inUse: s.budget.used()}
	}
	defer s.budget.release(info.DecodeBytes)
	img, err := imageio.DecodeAtLeast(data, s.cfg.Limits, s.minShort)
	if err != nil {
		return nil, err
	}
	d := time.Since(t0)
	s.metrics.observe("decode", d)
	t.Decode += ms(d)

	t0 = time.Now()
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a describe slot: %w", ctx.Err())
	}
	defer func() { <-s.sem }()
	t.Queue += ms(time.Since(t0))
	t0 = time.Now()
	var vec []float32
	var resize time.Duration
	if td, ok := s.desc.(timedDescriber); ok {
		var tm describe.Timing
		vec, tm, err = td.DescribeTimed(ctx, img)
		resize = tm.Resize
	} else {
		vec, err = s.desc.Describe(ctx, img)
	}
	if err != nil {
		return nil, fmt.Errorf("describe: %w", err)
	}
	d = time.Since(t0)
	resize = min(resize, d)
	s.metrics.observe("resize", resize)
	s.metrics.observe("describe", d-resize)
	t.Resize += ms(resize)
	t.Describe += ms(d - resize)
	return vec, nil
}

// timedDescriber is a describer that says how long it spent resizing
// (bundle.Engine), so timing_ms can show resize apart from the network.
type timedDescriber interface {
	DescribeTimed(ctx context.Context, img image.Image) ([]float32, describe.Timing, error)
}

// readQueryImage reads the multipart field "image" or, for any other
// content type, the raw body.
func (s *Server) readQueryImage(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := s.cfg.Limits.MaxBytes
	r.Body = http.MaxBytesReader(w, r.Body, limit+64<<10) // room for multipart framing
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, bodyErr(err, "bad_body", "reading the request body")
		}
		if len(data) == 0 {
			return nil, errf(http.StatusBadRequest, "no_image", "no image: send the multipart form field 'image' or the raw image as the body")
		}
		return data, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errf(http.StatusBadRequest, "bad_multipart", "multipart body: %v", err)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, errf(http.StatusBadRequest, "no_image", "the multipart body has no 'image' field")
		}
		if err != nil {
			return nil, multipartErr(err)
		}
		if p.FormName() == "image" {
			return readPart(p, limit)
		}
	}
}

func multipartErr(err error) error { return bodyErr(err, "bad_multipart", "multipart body") }

// bodyErr classifies a failure to read the request body, none of which is
// the server's fault: over the limit (413, by fail), not arrived within
// ReadTimeout (408), or cut short or malformed (400 with code).
func bodyErr(err error, code, what string) error {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &ne) && ne.Timeout():
		return errf(http.StatusRequestTimeout, "body_timeout", "%s: the body did not arrive within the server's read timeout", what)
	}
	return errf(http.StatusBadRequest, code, "%s: %v", what, err)
}

// readPart reads one part, refusing more than limit bytes.
func readPart(p *multipart.Part, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(p, limit+1))
	if err != nil {
		return nil, multipartErr(err)
	}
	if int64(len(data)) > limit {
		return nil, errf(http.StatusRequestEntityTooLarge, "image_too_large", "image %q is over the limit of %d bytes", p.FileName(), limit)
	}
	return data, nil
}

// ItemJSON is an item as the API shows it.
type ItemJSON struct {
	store.Item
	Name     string `json:"name,omitempty"` // metadata's "name"
	ImageURL string `json:"image_url,omitempty"`
}

func itemJSON(it store.Item) ItemJSON {
	j := ItemJSON{Item: it, Name: productName(it.Metadata)}
	if it.ImageSize > 0 {
		j.ImageURL = imageURL(it.ID)
	}
	return j
}

// ListResponse is the body of GET /v1/items.
type ListResponse struct {
	Items  []ItemJSON `json:"items"`
	Total  int        `json:"total"`
	Offset int        `json:"offset"`
	Limit  int        `json:"limit"`
}

func (s *Server) handleItems(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	if r.Method == http.MethodPost {
		s.handleAdd(w, r)
		return
	}
	q := r.URL.Query()
	offset, err := intParam(q, "offset", 0, 0, 1<<30)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := intParam(q, "limit", 24, 1, 500)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	items, total, err := s.st.List(r.Context(), store.ListOptions{Offset: offset, Limit: limit, Label: q.Get("label")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := ListResponse{Items: make([]ItemJSON, len(items)), Total: total, Offset: offset, Limit: limit}
	for i, it := range items {
		resp.Items[i] = itemJSON(it)
	}
	writeJSON(w, http.StatusOK, resp)
}

// upload is one image of POST /v1/items before describing.
type upload struct {
	data     []byte
	fileName string
}

// addForm is what POST /v1/items carried.
type addForm struct {
	images                []upload
	ids, labels, metadata []string
}

// AddResponse is the body of a successful POST /v1/items.
type AddResponse struct {
	Added []ItemJSON `json:"added"`
	Count int        `json:"count"`
}

func (s *Server) handleAdd(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	replace, err := boolParam(r.URL.Query(), "replace")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	form, err := s.readAddForm(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	entries, err := form.entries()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Describe in parallel (bounded by the shared describe slots); the first
	// bad image fails the whole batch before anything is stored.
	g, gctx := errgroup.WithContext(ctx)
	for i := range entries {
		g.Go(func() error {
			var t Timing
			vec, err := s.decodeDescribe(gctx, form.images[i].data, &t)
			if err != nil {
				return &batchError{i: i, name: form.images[i].fileName, err: err}
			}
			entries[i].Vector = vec
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.st.Add(ctx, entries, store.AddOptions{Replace: replace}); err != nil {
		s.fail(w, r, err)
		return
	}
	s.metrics.added.Add(float64(len(entries)))
	resp := AddResponse{Added: make([]ItemJSON, 0, len(entries)), Count: len(entries)}
	for _, e := range entries {
		if it, err := s.st.Get(e.ID); err == nil {
			resp.Added = append(resp.Added, itemJSON(it))
		}
	}
	w.Header().Set("Location", "/v1/items/"+url.PathEscape(entries[0].ID))
	writeJSON(w, http.StatusCreated, resp)
}

// batchError names the image of a batch that failed; it unwraps to the
// cause so the status still follows the kind of failure.
type batchError struct {
	i    int
	name string
	err  error
}

func (e *batchError) Error() string {
	if e.name != "" {
		return fmt.Sprintf("image %d (%s): %v; nothing was added", e.i+1, e.name, e.err)
	}
	return fmt.Sprintf("image %d: %v; nothing was added", e.i+1, e.err)
}

func (e *batchError) Unwrap() error { return e.err }

// readAddForm reads a multipart batch, or a single raw image whose id,
// label and metadata come from the query string.
func (s *Server) readAddForm(w http.ResponseWriter, r *http.Request) (*addForm, error) {
	q := r.URL.Query()
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.Limits.MaxBytes)
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, bodyErr(err, "bad_body", "reading the request body")
		}
		if len(data) == 0 {
			return nil, errf(http.StatusBadRequest, "no_image", "no image: send multipart fields 'image' (with 'id', 'label', 'metadata'), or the raw image as the body with ?id=...")
		}
		f := &addForm{images: []upload{{data: data}}}
		for name, dst := range map[string]*[]string{"id": &f.ids, "label": &f.labels, "metadata": &f.metadata} {
			if v := q.Get(name); v != "" {
				*dst = []string{v}
			}
		}
		if len(f.ids) == 0 {
			return nil, errf(http.StatusBadRequest, "missing_id", "a raw image body needs ?id=...")
		}
		return f, nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBatchBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errf(http.StatusBadRequest, "bad_multipart", "multipart body: %v", err)
	}
	f := &addForm{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, multipartErr(err)
		}
		switch name := p.FormName(); name {
		case "image":
			if len(f.images) == s.cfg.MaxBatch {
				return nil, errf(http.StatusRequestEntityTooLarge, "batch_too_large", "more than %d images in one request; split the batch", s.cfg.MaxBatch)
			}
			data, err := readPart(p, s.cfg.Limits.MaxBytes)
			if err != nil {
				return nil, err
			}
			f.images = append(f.images, upload{data: data, fileName: p.FileName()})
		case "id", "label", "metadata":
			v, err := io.ReadAll(io.LimitReader(p, store.MaxMetadataLen+1))
			if err != nil {
				return nil, multipartErr(err)
			}
			if len(v) > store.MaxMetadataLen {
				return nil, errf(http.StatusBadRequest, "field_too_large", "field %q over %d bytes", name, store.MaxMetadataLen)
			}
			dst := map[string]*[]string{"id": &f.ids, "label": &f.labels, "metadata": &f.metadata}[name]
			*dst = append(*dst, string(v))
		default:
			return nil, errf(http.StatusBadRequest, "unknown_field", "unknown multipart field %q (use image, id, label, metadata)", name)
		}
	}
	if len(f.images) == 0 {
		return nil, errf(http.StatusBadRequest, "no_image", "the multipart body has no 'image' field")
	}
	return f, nil
}

// entries pairs the fields with the images: n values go one per image in
// order; a single label or metadata value applies to all; ids may be left
// out when every image has a file name, which then gives the ID.
func (f *addForm) entries() ([]store.Entry, error) {
	n := len(f.images)
	pick := func(name string, vals []string, i int, one bool) (string, error) {
		switch {
		case len(vals) == n:
			return vals[i], nil
		case len(vals) == 0:
			return "", nil
		case len(vals) == 1 && one:
			return vals[0], nil
		}
		return "", errf(http.StatusBadRequest, "misaligned_fields", "%d %s values for %d images: send one per image, in the same order", len(vals), name, n)
	}
	out := make([]store.Entry, n)
	for i, up := range f.images {
		id, err := pick("id", f.ids, i, false)
		if err != nil {
			return nil, err
		}
		if id == "" {
			if up.fileName == "" {
				return nil, errf(http.StatusBadRequest, "missing_id", "image %d has neither an 'id' field nor a file name", i+1)
			}
			id = store.RefID(up.fileName)
		}
		if err := store.ValidateID(id); err != nil {
			return nil, &batchError{i: i, name: up.fileName, err: err}
		}
		label, err := pick("label", f.labels, i, true)
		if err != nil {
			return nil, err
		}
		meta, err := pick("metadata", f.metadata, i, true)
		if err != nil {
			return nil, err
		}
		if meta != "" && !json.Valid([]byte(meta)) {
			return nil, &batchError{i: i, name: up.fileName, err: fmt.Errorf("%w: metadata is not valid JSON", store.ErrInvalid)}
		}
		var compact bytes.Buffer
		if meta != "" {
			_ = json.Compact(&compact, []byte(meta))
		}
		out[i] = store.Entry{ID: id, Label: label, FileName: up.fileName, Metadata: compact.Bytes(), Image: up.data}
	}
	return out, nil
}

func (s *Server) handleItem(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodDelete) {
		return
	}
	id := r.PathValue("id")
	if r.Method == http.MethodDelete {
		if !s.authorized(w, r) {
			return
		}
		gone, err := s.st.Remove(r.Context(), id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if len(gone) == 0 {
			s.fail(w, r, fmt.Errorf("item %q: %w", id, store.ErrNotFound))
			return
		}
		s.metrics.removed.Inc()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	it, err := s.st.Get(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, itemJSON(it))
}

func (s *Server) handleImage(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	id := r.PathValue("id")
	data, ct, err := s.st.Image(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !strings.HasPrefix(ct, "image/") {
		ct = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "no-cache") // revalidate: the ETag changes when the item is replaced
	if it, err := s.st.Get(id); err == nil {
		h.Set("ETag", fmt.Sprintf(`"%x-%x"`, it.Added.UnixNano(), it.ImageSize))
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// LabelCount is one entry of GET /v1/labels.
type LabelCount struct {
	Label string `json:"label"`
	Count int    `json:"count"`
}

func (s *Server) handleLabels(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	counts := s.st.Labels()
	out := make([]LabelCount, 0, len(counts))
	for l, n := range counts {
		out = append(out, LabelCount{l, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	writeJSON(w, http.StatusOK, map[string]any{"labels": out})
}

func (s *Server) handleLeaderboard(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	resp := struct {
		Available bool       `json:"available"`
		Rows      []eval.Row `json:"rows"`
	}{Rows: []eval.Row{}}
	if s.cfg.Leaderboard != "" {
		rows, err := eval.ReadLeaderboard(s.cfg.Leaderboard)
		var torn *eval.TornLinesError
		switch {
		case err == nil || errors.As(err, &torn):
			eval.SortRows(rows)
			resp.Available, resp.Rows = true, rows
		case errors.Is(err, fs.ErrNotExist):
		default:
			s.log.Warn("leaderboard unreadable", "path", s.cfg.Leaderboard, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// HealthResponse is the body of GET /healthz.
type HealthResponse struct {
	Status string `json:"status"`
	Items  int    `json:"items"`
	Bundle string `json:"bundle"`
	Dim    int    `json:"dim"`
	Auth   bool   `json:"auth"`
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	writeJSON(w, http.StatusOK, HealthResponse{Status: "ok", Items: s.st.Len(), Bundle: s.st.BundleID(), Dim: s.st.Dim(), Auth: s.cfg.Token != ""})
}
