package server

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"prodsearch/internal/store"
)

// metrics live in a registry per Server, so tests and several servers in
// one process never collide on the global one.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	stage    *prometheus.HistogramVec // decode, resize, describe, search, total
	refused  prometheus.Counter       // decodes past the memory budget
	added    prometheus.Counter
	removed  prometheus.Counter
}

// Buckets from 1 ms to ~4 s: the goal is p99 under 50 ms for a search.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 13)

func newMetrics(st *store.Store, budget *memBudget) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prodsearch_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "prodsearch_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "prodsearch_stage_duration_seconds",
			Help:    "Time per image in each stage: decode (header, admission, decode), resize, describe (tensor, backbone, pooling, heads; queueing excluded), search, and total per search request.",
			Buckets: latencyBuckets,
		}, []string{"stage"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prodsearch_decode_refused_total", Help: "Images refused (503) because decoding them would pass the decode memory budget.",
		}),
		added: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prodsearch_items_added_total", Help: "Items added or replaced through the API.",
		}),
		removed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prodsearch_items_removed_total", Help: "Items removed through the API.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.stage, m.refused, m.added, m.removed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "prodsearch_decode_memory_bytes", Help: "Decode memory held now by admitted requests (estimated from headers).",
		}, func() float64 { return float64(budget.used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "prodsearch_decode_budget_bytes", Help: "The decode memory budget (--decode-budget).",
		}, func() float64 { return float64(budget.limit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "prodsearch_index_items", Help: "References in the index.",
		}, func() float64 { return float64(st.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "prodsearch_index_dimension", Help: "Descriptor length.",
		}, func() float64 { return float64(st.Dim()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) observe(stage string, d time.Duration) {
	m.stage.WithLabelValues(stage).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// statusWriter records the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts and times requests by the mux pattern that matched
// (set on r by ServeMux), which keeps label cardinality bounded whatever
// paths clients send.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := routeLabel(r.Pattern)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		m.requests.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(sw.code)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// routeLabel is the mux pattern without its method ("GET /metrics" and
// "/v1/search" alike become paths), "/" for the page's "/{$}", and
// "unmatched" when no pattern matched.
func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	return strings.TrimSuffix(pattern, "{$}")
}

// methodLabel folds unknown methods together so clients cannot grow the
// metric without bound.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch:
		return m
	}
	return "other"
}
