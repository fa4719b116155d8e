package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"prodsearch/internal/imageio"
	"prodsearch/internal/imageio/imagetest"
)

func TestMemBudget(t *testing.T) {
	b := newMemBudget(100)
	if !b.tryAcquire(60) || b.tryAcquire(41) || !b.tryAcquire(40) || b.tryAcquire(1) {
		t.Fatal("admitted past the limit or refused within it")
	}
	b.release(60)
	b.release(40)
	if b.used() != 0 || !b.tryAcquire(100) {
		t.Fatalf("after release: %d in use", b.used())
	}
}

// TestDecodeBudget checks admission by decode memory: a search that would
// pass the budget is answered 503 busy with Retry-After and logged, one
// that alone needs more than the budget 413, and a concurrent burst of
// hostile PNGs (16-bit RGBA, tiny on the wire) gets only 200s and 503s.
func TestDecodeBudget(t *testing.T) {
	hostile := imagetest.HostilePNG(1200, 1000) // 9.6 MB decoded, 14.4 MB with the 8-bit conversion
	info, err := imageio.Probe(hostile, imageio.DefaultLimits(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if info.DecodeBytes < 1200*1000*12 {
		t.Fatalf("16-bit RGBA 1200x1000: DecodeBytes %d, want at least 8+4 bytes a pixel", info.DecodeBytes)
	}
	f := newFixture(t, func(c *Config) { c.DecodeBudget = info.DecodeBytes * 3 / 2 })
	f.addColours()

	// Another request holds most of the budget: refused at once.
	if !f.srv.budget.tryAcquire(info.DecodeBytes) {
		t.Fatal("budget full before any request")
	}
	resp := f.do("POST", "/v1/search", "image/png", bytes.NewReader(hostile), nil, nil)
	if ra := resp.Header.Get("Retry-After"); ra == "" {
		t.Error("503 without Retry-After")
	}
	f.wantError(resp, 503, "busy")
	if !strings.Contains(f.log.String(), "refused: decode memory budget full") {
		t.Errorf("refusal not logged:\n%s", f.log.String())
	}
	f.srv.budget.release(info.DecodeBytes)
	if resp := f.do("POST", "/v1/search", "image/png", bytes.NewReader(hostile), nil, nil); resp.StatusCode != 200 {
		t.Fatalf("after release: %d", resp.StatusCode)
	}
	// Alone over the budget: too large, not busy.
	f.wantError(f.do("POST", "/v1/search", "image/png", bytes.NewReader(imagetest.HostilePNG(1500, 1500)), nil, nil), 413, "image_too_large")

	codes := burst(t, f.ts.URL, hostile, 8)
	if codes[200] == 0 || codes[200]+codes[503] != 8 {
		t.Errorf("burst of 8: %v, want only 200 and 503, some 200", codes)
	}
	if f.srv.budget.used() != 0 {
		t.Errorf("%d bytes still held after the burst", f.srv.budget.used())
	}
	metrics := readAll(f.do("GET", "/metrics", "", nil, nil, nil))
	for _, want := range []string{"prodsearch_decode_refused_total", "prodsearch_decode_budget_bytes ", "prodsearch_decode_memory_bytes 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestDecodeBudgetBoundsRSS sends concurrent worst-case uploads (32 PNGs of
// 3000x3000 16-bit RGBA: 72 MB decoded each, 108 MB with the conversion)
// to a server with a 256 MiB budget and checks that every answer is 200 or
// 503, that the process's peak RSS grew by less than twice the budget
// (the budget bounds live pixels; the collector may lag by as much again),
// and that RSS is back within 64 MiB of where it started soon after.
func TestDecodeBudgetBoundsRSS(t *testing.T) {
	if raceEnabled {
		t.Skip("SKIP: RSS under the race detector measures its shadow memory")
	}
	if _, err := os.Stat("/proc/self/clear_refs"); err != nil {
		t.Skip("SKIP: needs Linux /proc to read peak RSS")
	}
	const budget = 256 << 20
	hostile := imagetest.HostilePNG(3000, 3000)
	f := newFixture(t, func(c *Config) { c.DecodeBudget = budget })
	f.addColours()
	runtime.GC()
	debug.FreeOSMemory()
	before := procKB(t, "VmRSS")
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("SKIP: cannot reset the peak RSS: %v", err)
	}
	codes := map[int]int{}
	for range 4 {
		for c, n := range burst(t, f.ts.URL, hostile, 8) {
			codes[c] += n
		}
	}
	peak := procKB(t, "VmHWM")
	if codes[200] == 0 || codes[200]+codes[503] != 32 {
		t.Errorf("4 bursts of 8: %v, want only 200 and 503, some 200", codes)
	}
	if grew := (peak - before) << 10; grew > 2*budget {
		t.Errorf("peak RSS grew by %d MiB, over twice the %d MiB budget", grew>>20, budget>>20)
	}
	var after int64
	for range 50 { // the budget returns memory as the burst ends
		if after = procKB(t, "VmRSS"); (after-before)<<10 < 64<<20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("RSS %d MiB before, peak %d MiB, %d MiB after; answers %v", before>>10, peak>>10, after>>10, codes)
	if (after-before)<<10 >= 64<<20 {
		t.Errorf("RSS still %d MiB above the start 5 s after the burst", (after-before)>>10)
	}
}

// burst sends n searches with data at once and counts the status codes.
func burst(t *testing.T, url string, data []byte, n int) map[int]int {
	t.Helper()
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(url+"/v1/search", "image/png", bytes.NewReader(data))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return codes
}

// procKB reads a kB field of /proc/self/status.
func procKB(t *testing.T, field string) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestTimingAddsUpAndRouteLabels checks that timing_ms's stages sum to its
// total, that /metrics has every stage, and that every route label is a
// path without a method.
func TestTimingAddsUpAndRouteLabels(t *testing.T) {
	f := newFixture(t, nil)
	f.addColours()
	var sr SearchResponse
	if resp := f.do("POST", "/v1/search", "image/png", bytes.NewReader(pngBytes(t, red)), nil, &sr); resp.StatusCode != 200 {
		t.Fatalf("search: %d", resp.StatusCode)
	}
	tm := sr.TimingMS
	sum := tm.Read + tm.Decode + tm.Queue + tm.Resize + tm.Describe + tm.Search + tm.Other
	if tm.Total <= 0 || tm.Decode <= 0 || tm.Search <= 0 || sum < tm.Total-0.01 || sum > tm.Total+0.01 {
		t.Errorf("timing_ms %+v: stages sum to %.3f, total %.3f", tm, sum, tm.Total)
	}
	f.do("GET", "/", "", nil, nil, nil)
	f.do("GET", "/metrics", "", nil, nil, nil)
	metrics := readAll(f.do("GET", "/metrics", "", nil, nil, nil))
	for _, st := range []string{"decode", "resize", "describe", "search", "total"} {
		if !strings.Contains(metrics, `prodsearch_stage_duration_seconds_count{stage="`+st+`"}`) {
			t.Errorf("metrics lack stage %s", st)
		}
	}
	for _, want := range []string{`route="/metrics"`, `route="/"`, `route="/v1/search"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, `route="GET `) || strings.Contains(metrics, "{$}") {
		t.Errorf("a route label keeps its method or pattern syntax:\n%s", metrics)
	}
}

// TestProductNames checks that results and items carry metadata's "name".
func TestProductNames(t *testing.T) {
	f := newFixture(t, nil)
	body, ct := multipartBody(t,
		part{"image", "tomato.png", pngBytes(t, red)}, part{"image", "lime.png", pngBytes(t, green)},
		part{"metadata", "", []byte(`{"name": "Vine tomato", "sku": "T-1"}`)}, part{"metadata", "", []byte(`{"sku": "L-2"}`)},
	)
	if resp := f.do("POST", "/v1/items", ct, body, nil, nil); resp.StatusCode != 201 {
		t.Fatalf("add: %d", resp.StatusCode)
	}
	var sr SearchResponse
	f.do("POST", "/v1/search?k=2", "image/png", bytes.NewReader(pngBytes(t, red)), nil, &sr)
	if len(sr.Results) != 2 || sr.Results[0].Name != "Vine tomato" || sr.Results[1].Name != "" {
		t.Errorf("search results %+v: want the first named Vine tomato, the second unnamed", sr.Results)
	}
	var it ItemJSON
	f.do("GET", "/v1/items/tomato", "", nil, nil, &it)
	if it.Name != "Vine tomato" {
		t.Errorf("item %+v: want name Vine tomato", it)
	}
}
