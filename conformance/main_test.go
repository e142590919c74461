// Package conformance is Warren's black-box test suite: every test talks AMQP 0-9-1 to a broker
// through a real client (amqp091-go, or raw frames where a client cannot express the case).
//
// With AMQP_URL unset, TestMain starts Warren in-process on 127.0.0.1:0. With AMQP_URL set, the
// same tests run against that broker, e.g. a local RabbitMQ, which is how the expectations here
// are checked against real behaviour:
//
//	AMQP_URL=amqp://guest:guest@127.0.0.1:5673/ go test ./conformance/ -count=1
package conformance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/store"
)

// brokerURL is the URL every test dials: AMQP_URL, or the in-process Warren.
var brokerURL string

// external is true when AMQP_URL names the broker under test.
var external bool

// timeout bounds every wait for an event from the broker.
const timeout = 5 * time.Second

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if u := os.Getenv("AMQP_URL"); u != "" {
		brokerURL, external = u, true
		mgmtURL = externalManagementURL()
		defer closeAdmin()
		return m.Run()
	}
	w, err := launchWarren(server.Config{Logger: harnessLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}
	brokerURL = w.url
	inProcessMu.Lock()
	inProcess[w.url] = w
	inProcessMu.Unlock()
	url, stopMgmt, err := serveManagement(w.srv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance: management API:", err)
		return 1
	}
	mgmtURL = url
	code := m.Run()
	closeAdmin()
	if err := stopMgmt(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance: management API shutdown:", err)
	}
	if err := w.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance: shutdown:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// harnessLogger keeps the broker quiet unless the run is verbose, then shows warnings and worse.
func harnessLogger() zerolog.Logger {
	if !testing.Verbose() {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}

// warren is one in-process broker.
type warren struct {
	url      string
	srv      *server.Server
	st       *store.Store
	storeDir string // set when the harness opened st itself
	cancel   context.CancelFunc
	done     chan struct{}

	mu       sync.Mutex
	serveErr error
}

// launchWarren starts a broker on a fresh loopback port. When Serve returns early, the listener
// is closed so that clients fail fast with "connection refused" instead of hanging in the
// handshake, and the error is kept for dial failures to report.
//
// Unless cfg brings its own, the broker gets a Badger store in a fresh temporary directory, as
// `warren` runs by default, so the suite exercises persistence and paging too.
func launchWarren(cfg server.Config) (*warren, error) {
	w := &warren{done: make(chan struct{})}
	if cfg.Store == nil {
		dir, err := os.MkdirTemp("", "warren-conformance-")
		if err != nil {
			return nil, err
		}
		st, err := store.Open(store.Options{Dir: dir, Logger: cfg.Logger})
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		cfg.Store, w.storeDir = st, dir
	}
	w.srv = server.New(cfg)
	if err := w.srv.Recover(); err != nil {
		w.closeStore(cfg.Store)
		return nil, err
	}
	w.st = cfg.Store
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.closeStore(cfg.Store)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.url = "amqp://guest:guest@" + ln.Addr().String() + "/"
	w.cancel = cancel
	go func() {
		defer close(w.done)
		err := w.srv.Serve(ctx, ln)
		_ = ln.Close()
		w.mu.Lock()
		w.serveErr = err
		w.mu.Unlock()
	}()
	return w, nil
}

func (w *warren) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := w.srv.Shutdown(ctx)
	w.cancel()
	select {
	case <-w.done:
	case <-ctx.Done():
		return errors.Join(err, errors.New("Serve did not return after Shutdown"))
	}
	return errors.Join(err, w.closeStore(w.st))
}

// closeStore closes a store the harness opened itself and removes its directory.
func (w *warren) closeStore(st *store.Store) error {
	if w.storeDir == "" {
		return nil
	}
	err := st.Close()
	return errors.Join(err, os.RemoveAll(w.storeDir))
}

// serveError reports why an in-process broker stopped serving, if it did.
func (w *warren) serveError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.serveErr
}

// inProcess holds the in-process brokers by URL, for dial failures to explain themselves.
var (
	inProcessMu sync.Mutex
	inProcess   = map[string]*warren{}
)

// serveErrorFor explains a dial failure against an in-process broker whose Serve has returned.
func serveErrorFor(url string) error {
	inProcessMu.Lock()
	w := inProcess[url]
	inProcessMu.Unlock()
	if w == nil {
		return nil
	}
	return w.serveError()
}

// warrenOnly skips a test that needs an in-process Warren with special settings. It is the only
// skip in the suite and happens only when AMQP_URL points at another broker.
func warrenOnly(t *testing.T, why string) {
	t.Helper()
	if external {
		t.Skipf("Warren-only (AMQP_URL is set): %s", why)
	}
}

// startWarren starts an extra in-process broker with cfg for the duration of the test and returns
// its URL. Call warrenOnly first: against AMQP_URL there is no Warren to configure. Pass
// harnessLogger() as cfg.Logger to see its warnings under -v.
func startWarren(t *testing.T, cfg server.Config) string {
	t.Helper()
	if external {
		t.Fatal("startWarren needs the in-process broker; call warrenOnly first")
	}
	w, err := launchWarren(cfg)
	if err != nil {
		t.Fatalf("start Warren: %v", err)
	}
	inProcessMu.Lock()
	inProcess[w.url] = w
	inProcessMu.Unlock()
	t.Cleanup(func() {
		if err := w.stop(); err != nil {
			t.Errorf("stop Warren: %v", err)
		}
		inProcessMu.Lock()
		delete(inProcess, w.url)
		inProcessMu.Unlock()
	})
	return w.url
}
