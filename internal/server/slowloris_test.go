package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"prodsearch/internal/imageio"
	"prodsearch/internal/store"
	"prodsearch/internal/store/storetest"
)

// cutOff is what a slow client saw: how long until the server closed the
// connection, and what it answered first, if anything.
type cutOff struct {
	kind  string
	after time.Duration
	resp  []byte
}

// dribble opens a connection, sends prefix, then one byte every 50ms until
// the server closes the connection or stop is closed.
func dribble(t *testing.T, addr, kind, prefix string, stop <-chan struct{}, out chan<- cutOff) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.WriteString(conn, prefix); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte{'a'}); err != nil {
					return
				}
			}
		}
	}()
	go func() {
		data, _ := io.ReadAll(conn) // until the server closes (EOF or reset)
		out <- cutOff{kind: kind, after: time.Since(start), resp: data}
		conn.Close()
		<-done
	}()
}

// TestSlowClientsCutOff opens connections that dribble their headers and
// others that dribble their bodies (raw and multipart), and checks that the
// server closes each after its timeout while a normal client keeps being
// served quickly, and that the goroutines they held are released.
func TestSlowClientsCutOff(t *testing.T) {
	const (
		headerTimeout = 400 * time.Millisecond
		readTimeout   = 1500 * time.Millisecond
		slack         = 2 * time.Second // scheduling on a loaded machine, -race
		nHeader       = 30
		nBody         = 6
	)
	d := storetest.NewColourDescriber(16)
	st, err := store.Open(context.Background(), t.TempDir(), d.BundleID(), d.Dim())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs syncBuffer
	srv, err := New(Config{Store: st, Describer: d, RequestTimeout: time.Second,
		ReadHeaderTimeout: headerTimeout, ReadTimeout: readTimeout, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	addr := ln.Addr().String()
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(path string, body []byte) (*http.Response, time.Duration) {
		t.Helper()
		start := time.Now()
		resp, err := client.Post(base+path, "image/png", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, time.Since(start)
	}
	if resp, _ := post("/v1/items?id=tomato&label=red", pngBytes(t, red)); resp.StatusCode != 201 {
		t.Fatalf("add: %d", resp.StatusCode)
	}
	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()

	stop := make(chan struct{})
	defer close(stop)
	cuts := make(chan cutOff, nHeader+2*nBody)
	for i := range nHeader {
		dribble(t, addr, "headers", fmt.Sprintf("POST /v1/search HTTP/1.1\r\nHost: x\r\nX-Slow-%d: ", i), stop, cuts)
	}
	for range nBody {
		dribble(t, addr, "raw body", "POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n\x89PNG", stop, cuts)
		mp := "--XX\r\nContent-Disposition: form-data; name=\"image\"; filename=\"slow.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG"
		dribble(t, addr, "multipart body", "POST /v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\n"+
			fmt.Sprintf("Content-Length: %d\r\n\r\n", 100000)+mp, stop, cuts)
	}
	slowStarted := time.Now()

	// A normal client is served throughout.
	var got []cutOff
	var worst time.Duration
	searches := 0
	for len(got) < nHeader+2*nBody {
		select {
		case c := <-cuts:
			got = append(got, c)
			continue
		default:
		}
		if time.Since(slowStarted) > readTimeout+slack {
			t.Fatalf("after %v only %d of %d slow connections were closed", time.Since(slowStarted), len(got), nHeader+2*nBody)
		}
		resp, took := post("/v1/search?k=1", pngBytes(t, red))
		if resp.StatusCode != 200 {
			t.Fatalf("normal search during the slow clients: %d", resp.StatusCode)
		}
		searches++
		worst = max(worst, took)
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d normal searches while %d slow connections were open: all 200, slowest %v", searches, len(got), worst.Round(time.Millisecond))
	if worst > time.Second {
		t.Errorf("a normal search took %v while slow clients were connected", worst)
	}

	byKind := map[string][]time.Duration{}
	for _, c := range got {
		byKind[c.kind] = append(byKind[c.kind], c.after)
		limit := headerTimeout
		if c.kind != "headers" {
			limit = readTimeout
		}
		if c.after < limit-50*time.Millisecond || c.after > limit+slack {
			t.Errorf("%s dribbler cut after %v, want about %v", c.kind, c.after, limit)
		}
		switch c.kind {
		case "headers":
			if len(c.resp) != 0 && !bytes.HasPrefix(c.resp, []byte("HTTP/1.1 4")) {
				t.Errorf("header dribbler got %q", c.resp)
			}
			if len(byKind[c.kind]) == 1 {
				t.Logf("header dribbler got %d bytes before the close %q", len(c.resp), c.resp)
			}
		default:
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(c.resp)), nil)
			if err != nil {
				t.Errorf("%s dribbler: no response before the close (%v): %q", c.kind, err, c.resp)
				continue
			}
			var e errorBody
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusRequestTimeout || e.Error.Code != "body_timeout" {
				t.Errorf("%s dribbler: %d %+v (%v)", c.kind, resp.StatusCode, e, err)
			}
			if c.kind == "multipart body" && len(byKind[c.kind]) == 1 || c.kind == "raw body" && len(byKind[c.kind]) == 1 {
				t.Logf("%s dribbler answered: %d %s: %s", c.kind, resp.StatusCode, e.Error.Code, e.Error.Message)
			}
		}
	}
	for kind, ds := range byKind {
		lo, hi := ds[0], ds[0]
		for _, d := range ds {
			lo, hi = min(lo, d), max(hi, d)
		}
		t.Logf("%d %s dribblers cut after %v to %v", len(ds), kind, lo.Round(time.Millisecond), hi.Round(time.Millisecond))
	}

	// The goroutines the slow connections held are released.
	client.CloseIdleConnections()
	var now int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if now = runtime.NumGoroutine(); now <= baseGoroutines+5 {
			break
		}
	}
	t.Logf("goroutines: %d before the slow clients, %d after they were cut off", baseGoroutines, now)
	if now > baseGoroutines+5 {
		t.Errorf("goroutines: %d before, %d after", baseGoroutines, now)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("slow clients logged server errors:\n%s", logs.String())
	}
	if resp, _ := post("/v1/search?k=1", pngBytes(t, red)); resp.StatusCode != 200 || st.Len() != 1 {
		t.Errorf("after the slow clients: %d, %d items", resp.StatusCode, st.Len())
	}
}

// TestBodyOverLimit sends multipart bodies over the batch and query limits
// and checks the 413 JSON errors, that the server closes only that
// connection, and that the next request and the stored items are fine.
func TestBodyOverLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.MaxBatchBytes = 256 << 10
		c.Limits = imageio.Limits{MaxBytes: 128 << 10, MaxPixels: 1 << 20}
	})
	f.addColours()
	before := f.snapshot()
	noise := func(n int) []byte {
		r := rand.New(rand.NewPCG(1, uint64(n)))
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return append([]byte("\x89PNG\r\n\x1a\n"), b...)
	}
	cases := []struct {
		name, path string
		parts      []part
		code, msg  string
	}{
		{"add: 700 KiB batch, batch limit 256 KiB", "/v1/items",
			[]part{{"image", "a.png", noise(100 << 10)}, {"image", "b.png", noise(100 << 10)}, {"image", "c.png", noise(100 << 10)}, {"image", "d.png", noise(400 << 10)}},
			"body_too_large", "request body over the limit of 262144 bytes"},
		{"search: 1 MiB field before the image", "/v1/search",
			[]part{{"junk", "", noise(1 << 20)}, {"image", "q.png", pngBytes(t, red)}},
			"body_too_large", "request body over the limit of 196608 bytes"},
		{"search: 150 KiB image, image limit 128 KiB", "/v1/search",
			[]part{{"image", "big.png", noise(150 << 10)}},
			"image_too_large", `image "big.png" is over the limit of 131072 bytes`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.t = t
			body, ct := multipartBody(t, c.parts...)
			size := body.(*bytes.Buffer).Len()
			resp := f.do("POST", c.path, ct, body, nil, nil)
			e := readError(t, resp)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.msg) {
				t.Errorf("%d %+v, want 413 %s saying %q", resp.StatusCode, e, c.code, c.msg)
			}
			t.Logf("%d-byte body: %d %s: %s (connection close: %v)", size, resp.StatusCode, e.Error.Code, e.Error.Message, resp.Close)
			f.goodSearch()
			f.intact(before)
		})
	}
}

// TestTimeoutDefaults checks the defaults keep today's header timeout and
// that a read timeout shorter than the handling time is refused.
func TestTimeoutDefaults(t *testing.T) {
	d := storetest.NewColourDescriber(16)
	st, err := store.Open(context.Background(), t.TempDir(), d.BundleID(), d.Dim())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := New(Config{Store: st, Describer: d})
	if err != nil {
		t.Fatal(err)
	}
	if srv.cfg.ReadHeaderTimeout != 10*time.Second || srv.cfg.ReadTimeout != 90*time.Second {
		t.Errorf("defaults: header %v, read %v", srv.cfg.ReadHeaderTimeout, srv.cfg.ReadTimeout)
	}
	_, err = New(Config{Store: st, Describer: d, RequestTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "must exceed RequestTimeout") {
		t.Errorf("ReadTimeout = RequestTimeout accepted: %v", err)
	}
}
