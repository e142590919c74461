package webui_test

// The UI's tests drive headless Chromium (chromedp) against an in-process Warren whose
// management listener serves the API and the embedded UI on 127.0.0.1:0. One browser serves
// the whole package; every test gets a fresh broker and a fresh tab. Tests wait on conditions
// in the page's DOM, never on time. Screenshots go to each test's artifact directory:
//
//	go test -artifacts -outputdir test-output ./server/mgmt/webui/
//
// Set CHROMIUM to use a browser other than /usr/bin/chromium.
//
// With AMQP_URL and MGMT_URL set, the tests run the embedded UI against that broker instead,
// e.g. a local RabbitMQ, through a proxy that serves the UI and forwards /api/ to MGMT_URL:
// this is how the pages are checked against RabbitMQ's own API. The broker is shared then, so
// the tests that need one of their own (exact totals) fail at once, and the objects the tests
// make are deleted through the API when they end.
//
//	AMQP_URL=amqp://guest:guest@127.0.0.1:5673/ MGMT_URL=http://127.0.0.1:15673 go test ./server/mgmt/webui/

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/mgmt"
	"github.com/warrenmq/warren/server/mgmt/webui"
	"github.com/warrenmq/warren/store"
)

// waitTimeout bounds every wait for the page or the broker: generous, as the tests share two
// cores with -race.
const waitTimeout = 60 * time.Second

// browser is the package's Chromium; tabs are opened from it.
var browser context.Context

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		fmt.Fprintf(os.Stderr, "webui: the browser tests need Chromium (%v): apt-get install chromium, or set CHROMIUM\n", err)
		return 1
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.WindowSize(1440, 960), chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		fmt.Fprintln(os.Stderr, "webui: starting Chromium:", err)
		return 1
	}
	browser = ctx
	code := m.Run()
	if err := chromedp.Cancel(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "webui: stopping Chromium:", err)
	}
	return code
}

// broker is an in-process Warren with its management listener.
type broker struct {
	amqpURL string         // amqp://guest:guest@127.0.0.1:port/
	addr    string         // the AMQP listener's host:port
	base    string         // http://127.0.0.1:port, the UI and API
	srv     *server.Server // nil when the tests run against AMQP_URL and MGMT_URL
	api     string         // the management API's base URL
}

// inProcess returns the broker's server, failing the test when the broker is not Warren
// in-process (AMQP_URL and MGMT_URL are set): the test counts every object of the broker.
func (b *broker) inProcess(t *testing.T) *server.Server {
	t.Helper()
	if b.srv == nil {
		t.Fatal("this test counts every object of the broker: it needs its own in-process Warren (unset AMQP_URL and MGMT_URL)")
	}
	return b.srv
}

// remove deletes objects of a shared broker (AMQP_URL and MGMT_URL) through its management
// API when the test ends (paths under /api, e.g. "/queues/%2F/orders"), so that it is left as
// it was. Not found is fine. An in-process broker goes away with its test.
func (b *broker) remove(t *testing.T, paths ...string) {
	if b.srv != nil {
		return
	}
	t.Cleanup(func() {
		for _, p := range paths {
			req, err := http.NewRequest(http.MethodDelete, b.api+"/api"+p, nil)
			if err != nil {
				t.Errorf("removing %s: %v", p, err)
				continue
			}
			req.SetBasicAuth("guest", "guest")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("removing %s: %v", p, err)
				continue
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
				t.Errorf("removing %s: %s", p, resp.Status)
			}
		}
	})
}

