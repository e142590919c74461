package mgmt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/mgmt"
	"github.com/warrenmq/warren/store"
)

// do sends a request with a JSON body as user and returns status, headers and body.
func do(t *testing.T, method, url, user, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	pass := user + "pw"
	if user == "guest" {
		pass = "guest"
	}
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

// want checks a request's status and, when reason is not "", its error reason.
func want(t *testing.T, method, url, user, body string, status int, reason string) []byte {
	t.Helper()
	code, _, out := do(t, method, url, user, body)
	if code != status {
		t.Fatalf("%s %s as %s: %d, want %d: %s", method, url, user, code, status, out)
	}
	if reason != "" {
		var e struct{ Reason string }
		if err := json.Unmarshal(out, &e); err != nil || e.Reason != reason {
			t.Fatalf("%s %s as %s: body %s, want reason %q", method, url, user, out, reason)
		}
	}
	return out
}

// userGrant is a test user: its tag, and its permissions in "/" as globs (noAccess: none).
type userGrant struct {
	name, tag              string
	configure, write, read string
	noAccess               bool
}

// permissionsAPI serves, on an httptest server, the API of an in-memory broker with users
// and returns the API's base URL.
func permissionsAPI(t *testing.T, users ...userGrant) string {
	t.Helper()
	compile := func(glob string) *configs.Pattern {
		p, err := configs.CompilePattern(glob)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var accounts []server.Account
	var grants []server.Grant
	for _, u := range users {
		accounts = append(accounts, account(u.name, u.tag))
		if !u.noAccess {
			grants = append(grants, server.Grant{User: u.name, Vhost: "/", Permissions: server.Permissions{
				Configure: compile(u.configure), Write: compile(u.write), Read: compile(u.read)}})
		}
	}
	acc, err := server.NewAccess(accounts, grants)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Logger: zerolog.Nop(), Access: acc})
	if err := srv.Recover(); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(mgmt.Handler(t.Context(), srv, mgmt.Identity{Node: "warren@test"}, zerolog.Nop()))
	t.Cleanup(hs.Close)
	return hs.URL + "/api"
}

// TestWritePermissions: the API declares, binds and deletes with the user's AMQP
// permissions: a management user limited to "app.*" may declare app.q but not other.q (401
// Access refused.), may not bind what it may not write, and a user without access to the
// vhost is refused before anything is looked at.
func TestWritePermissions(t *testing.T) {
	api := permissionsAPI(t,
		userGrant{name: "guest", tag: "administrator", configure: "*", write: "*", read: "*"},
		userGrant{name: "app", tag: "management", configure: "app.*", write: "app.*", read: "app.*"},
		userGrant{name: "out", tag: "management", noAccess: true})

	want(t, "PUT", api+"/queues/%2F/app.q", "app", `{"durable":true}`, 201, "")
	want(t, "PUT", api+"/queues/%2F/other.q", "app", `{}`, 401, "Access refused.")
	want(t, "PUT", api+"/exchanges/%2F/app.x", "app", `{"type":"topic"}`, 201, "")
	want(t, "PUT", api+"/exchanges/%2F/other.x", "app", `{"type":"topic"}`, 401, "Access refused.")
	want(t, "PUT", api+"/queues/%2F/other.q", "guest", `{}`, 201, "")
	want(t, "POST", api+"/bindings/%2F/e/app.x/q/app.q", "app", `{"routing_key":"a"}`, 201, "")
	want(t, "POST", api+"/bindings/%2F/e/app.x/q/other.q", "app", `{"routing_key":"a"}`, 401, "Access refused.")
	want(t, "DELETE", api+"/queues/%2F/other.q", "app", "", 401, "Access refused.")
	want(t, "PUT", api+"/queues/%2F/app.q2", "out", `{}`, 401, "User not authorised to access virtual host")
	want(t, "DELETE", api+"/bindings/%2F/e/app.x/q/app.q/a", "app", "", 204, "")
	want(t, "DELETE", api+"/queues/%2F/app.q", "app", "", 204, "")
	want(t, "DELETE", api+"/exchanges/%2F/app.x", "app", "", 204, "")
}

