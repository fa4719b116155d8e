package index

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/weaviate/weaviate-go-client/v5/weaviate"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/fault"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/filters"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/graphql"
	wgrpc "github.com/weaviate/weaviate-go-client/v5/weaviate/grpc"
	"github.com/weaviate/weaviate/entities/models"
	"golang.org/x/sync/errgroup"
)

// ErrFilterUnsupported is returned by stores that cannot run a position
// filter; Weaviate filters by label on the server instead (SearchLabel).
var ErrFilterUnsupported = fmt.Errorf("index: position filters are not supported by this store: %w", errors.ErrUnsupported)

// WeaviateConfig says where a collection lives and, when it must be
// created, how it is laid out. Zero fields take the defaults noted.
type WeaviateConfig struct {
	// Host is the REST endpoint, host:port. Required.
	Host string
	// GRPCHost is the gRPC endpoint; default Host's host with port 50051.
	GRPCHost string
	// Secure selects https and TLS gRPC.
	Secure bool
	// Class is the collection; its first letter is upper-cased as Weaviate
	// requires. Default "Products".
	Class string
	// Replicas is the replication factor at creation. Default 1.
	Replicas int
	// Shards is the desired shard count at creation. Default 1.
	Shards int
	// ReadConsistency is ONE, QUORUM or ALL. Default ONE, so searches
	// survive a node down whenever one replica of each shard is up.
	ReadConsistency string
	// WriteConsistency is ONE, QUORUM or ALL. Default QUORUM.
	WriteConsistency string
	// BatchSize is objects per gRPC batch. Default 512.
	BatchSize int
	// Parallel is batches in flight during Put. Default 2.
	Parallel int
	// EfSearch, EfConstruction and MaxConnections set the collection's
	// HNSW at creation; 0 keeps Weaviate's (dynamic ef, 128, 32).
	EfSearch, EfConstruction, MaxConnections int
	// Timeout bounds each request. Default 60s.
	Timeout time.Duration
}

const (
	weaviateRefProp   = "ref"
	weaviateLabelProp = "label"
	weaviateDimTag    = "prodsearch dim="
)

var weaviateClassRe = regexp.MustCompile(`^[A-Z][_0-9A-Za-z]*$`)

func (c WeaviateConfig) withDefaults() (WeaviateConfig, error) {
	if c.Host == "" {
		return c, errors.New("index: weaviate: no host")
	}
	if c.GRPCHost == "" {
		h, _, err := net.SplitHostPort(c.Host)
		if err != nil {
			h = c.Host
		}
		c.GRPCHost = net.JoinHostPort(h, "50051")
	}
	if c.Class == "" {
		c.Class = "Products"
	}
	c.Class = strings.ToUpper(c.Class[:1]) + c.Class[1:]
	if !weaviateClassRe.MatchString(c.Class) {
		return c, fmt.Errorf("index: weaviate: class %q: want a letter then letters, digits or _", c.Class)
	}
	c.Replicas = max(c.Replicas, 1)
	c.Shards = max(c.Shards, 1)
	var err error
	if c.ReadConsistency, err = consistency(c.ReadConsistency, "ONE"); err != nil {
		return c, err
	}
	if c.WriteConsistency, err = consistency(c.WriteConsistency, "QUORUM"); err != nil {
		return c, err
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 512
	}
	if c.Parallel <= 0 {
		c.Parallel = 2
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	return c, nil
}

func consistency(s, def string) (string, error) {
	if s == "" {
		return def, nil
	}
	switch u := strings.ToUpper(s); u {
	case "ONE", "QUORUM", "ALL":
		return u, nil
	}
	return "", fmt.Errorf("index: weaviate: consistency %q, want ONE, QUORUM or ALL", s)
}

// ParseWeaviateURL reads a store URL of the form
//
//	weaviate://host:port?class=Products&replicas=2&shards=3
//
// with optional grpc=host:port, read=ONE, write=QUORUM, batch=512,
// parallel=2, ef=, efc=, m= (collection HNSW), timeout=60s; weaviates://
// uses TLS.
func ParseWeaviateURL(raw string) (WeaviateConfig, error) {
	var c WeaviateConfig
	u, err := url.Parse(raw)
	if err != nil {
		return c, fmt.Errorf("index: store url: %w", err)
	}
	switch u.Scheme {
	case "weaviate":
	case "weaviates":
		c.Secure = true
	default:
		return c, fmt.Errorf("index: store url %q: scheme %q, want weaviate or weaviates", raw, u.Scheme)
	}
	if u.Host == "" {
		return c, fmt.Errorf("index: store url %q: no host", raw)
	}
	c.Host = u.Host
	q := u.Query()
	ints := map[string]*int{
		"replicas": &c.Replicas, "shards": &c.Shards, "batch": &c.BatchSize, "parallel": &c.Parallel,
		"ef": &c.EfSearch, "efc": &c.EfConstruction, "m": &c.MaxConnections,
	}
	for key, vals := range q {
		v := vals[len(vals)-1]
		if p, ok := ints[key]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return c, fmt.Errorf("index: store url: %s=%q: want a non-negative integer", key, v)
			}
			*p = n
			continue
		}
		switch key {
		case "class":
			c.Class = v
		case "grpc":
			c.GRPCHost = v
		case "read":
			c.ReadConsistency = v
		case "write":
			c.WriteConsistency = v
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return c, fmt.Errorf("index: store url: timeout: %w", err)
			}
			c.Timeout = d
		default:
			return c, fmt.Errorf("index: store url: unknown parameter %q", key)
		}
	}
	return c.withDefaults()
}