// externalBroker serves the embedded UI on 127.0.0.1:0 in front of MGMT_URL's API.
func externalBroker(t *testing.T, amqpURL, mgmtURL string) *broker {
	t.Helper()
	target, err := url.Parse(mgmtURL)
	if err != nil {
		t.Fatalf("MGMT_URL: %v", err)
	}
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatalf("AMQP_URL: %v", err)
	}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: webui.Handler(httputil.NewSingleHostReverseProxy(target)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(hln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return &broker{amqpURL: amqpURL, addr: u.Host, base: "http://" + hln.Addr().String(), api: strings.TrimSuffix(mgmtURL, "/")}
}

// newBroker starts a Warren with a Badger store in a temporary directory and serves its
// management API and UI; both stop when the test ends.
func newBroker(t *testing.T) *broker {
	t.Helper()
	if a, m := os.Getenv("AMQP_URL"), os.Getenv("MGMT_URL"); a != "" && m != "" {
		return externalBroker(t, a, m)
	}
	log := zerolog.Nop()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	srv := server.New(server.Config{Logger: log, Store: st})
	if err := srv.Recover(); err != nil {
		t.Fatalf("recovering: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ctx, ln)
	}()
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mgmt.Handler(ctx, srv, mgmt.Identity{Node: "warren@webui-test", Listen: hln.Addr().String()}, log), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(hln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := hs.Shutdown(sctx); err != nil {
			t.Errorf("stopping the management listener: %v", err)
		}
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("stopping the broker: %v", err)
		}
		cancel()
		<-served
		if err := st.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return &broker{amqpURL: "amqp://guest:guest@" + ln.Addr().String() + "/", addr: ln.Addr().String(),
		base: "http://" + hln.Addr().String(), srv: srv, api: "http://" + hln.Addr().String()}
}

// dial connects a client named name (client_properties.connection_name) and closes it when the
// test ends.
func (b *broker) dial(t *testing.T, name string) *amqp.Connection {
	t.Helper()
	cfg := amqp.Config{Properties: amqp.NewConnectionProperties()}
	cfg.Properties.SetClientConnectionName(name)
	c, err := amqp.DialConfig(b.amqpURL, cfg)
	if err != nil {
		t.Fatalf("dialing %s: %v", b.amqpURL, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// channel opens a channel on c.
func channel(t *testing.T, c *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("opening a channel: %v", err)
	}
	return ch
}

// tab is one browser tab on one broker's UI.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string

	mu     sync.Mutex
	thrown []string // uncaught JavaScript exceptions
}

// newTab opens a tab; the test fails if the page throws an uncaught exception.
func newTab(t *testing.T, b *broker) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	tb := &tab{t: t, ctx: ctx, base: b.base}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg = d.Exception.Description
			}
			tb.mu.Lock()
			tb.thrown = append(tb.thrown, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
			tb.mu.Unlock()
		}
	}); err != nil {
		cancel()
		t.Fatalf("opening a tab: %v", err)
	}
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.thrown {
			t.Errorf("uncaught JavaScript exception: %s", e)
		}
		cancel()
	})
	return tb
}

// do runs browser actions, failing the test on error.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.shot("failed")
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression and decodes its value into T.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// open loads the UI at hash (e.g. "#/queues").
func (tb *tab) open(hash string) {
	tb.t.Helper()
	tb.do("opening "+hash, chromedp.Navigate(tb.base+"/"+hash))
}

