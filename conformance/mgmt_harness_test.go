package conformance

// The management API's tests talk HTTP to the broker under test: with AMQP_URL unset, the
// in-process Warren's API (server/mgmt) served on 127.0.0.1:0; with AMQP_URL set, MGMT_URL,
// e.g. http://127.0.0.1:15673 for a local RabbitMQ with the management plugin:
//
//	AMQP_URL=amqp://guest:guest@127.0.0.1:5673/ MGMT_URL=http://127.0.0.1:15673 go test ./conformance/

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/mgmt"
)

// mgmtURL is the management API's base URL (no trailing slash): MGMT_URL, or the in-process
// Warren's.
var mgmtURL string

// serveManagement serves srv's management API on a fresh loopback port and returns its URL and
// a function that stops it.
func serveManagement(srv *server.Server) (string, func() error, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	// The API samples rates until it is stopped.
	ctx, cancelSampling := context.WithCancel(context.Background())
	hs := &http.Server{Handler: mgmt.Handler(ctx, srv, mgmt.Identity{Node: "warren@localhost", Listen: ln.Addr().String()}, harnessLogger()),
		ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	stop := func() error {
		defer cancelSampling()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(ctx)
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// externalManagementURL is MGMT_URL, the API of the broker AMQP_URL names.
func externalManagementURL() string { return strings.TrimSuffix(os.Getenv("MGMT_URL"), "/") }

// api is a management API client logged in as a user.
type api struct {
	t          *testing.T
	user, pass string
}

// mgmtAPI returns a client of the broker's management API logged in as guest. It fails the
// test when the API's address is unknown (AMQP_URL set without MGMT_URL).
func mgmtAPI(t *testing.T) *api {
	t.Helper()
	if mgmtURL == "" {
		t.Fatal("AMQP_URL is set but MGMT_URL is not: set it to the broker's management API, e.g. http://127.0.0.1:15673")
	}
	return &api{t: t, user: "guest", pass: "guest"}
}

// do sends a request (body, when not nil, as JSON) and returns the status and the body.
func (a *api) do(method, path string, body any) (int, []byte) {
	a.t.Helper()
	return a.send(method, path, body, nil)
}

// doWithReason sends a bodyless request with an X-Reason header (the text DELETE
// /api/connections/{name} closes the connection with).
func (a *api) doWithReason(method, path, reason string) (int, []byte) {
	a.t.Helper()
	return a.send(method, path, nil, http.Header{"X-Reason": {reason}})
}

func (a *api) send(method, path string, body any, h http.Header) (int, []byte) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, mgmtURL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.SetBasicAuth(a.user, a.pass)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		a.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// json sends a request, checks the status, and decodes the answer into v (when not nil).
func (a *api) json(method, path string, body any, wantStatus int, v any) {
	a.t.Helper()
	code, out := a.do(method, path, body)
	if code != wantStatus {
		a.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, wantStatus, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			a.t.Fatalf("%s %s: %v in %s", method, path, err, out)
		}
	}
}

// esc is a path segment of the API: a vhost or a name, "/" as %2F.
func esc(s string) string { return url.PathEscape(s) }