// OpenURL opens the remote store a --store URL names (see
// ParseWeaviateURL), creating its collection for dim-long vectors if it
// does not exist.
func OpenURL(ctx context.Context, rawURL string, dim int) (Index, error) {
	cfg, err := ParseWeaviateURL(rawURL)
	if err != nil {
		return nil, err
	}
	return OpenWeaviate(ctx, cfg, dim)
}

// IsStoreURL reports whether a --store value names a remote store rather
// than a directory.
func IsStoreURL(s string) bool {
	return strings.HasPrefix(s, "weaviate://") || strings.HasPrefix(s, "weaviates://")
}

// Weaviate keeps references in a Weaviate collection: one object per
// reference, with a deterministic UUID derived from its ID, properties ref
// (the ID) and label, and the descriptor as its vector under cosine
// distance. Imports go over gRPC in batches, searches over gRPC.
//
// Add buffers; Search, Remove, Len and Close send what is buffered first.
// Unlike Flat, adding an ID that exists replaces it (same UUID).
type Weaviate struct {
	client *weaviate.Client
	cfg    WeaviateConfig
	dim    int

	mu      sync.Mutex
	pending []*models.Object
}

var _ Index = (*Weaviate)(nil)

// OpenWeaviate connects and makes sure the collection exists with a
// matching layout: a collection created for another dimension or metric is
// refused rather than silently mixed.
func OpenWeaviate(ctx context.Context, cfg WeaviateConfig, dim int) (*Weaviate, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if dim <= 0 {
		return nil, fmt.Errorf("%w: invalid dimension %d", ErrDim, dim)
	}
	scheme := "http"
	if cfg.Secure {
		scheme = "https"
	}
	client, err := weaviate.NewClient(weaviate.Config{
		Host:       cfg.Host,
		Scheme:     scheme,
		GrpcConfig: &wgrpc.Config{Host: cfg.GRPCHost, Secured: cfg.Secure},
		Timeout:    cfg.Timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("index: weaviate %s: %w", cfg.Host, err)
	}
	w := &Weaviate{client: client, cfg: cfg, dim: dim}
	if err := w.ensureClass(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Weaviate) ensureClass(ctx context.Context) error {
	exists, err := w.client.Schema().ClassExistenceChecker().WithClassName(w.cfg.Class).Do(ctx)
	if err != nil {
		return fmt.Errorf("index: weaviate %s: %w", w.cfg.Host, err)
	}
	if !exists {
		err := w.client.Schema().ClassCreator().WithClass(w.classDef()).Do(ctx)
		if err == nil {
			return nil
		}
		// Another process may have created it meanwhile; check what is there.
		if ok, cerr := w.client.Schema().ClassExistenceChecker().WithClassName(w.cfg.Class).Do(ctx); cerr != nil || !ok {
			return fmt.Errorf("index: weaviate: create %s: %w", w.cfg.Class, err)
		}
	}
	class, err := w.client.Schema().ClassGetter().WithClassName(w.cfg.Class).Do(ctx)
	if err != nil {
		return fmt.Errorf("index: weaviate: get %s: %w", w.cfg.Class, err)
	}
	if d, ok := strings.CutPrefix(class.Description, weaviateDimTag); ok && d != strconv.Itoa(w.dim) {
		return fmt.Errorf("%w: collection %s holds %s-d vectors, want %d", ErrDim, w.cfg.Class, d, w.dim)
	}
	if vc, ok := class.VectorIndexConfig.(map[string]any); ok {
		if dist, _ := vc["distance"].(string); dist != "" && dist != "cosine" {
			return fmt.Errorf("index: weaviate: collection %s uses %s distance, want cosine", w.cfg.Class, dist)
		}
	}
	return nil
}

func (w *Weaviate) classDef() *models.Class {
	no, yes := false, true
	vic := map[string]any{"distance": "cosine"}
	if w.cfg.EfSearch > 0 {
		vic["ef"] = w.cfg.EfSearch
	}
	if w.cfg.EfConstruction > 0 {
		vic["efConstruction"] = w.cfg.EfConstruction
	}
	if w.cfg.MaxConnections > 0 {
		vic["maxConnections"] = w.cfg.MaxConnections
	}
	prop := func(name string) *models.Property {
		return &models.Property{
			Name: name, DataType: []string{"text"}, Tokenization: models.PropertyTokenizationField,
			IndexFilterable: &yes, IndexSearchable: &no,
		}
	}
	return &models.Class{
		Class:             w.cfg.Class,
		Description:       weaviateDimTag + strconv.Itoa(w.dim),
		Vectorizer:        "none",
		VectorIndexType:   "hnsw",
		VectorIndexConfig: vic,
		ReplicationConfig: &models.ReplicationConfig{Factor: int64(w.cfg.Replicas)},
		ShardingConfig:    map[string]any{"desiredCount": w.cfg.Shards},
		Properties:        []*models.Property{prop(weaviateRefProp), prop(weaviateLabelProp)},
	}
}

// weaviateNamespace is the UUIDv5 namespace of reference IDs.
var weaviateNamespace = [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// refUUID maps a reference ID to a fixed UUID (RFC 4122 version 5), so
// re-importing is idempotent and deletion needs no lookup.
func refUUID(id string) strfmt.UUID {
	h := sha1.New()
	h.Write(weaviateNamespace[:])
	h.Write([]byte(id))
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return strfmt.UUID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// WeaviateObject is one reference to import.
type WeaviateObject struct {
	ID     string
	Label  string
	Vector []float32
}

func (w *Weaviate) object(o WeaviateObject) (*models.Object, error) {
	if err := checkEntry(w.dim, o.ID, o.Vector); err != nil {
		return nil, err
	}
	return &models.Object{
		Class:      w.cfg.Class,
		ID:         refUUID(o.ID),
		Properties: map[string]any{weaviateRefProp: o.ID, weaviateLabelProp: o.Label},
		Vector:     append([]float32(nil), o.Vector...),
	}, nil
}

// Put imports objects in gRPC batches, Parallel at a time, and reports
// every object the server refused.
func (w *Weaviate) Put(ctx context.Context, objs []WeaviateObject) error {
	ms := make([]*models.Object, len(objs))
	for i, o := range objs {
		m, err := w.object(o)
		if err != nil {
			return err
		}
		ms[i] = m
	}
	return w.send(ctx, ms)
}

func (w *Weaviate) send(ctx context.Context, ms []*models.Object) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(w.cfg.Parallel)
	for lo := 0; lo < len(ms); lo += w.cfg.BatchSize {
		batch := ms[lo:min(lo+w.cfg.BatchSize, len(ms))]
		g.Go(func() error {
			res, err := w.client.Batch().ObjectsBatcher().WithObjects(batch...).
				WithConsistencyLevel(w.cfg.WriteConsistency).Do(gctx)
			if err != nil {
				return fmt.Errorf("index: weaviate import: %w", err)
			}
			var errs []error
			for _, r := range res {
				if r.Result == nil || r.Result.Errors == nil {
					continue
				}
				props, _ := r.Properties.(map[string]any)
				for _, e := range r.Result.Errors.Error {
					errs = append(errs, fmt.Errorf("%v: %s", props[weaviateRefProp], e.Message))
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("index: weaviate import: %d refused: %w", len(errs), errors.Join(errs[:min(len(errs), 5)]...))
			}
			return nil
		})
	}
	return g.Wait()
}

// Add buffers one unlabelled reference, sending a batch when BatchSize
// are buffered.
func (w *Weaviate) Add(id string, vec []float32) error {
	return w.AddLabeled(id, "", vec)
}

// AddLabeled is Add with a label that SearchLabel can filter on.
func (w *Weaviate) AddLabeled(id, label string, vec []float32) error {
	m, err := w.object(WeaviateObject{ID: id, Label: label, Vector: vec})
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.pending = append(w.pending, m)
	var batch []*models.Object
	if len(w.pending) >= w.cfg.BatchSize {
		batch, w.pending = w.pending, nil
	}
	w.mu.Unlock()
	if batch == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	defer cancel()
	return w.send(ctx, batch)
}

// Flush sends buffered references.
func (w *Weaviate) Flush(ctx context.Context) error {
	w.mu.Lock()
	batch := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	return w.send(ctx, batch)
}

// Search returns the k references nearest to q, best first, Index -1
// (Weaviate has no positions). A non-nil filter is refused with
// ErrFilterUnsupported; use SearchLabel.
func (w *Weaviate) Search(ctx context.Context, q []float32, k int, filter func(i int) bool) ([]Hit, error) {
	if filter != nil {
		return nil, ErrFilterUnsupported
	}
	hits, err := w.SearchLabel(ctx, q, k, "")
	if err != nil {
		return nil, err
	}
	out := make([]Hit, len(hits))
	for i, h := range hits {
		out[i] = h.Hit
	}
	return out, nil
}

// LabeledHit is a hit with the label it was imported with.
type LabeledHit struct {
	Hit
	Label string
}

// SearchLabel returns the k references nearest to q among those with
// label (all when label is ""), filtering on the server.
func (w *Weaviate) SearchLabel(ctx context.Context, q []float32, k int, label string) ([]LabeledHit, error) {
	if len(q) != w.dim {
		return nil, fmt.Errorf("index: search: %w: got %d, want %d", ErrDim, len(q), w.dim)
	}
	if k <= 0 {
		return nil, fmt.Errorf("index: weaviate search: k=%d, want > 0", k)
	}
	if err := w.Flush(ctx); err != nil {
		return nil, err
	}
	s := w.client.Experimental().Search().
		WithCollection(w.cfg.Class).
		WithLimit(k).
		WithNearVector(w.client.GraphQL().NearVectorArgBuilder().WithVector(q)).
		WithProperties(weaviateRefProp, weaviateLabelProp).
		WithMetadata(&graphql.Metadata{Distance: true}).
		WithConsistencyLevel(w.cfg.ReadConsistency)
	if label != "" {
		s = s.WithWhere(filters.Where().WithPath([]string{weaviateLabelProp}).
			WithOperator(filters.Equal).WithValueText(label))
	}
	res, err := s.Do(ctx)
	if err != nil {
		return nil, fmt.Errorf("index: weaviate search: %w", err)
	}
	out := make([]LabeledHit, len(res))
	for i, r := range res {
		id, _ := r.Properties[weaviateRefProp].(string)
		lab, _ := r.Properties[weaviateLabelProp].(string)
		out[i] = LabeledHit{Hit: Hit{ID: id, Index: -1, Score: 1 - r.Metadata.Distance}, Label: lab}
	}
	return out, nil
}

// Remove deletes id, reporting false if it was absent or the request
// failed; Delete tells the two apart.
func (w *Weaviate) Remove(id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	defer cancel()
	ok, _ := w.Delete(ctx, id)
	return ok
}

// Delete removes id and reports whether it existed.
func (w *Weaviate) Delete(ctx context.Context, id string) (bool, error) {
	uid := refUUID(id)
	w.mu.Lock()
	dropped := false
	for i, m := range w.pending {
		if m.ID == uid {
			w.pending = append(w.pending[:i], w.pending[i+1:]...)
			dropped = true
			break
		}
	}
	w.mu.Unlock()
	// DELETE answers 204 whether or not the object existed, so ask first.
	exists, err := w.client.Data().Checker().WithClassName(w.cfg.Class).WithID(uid.String()).Do(ctx)
	if err != nil {
		return false, fmt.Errorf("index: weaviate delete %q: %w", id, err)
	}
	if !exists {
		return dropped, nil
	}
	err = w.client.Data().Deleter().WithClassName(w.cfg.Class).WithID(uid.String()).
		WithConsistencyLevel(w.cfg.WriteConsistency).Do(ctx)
	var ce *fault.WeaviateClientError
	if errors.As(err, &ce) && ce.StatusCode == 404 {
		return dropped, nil
	}
	if err != nil {
		return false, fmt.Errorf("index: weaviate delete %q: %w", id, err)
	}
	return true, nil
}

// Count returns the number of objects in the collection.
func (w *Weaviate) Count(ctx context.Context) (int, error) {
	if err := w.Flush(ctx); err != nil {
		return 0, err
	}
	resp, err := w.client.GraphQL().Aggregate().WithClassName(w.cfg.Class).
		WithFields(graphql.Field{Name: "meta", Fields: []graphql.Field{{Name: "count"}}}).Do(ctx)
	if err != nil {
		return 0, fmt.Errorf("index: weaviate count: %w", err)
	}
	if len(resp.Errors) > 0 {
		return 0, fmt.Errorf("index: weaviate count: %s", resp.Errors[0].Message)
	}
	agg, _ := resp.Data["Aggregate"].(map[string]any)
	rows, _ := agg[w.cfg.Class].([]any)
	if len(rows) == 0 {
		return 0, nil
	}
	row, _ := rows[0].(map[string]any)
	meta, _ := row["meta"].(map[string]any)
	n, ok := meta["count"].(float64)
	if !ok {
		return 0, fmt.Errorf("index: weaviate count: unexpected response %v", resp.Data)
	}
	return int(n), nil
}

// Len is Count with the configured timeout; it returns 0 if the server
// cannot be asked.
func (w *Weaviate) Len() int {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	defer cancel()
	n, _ := w.Count(ctx)
	return n
}

// Dim returns the descriptor length.
func (w *Weaviate) Dim() int { return w.dim }

// Config returns the effective configuration.
func (w *Weaviate) Config() WeaviateConfig { return w.cfg }

// SetEfSearch changes the collection's HNSW search breadth (-1: Weaviate's
// dynamic ef); it applies to every client of the collection.
func (w *Weaviate) SetEfSearch(ctx context.Context, ef int) error {
	class, err := w.client.Schema().ClassGetter().WithClassName(w.cfg.Class).Do(ctx)
	if err != nil {
		return fmt.Errorf("index: weaviate: get %s: %w", w.cfg.Class, err)
	}
	vc, ok := class.VectorIndexConfig.(map[string]any)
	if !ok {
		return fmt.Errorf("index: weaviate: %s has no vector index config", w.cfg.Class)
	}
	vc["ef"] = ef
	if err := w.client.Schema().ClassUpdater().WithClass(class).Do(ctx); err != nil {
		return fmt.Errorf("index: weaviate: set ef of %s: %w", w.cfg.Class, err)
	}
	return nil
}

// Drop deletes the whole collection.
func (w *Weaviate) Drop(ctx context.Context) error {
	w.mu.Lock()
	w.pending = nil
	w.mu.Unlock()
	if err := w.client.Schema().ClassDeleter().WithClassName(w.cfg.Class).Do(ctx); err != nil {
		return fmt.Errorf("index: weaviate drop %s: %w", w.cfg.Class, err)
	}
	return nil
}

// Close sends buffered references. The client keeps no other resources.
func (w *Weaviate) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	defer cancel()
	return w.Flush(ctx)
}