// login logs in through the form and waits for the shell.
func (tb *tab) login(user, pass string) {
	tb.t.Helper()
	tb.do("logging in as "+user,
		chromedp.WaitVisible(chromedp.CSS("#login-user")),
		chromedp.SetValue(chromedp.CSS("#login-user"), user),
		chromedp.SetValue(chromedp.CSS("#login-pass"), pass),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#shell")))
}

// problemJS finds what the UI shows inside the elements matching a selector when a call
// failed: a listing this broker does not serve, an action's error, or a dialog's error.
const problemJS = `((scope) => {
  const m = [...document.querySelectorAll(scope)].flatMap((s) => [...s.querySelectorAll('.missing-endpoint, .load-error, .action-error, .dialog-error')])
    .find((e) => !e.hidden && e.offsetParent !== null);
  return m ? m.textContent.trim() : '';
})(%s)`

// waitUntil waits until the JavaScript condition cond is true, failing at once when the page
// shows a failed call (see waitIn).
func (tb *tab) waitUntil(what, cond, needs string) {
	tb.t.Helper()
	tb.waitIn("body", what, cond, needs)
}

// waitIn waits until the JavaScript condition cond is true. When the UI shows a failed call in
// the elements matching scope instead, the test fails at once with the UI's message and
// needs, which says what the test waits for (e.g. an endpoint other parts of Warren add).
func (tb *tab) waitIn(scope, what, cond, needs string) {
	tb.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		state := eval[struct {
			OK      bool   `json:"ok"`
			Problem string `json:"problem"`
		}](tb, fmt.Sprintf(`({ok: !!(%s), problem: %s})`, cond, fmt.Sprintf(problemJS, js(scope))))
		switch {
		case state.OK:
			return
		case state.Problem != "":
			tb.shot("failed")
			if needs != "" {
				tb.t.Fatalf("%s: the UI says: %s\nThis test passes once the broker serves %s.", what, state.Problem, needs)
			}
			tb.t.Fatalf("%s: the UI says: %s", what, state.Problem)
		case time.Now().After(deadline):
			tb.shot("failed")
			tb.t.Fatalf("%s: not true after %v: %s", what, waitTimeout, cond)
		}
		select {
		case <-tb.ctx.Done():
			tb.t.Fatalf("%s: %v", what, tb.ctx.Err())
		case <-time.After(100 * time.Millisecond): // the next look at the DOM
		}
	}
}

// click waits for the element the JavaScript expression el returns (e.g. a row's button) and
// clicks it.
func (tb *tab) click(what, el string) {
	tb.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !eval[bool](tb, fmt.Sprintf(`(() => { const e = %s; if (!e) return false; e.click(); return true; })()`, el)) {
		if time.Now().After(deadline) {
			tb.shot("failed")
			tb.t.Fatalf("%s: no such element after %v: %s", what, waitTimeout, el)
		}
		select {
		case <-tb.ctx.Done():
			tb.t.Fatalf("%s: %v", what, tb.ctx.Err())
		case <-time.After(100 * time.Millisecond): // the next look at the DOM
		}
	}
}

// text is the text of the first element matching selector ("" when there is none).
func (tb *tab) text(selector string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? '').trim()`, selector))
}

// shot saves a full-page PNG, <test>-<name>.png, in the test's artifact directory.
func (tb *tab) shot(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	// The whole page, not only the window: the viewport grows to the document's height.
	height := eval[int64](tb, `Math.max(document.documentElement.scrollHeight, window.innerHeight)`)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1440, min(height, 6000))); err != nil {
		tb.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err := chromedp.Do(ctx, chromedp.ResetViewport()); err != nil {
		tb.t.Errorf("screenshot %s: %v", name, err)
	}
	if err != nil {
		tb.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	// The test's name is in the file's: artifact directories are numbered.
	p := filepath.Join(tb.t.ArtifactDir(), tb.t.Name()+"-"+name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	tb.t.Logf("screenshot: %s", p)
}

// dark switches the tab to the dark colour scheme (prefers-color-scheme: dark).
func (tb *tab) dark() {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
	if err != nil {
		tb.t.Fatalf("switching to dark: %v", err)
	}
	tb.waitUntil("the dark scheme", `matchMedia('(prefers-color-scheme: dark)').matches`, "")
}

// js quotes s as a JavaScript string literal.
func js(s string) string { return fmt.Sprintf("%q", s) }

// row is a JavaScript expression for the table row whose data-key is key.
func row(key string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('tr[data-key]')].find((r) => r.dataset.key === %s)`, js(key))
}

// tile is a JavaScript expression for the number shown in the tile of total k.
func tile(k string) string {
	return fmt.Sprintf(`(document.querySelector('[data-total=%q] .v')?.textContent ?? '')`, k)
}
