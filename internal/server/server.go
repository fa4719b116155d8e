// Package server is prodsearch's HTTP face: a JSON API to search the
// catalogue by photo and to maintain it, Prometheus metrics, an OpenAPI
// description and a small embedded web page.
package server

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"prodsearch/internal/imageio"
	"prodsearch/internal/rerank"
	"prodsearch/internal/store"
)

//go:embed web
var webFS embed.FS

// Config wires a Server. Store and Describer are required.
type Config struct {
	Store *store.Store
	// Recipes, when set, is the model's re-ranking per catalogue shape
	// (a bundle.Bundle): a search that does not say rerank= gets the
	// query-side part (query expansion) of the recipe for the store's
	// current shape. Database-side steps (DBA, k-reciprocal) are for
	// batch jobs and are not applied online.
	Recipes Recipes
	// Describer must produce the descriptors the store holds: New refuses a
	// bundle or dimension that differs from the store's.
	Describer store.Describer
	// Token, when set, must be sent as "Authorization: Bearer <token>" to
	// every endpoint that changes the catalogue.
	Token string
	// Limits bound each uploaded image (bytes, then pixels and decode memory
	// from the header, before decoding); zero means imageio.DefaultLimits.
	// MaxDecodeBytes is capped at DecodeBudget: a larger image could never
	// be admitted, so it is refused as too large (413) instead.
	Limits imageio.Limits
	// DecodeBudget bounds the memory all requests' decodes hold at once
	// (imageio.Info.DecodeBytes, from decode until the descriptor is made);
	// a request past it is answered 503 with Retry-After. Default 768 MiB:
	// on a 2-core machine two or three 12 MP HEIC photos (130 MiB each) or
	// one 50 MP 16-bit PNG at a time, or hundreds of 12 MP JPEGs (scaled
	// decodes of about 2 MiB).
	DecodeBudget int64
	// MaxBatchBytes bounds a whole POST /v1/items body; default 256 MiB.
	MaxBatchBytes int64
	// MaxBatch bounds the images in one POST /v1/items; default 256.
	MaxBatch int
	// DescribeConcurrency bounds images described at once across all
	// requests, so a burst queues instead of thrashing; default GOMAXPROCS.
	DescribeConcurrency int
	// RequestTimeout bounds each search or add, queueing included; default 60s.
	RequestTimeout time.Duration
	// ReadHeaderTimeout bounds how long a client may take to send its
	// request headers, so connections that dribble them (slow loris) are
	// closed instead of piling up; default 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body, from its
	// first byte; a body still arriving then is answered 408. The deadline
	// also covers handling (net/http cancels a request whose connection read
	// times out), so it must exceed RequestTimeout; default RequestTimeout +
	// 30s.
	ReadTimeout time.Duration
	// Leaderboard is the training leaderboard (JSON Lines) shown on the page;
	// "" or a missing file hides it.
	Leaderboard string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server is an http.Handler; Run serves it with timeouts and graceful
// shutdown.
type Server struct {
	cfg    Config
	st     *store.Store
	desc   store.Describer
	log    *slog.Logger
	sem    chan struct{} // describe slots
	budget *memBudget    // decode memory
	// minShort is the short side uploads are decoded at (store.MinDecodeShort).
	minShort int
	metrics  *metrics
	handler  http.Handler
}

// Recipes gives the re-ranking a model chose for a catalogue shape
// (bundle.ShapeOne, ShapeFew or ShapeMany).
type Recipes interface {
	RecipeFor(shape string) (*rerank.Params, string)
}

// New checks cfg and builds the routes.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Describer == nil {
		return nil, errors.New("server: Store and Describer are required")
	}
	if got, want := cfg.Describer.BundleID(), cfg.Store.BundleID(); got != want {
		return nil, fmt.Errorf("server: the describer is bundle %q but the store holds bundle %q; serve the store with --bundle %q: %w",
			got, want, want, store.ErrBundleMismatch)
	}
	if got, want := cfg.Describer.Dim(), cfg.Store.Dim(); got != want {
		return nil, fmt.Errorf("server: the describer makes %d-d descriptors, the store holds %d-d: %w", got, want, store.ErrBundleMismatch)
	}
	if cfg.Limits == (imageio.Limits{}) {
		cfg.Limits = imageio.DefaultLimits()
	}
	if cfg.DecodeBudget <= 0 {
		cfg.DecodeBudget = 768 << 20
	}
	if cfg.Limits.MaxDecodeBytes <= 0 || cfg.Limits.MaxDecodeBytes > cfg.DecodeBudget {
		cfg.Limits.MaxDecodeBytes = cfg.DecodeBudget
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 256 << 20
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.DescribeConcurrency <= 0 {
		cfg.DescribeConcurrency = runtime.GOMAXPROCS(0)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 60 * time.Second
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = cfg.RequestTimeout + 30*time.Second
	}
	if cfg.ReadTimeout <= cfg.RequestTimeout {
		return nil, fmt.Errorf("server: ReadTimeout %v must exceed RequestTimeout %v: a request is read before it is handled", cfg.ReadTimeout, cfg.RequestTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:    cfg,
		st:     cfg.Store,
		desc:   cfg.Describer,
		log:    cfg.Logger,
		sem:    make(chan struct{}, cfg.DescribeConcurrency),
		budget: newMemBudget(cfg.DecodeBudget),

		minShort: store.MinDecodeShort(cfg.Describer),
	}
	s.metrics = newMetrics(s.st, s.budget)
	s.handler = s.routes()
	return s, nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/search", s.handleSearch)
	mux.HandleFunc("/v1/items", s.handleItems)
	mux.HandleFunc("/v1/items/{id}", s.handleItem)
	mux.HandleFunc("/v1/items/{id}/image", s.handleImage)
	mux.HandleFunc("/v1/labels", s.handleLabels)
	mux.HandleFunc("/v1/leaderboard", s.handleLeaderboard)
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s; see /openapi.yaml", r.URL.Path))
	})
	mux.HandleFunc("/healthz", s.handleHealth)
	mux.Handle("GET /metrics", s.metrics.handler())

	web, _ := fs.Sub(webFS, "web")
	static := http.FileServerFS(web)
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		http.ServeFileFS(w, r, web, "openapi.yaml")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w)
		http.ServeFileFS(w, r, web, "index.html")
	})
	mux.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w)
		http.StripPrefix("/static", static).ServeHTTP(w, r)
	})
	return s.metrics.instrument(mux)
}

// setPageHeaders keeps the page to its own scripts and images.
func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Run listens on addr and serves until ctx is done, then shuts down
// gracefully: in-flight requests get up to 15 seconds to finish.
func (s *Server) Run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener, which it closes.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.cfg.Token == "" && !isLoopback(ln.Addr()) {
		s.log.Warn("!!! LISTENING BEYOND LOOPBACK WITHOUT A TOKEN: anyone who can reach " + ln.Addr().String() +
			" can add and delete catalogue items; set a bearer token (--token or PRODSEARCH_TOKEN) or listen on 127.0.0.1 !!!")
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.RequestTimeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.log.Info("serving", "url", "http://"+ln.Addr().String()+"/", "items", s.st.Len(), "bundle", s.st.BundleID(), "auth", s.cfg.Token != "")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("server: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// isLoopback reports whether a listener accepts only local connections.
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
