package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// Browser starts headless Chromium (PRODSEARCH_CHROMIUM, default Debian's
// /usr/bin/chromium) with the flags the project's browser tests share —
// no sandbox, no GPU, no background networking, no first-run UI, a fresh
// profile under t's temporary folder — and returns a context that drives
// it. The browser is already running, so the context may be given a
// timeout. It is closed when the test ends. Without a browser the test is
// skipped (failed under CI=true).
func Browser(t testing.TB, width, height int) context.Context {
	t.Helper()
	chromium := os.Getenv("PRODSEARCH_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, err := exec.LookPath(chromium)
	Require(t, "Chromium (apt-get install -y chromium)", err)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chromium),
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.Flag("disable-background-networking", true),
			chromedp.NoFirstRun,
			chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium-profile")),
			chromedp.WindowSize(width, height),
		)...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser and must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return ctx
}

// Artifacts returns the folder where tests keep screenshots for people to
// look at: PRODSEARCH_ARTIFACTS, else artifacts/ at the repository root.
func Artifacts(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PRODSEARCH_ARTIFACTS")
	if dir == "" {
		root, _ := os.Getwd()
		for root != "/" {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			root = filepath.Dir(root)
		}
		dir = filepath.Join(root, "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Screenshot saves a full-page PNG of the browser's page as name under
// Artifacts and returns its path.
func Screenshot(ctx context.Context, t testing.TB, name string) string {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(Artifacts(t), name)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
	return p
}

// Void drops an action's value so it can run in chromedp.Do.
func Void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}