// TestWriteRefusesLongNames: names AMQP cannot carry (over 255 bytes) are refused for
// exchanges too, where RabbitMQ makes an exchange no client can name.
func TestWriteRefusesLongNames(t *testing.T) {
	b := startBroker(t)
	long := strings.Repeat("x", 256)
	want(t, "PUT", b.api+"/api/exchanges/%2F/"+long, "guest", `{"type":"fanout"}`, 400, "exchange should be less than 255 bytes, actually was 256\n")
	want(t, "PUT", b.api+"/api/queues/%2F/"+long, "guest", `{}`, 400, "queue should be less than 255 bytes, actually was 256\n")
	want(t, "PUT", b.api+"/api/exchanges/%2F/"+long[:255], "guest", `{"type":"fanout"}`, 201, "")
}

// TestWriteSurvivesRestart: durable exchanges, queues and bindings declared through the API,
// and persistent messages published through it, are in the store like a client's: a broker
// restarted on the same store has them, and the non-durable queue and message are gone.
func TestWriteSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	start := func() (*server.Server, *store.Store, string, func()) {
		st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop(), NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		srv := server.New(server.Config{Logger: zerolog.Nop(), Store: st})
		if err := srv.Recover(); err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(mgmt.Handler(t.Context(), srv, mgmt.Identity{Node: "warren@test"}, zerolog.Nop()))
		return srv, st, hs.URL + "/api", func() {
			hs.Close()
			if err := srv.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		}
	}
	_, _, api, stop := start()
	want(t, "PUT", api+"/exchanges/%2F/keep.x", "guest", `{"type":"topic","durable":true}`, 201, "")
	want(t, "PUT", api+"/queues/%2F/keep.q", "guest", `{"durable":"true","arguments":{"x-max-length":5}}`, 201, "")
	want(t, "PUT", api+"/queues/%2F/lose.q", "guest", `{"durable":false}`, 201, "")
	want(t, "POST", api+"/bindings/%2F/e/keep.x/q/keep.q", "guest", `{"routing_key":"k.#"}`, 201, "")
	want(t, "POST", api+"/exchanges/%2F/keep.x/publish", "guest",
		`{"routing_key":"k.1","properties":{"delivery_mode":2},"payload":"kept","payload_encoding":"string"}`, 200, "")
	want(t, "POST", api+"/exchanges/%2F/keep.x/publish", "guest",
		`{"routing_key":"k.2","properties":{},"payload":"transient","payload_encoding":"string"}`, 200, "")
	stop()

	srv, _, api, stop := start()
	defer stop()
	want(t, "PUT", api+"/exchanges/%2F/keep.x", "guest", `{"type":"topic","durable":true}`, 204, "")
	want(t, "PUT", api+"/queues/%2F/keep.q", "guest", `{"durable":true,"arguments":{"x-max-length":5}}`, 204, "")
	want(t, "GET", api+"/bindings/%2F/e/keep.x/q/keep.q/k.%23", "guest", "", 200, "")
	got := want(t, "POST", api+"/queues/%2F/keep.q/get", "guest", `{"count":5,"ackmode":"ack_requeue_false","encoding":"auto"}`, 200, "")
	var msgs []struct{ Payload string }
	if err := json.Unmarshal(got, &msgs); err != nil || len(msgs) != 1 || msgs[0].Payload != "kept" {
		t.Fatalf("messages after the restart: %s, want only the persistent one", got)
	}
	for _, v := range srv.Vhosts() {
		for _, q := range v.Queues() {
			if q.Name == "lose.q" {
				t.Fatal("the non-durable queue survived the restart")
			}
		}
	}
}
