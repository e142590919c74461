package mgmt_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/mgmt"
	"github.com/warrenmq/warren/server/servertest"
)

type broker struct {
	amqpAddr string
	api      string // the httptest server's base URL
	handler  http.Handler
	srv      *server.Server
}

func account(name string, tags ...string) server.Account {
	return server.Account{Name: name, Tags: tags, Loopback: name == "guest",
		Check: func(p string) bool { return p == name+"pw" || (name == "guest" && p == "guest") }}
}

// startBroker runs an in-process broker with users guest (administrator, loopback only),
// mon (monitoring), mgr (management, access to "/") and plain (no tags), and the API on an
// httptest server.
func startBroker(t *testing.T) broker {
	t.Helper()
	all, err := configs.CompilePattern("*")
	if err != nil {
		t.Fatal(err)
	}
	perms := server.Permissions{Configure: all, Write: all, Read: all}
	acc, err := server.NewAccess(
		[]server.Account{account("guest", "administrator"), account("mon", "monitoring"), account("mgr", "management"), account("plain")},
		[]server.Grant{{User: "guest", Vhost: "/", Permissions: perms}, {User: "mgr", Vhost: "/", Permissions: perms}, {User: "plain", Vhost: "/", Permissions: perms}})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.New(t, server.Config{MemoryLimit: 1 << 40, Access: acc})
	addr := servertest.Serve(t, srv)
	h := mgmt.Handler(t.Context(), srv, mgmt.Identity{Node: "warren@test", StatsInterval: 50 * time.Millisecond}, zerolog.Nop())
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return broker{amqpAddr: addr, api: hs.URL, handler: h, srv: srv}
}

// call does one request as user:pass ("" user: no Authorization) and returns status, headers
// and body.
func call(t *testing.T, method, url, user, pass string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	return v
}

func TestAuth(t *testing.T) {
	b := startBroker(t)
	url := b.api + "/api/whoami"

	code, hdr, body := call(t, "GET", url, "", "")
	if code != 401 || hdr.Get("WWW-Authenticate") != `Basic realm="RabbitMQ Management"` || len(body) != 0 {
		t.Errorf("no credentials: %d %q %q, want 401 with the Basic realm and no body", code, hdr.Get("WWW-Authenticate"), body)
	}
	code, hdr, body = call(t, "GET", url, "guest", "wrong")
	if e := decode[map[string]string](t, body); code != 401 || hdr.Get("WWW-Authenticate") == "" ||
		e["error"] != "not_authorized" || e["reason"] != "Not_Authorized" {
		t.Errorf("wrong password: %d %s", code, body)
	}
	code, _, body = call(t, "GET", url, "plain", "plainpw")
	if e := decode[map[string]string](t, body); code != 401 || e["error"] != "not_authorised" || e["reason"] != "Not management user" {
		t.Errorf("user without tags: %d %s", code, body)
	}
	code, _, body = call(t, "GET", url, "guest", "guest")
	if w := decode[map[string]any](t, body); code != 200 || w["name"] != "guest" || len(w["tags"].([]any)) != 1 || w["tags"].([]any)[0] != "administrator" {
		t.Errorf("guest from loopback: %d %s", code, body)
	}
	code, _, body = call(t, "GET", url, "mon", "monpw")
	if code != 200 || !strings.Contains(string(body), `"monitoring"`) {
		t.Errorf("monitoring user: %d %s", code, body)
	}

	// guest from another address: the handler sees the peer address.
	req := httptest.NewRequest("GET", "/api/whoami", nil)
	req.RemoteAddr = "192.0.2.7:40000"
	req.SetBasicAuth("guest", "guest")
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	if e := decode[map[string]string](t, rec.Body.Bytes()); rec.Code != 401 || e["reason"] != "User can only log in via localhost" {
		t.Errorf("guest from 192.0.2.7: %d %s", rec.Code, rec.Body)
	}
	// mon is not a loopback user: the same address is fine.
	req.SetBasicAuth("mon", "monpw")
	rec = httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("mon from 192.0.2.7: %d %s", rec.Code, rec.Body)
	}
}

func TestNotFoundAndMethod(t *testing.T) {
	b := startBroker(t)
	code, _, body := call(t, "GET", b.api+"/api/nosuch", "guest", "guest")
	if e := decode[map[string]string](t, body); code != 404 || e["error"] != "Object Not Found" || e["reason"] != "Not Found" {
		t.Errorf("unknown path: %d %s", code, body)
	}
	code, _, body = call(t, "GET", b.api+"/api/queues/%2F/nosuch", "guest", "guest")
	if code != 404 || !strings.Contains(string(body), `"Object Not Found"`) {
		t.Errorf("missing queue: %d %s", code, body)
	}
	code, _, _ = call(t, "GET", b.api+"/api/queues/nosuchvhost", "guest", "guest")
	if code != 404 {
		t.Errorf("missing vhost: %d", code)
	}
	code, hdr, body := call(t, "DELETE", b.api+"/api/overview", "guest", "guest")
	if code != 405 || len(body) != 0 || !strings.Contains(hdr.Get("Allow"), "GET") {
		t.Errorf("DELETE /api/overview: %d allow %q %s, want 405 with an Allow header", code, hdr.Get("Allow"), body)
	}
}

func dial(t *testing.T, b broker, user, pass, name string) *amqp.Connection {
	t.Helper()
	cfg := amqp.Config{Properties: amqp.Table{}}
	if name != "" {
		cfg.Properties.SetClientConnectionName(name)
	}
	conn, err := amqp.DialConfig("amqp://"+user+":"+pass+"@"+b.amqpAddr+"/", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestQueuesAndOverview(t *testing.T) {
	b := startBroker(t)
	conn := dial(t, b, "guest", "guest", "")
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("q.durable", true, false, false, false, amqp.Table{"x-max-length": int32(10)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("q.excl", false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		dc, err := ch.PublishWithDeferredConfirm("", "q.durable", false, false, amqp.Publishing{Body: []byte("hello")})
		if err != nil {
			t.Fatal(err)
		}
		if !dc.Wait() {
			t.Fatal("publish nacked")
		}
	}
	// One delivered and unacked.
	if _, ok, err := ch.Get("q.durable", false); err != nil || !ok {
		t.Fatalf("basic.get: %v %v", ok, err)
	}

	code, _, body := call(t, "GET", b.api+"/api/queues/%2F/q.durable", "guest", "guest")
	q := decode[map[string]any](t, body)
	want := map[string]any{"name": "q.durable", "vhost": "/", "durable": true, "auto_delete": false, "exclusive": false,
		"messages": 3.0, "messages_ready": 2.0, "messages_unacknowledged": 1.0, "consumers": 0.0,
		"type": "classic", "state": "running", "node": "warren@test", "policy": nil}
	if code != 200 {
		t.Fatalf("GET queue: %d %s", code, body)
	}
	for k, v := range want {
		if q[k] != v {
			t.Errorf("queue %s = %#v, want %#v", k, q[k], v)
		}
	}
	if args, _ := q["arguments"].(map[string]any); args["x-max-length"] != 10.0 {
		t.Errorf("arguments = %#v, want x-max-length 10", q["arguments"])
	}

	for _, path := range []string{"/api/queues", "/api/queues/", "/api/queues/%2F"} {
		code, _, body = call(t, "GET", b.api+path, "guest", "guest")
		qs := decode[[]map[string]any](t, body)
		if code != 200 || len(qs) != 2 || qs[0]["name"] != "q.durable" || qs[1]["name"] != "q.excl" || qs[1]["exclusive"] != true || qs[1]["auto_delete"] != true {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	// mon (monitoring, no permissions in "/") sees no queues; plain is refused.
	code, _, body = call(t, "GET", b.api+"/api/queues", "mon", "monpw")
	if code != 200 || string(body) != "[]\n" {
		t.Errorf("mon's queues: %d %s, want []", code, body)
	}
	code, _, body = call(t, "GET", b.api+"/api/queues/%2F", "mon", "monpw")
	if e := decode[map[string]string](t, body); code != 401 || e["reason"] != "User not authorised to access virtual host" {
		t.Errorf("mon's queues in /: %d %s", code, body)
	}

	code, _, body = call(t, "GET", b.api+"/api/overview", "guest", "guest")
	ov := decode[map[string]any](t, body)
	if code != 200 || ov["rabbitmq_version"] != "3.10.25" || ov["product_name"] != server.DefaultProductName ||
		ov["product_version"] != server.Version || ov["node"] != "warren@test" || ov["cluster_name"] != "warren@test" {
		t.Errorf("overview: %d %s", code, body)
	}
	totals, _ := ov["queue_totals"].(map[string]any)
	if totals["messages"] != 3.0 || totals["messages_ready"] != 2.0 || totals["messages_unacknowledged"] != 1.0 {
		t.Errorf("queue_totals = %v", totals)
	}
	objs, _ := ov["object_totals"].(map[string]any)
	if objs["queues"] != 2.0 || objs["connections"] != 1.0 || objs["channels"] != 1.0 || objs["consumers"] != 0.0 {
		t.Errorf("object_totals = %v", objs)
	}
	stats, _ := ov["message_stats"].(map[string]any)
	if stats["publish"] != 3.0 || stats["confirm"] != 3.0 || stats["get"] != 1.0 || stats["deliver_get"] != 1.0 {
		t.Errorf("message_stats = %v", stats)
	}

	code, _, body = call(t, "GET", b.api+"/api/vhosts", "guest", "guest")
	if vs := decode[[]map[string]any](t, body); code != 200 || len(vs) != 1 || vs[0]["name"] != "/" {
		t.Errorf("vhosts: %d %s", code, body)
	}
}

func TestConnectionsListAndClose(t *testing.T) {
	b := startBroker(t)
	conn := dial(t, b, "mgr", "mgrpw", "worker-1")
	other := dial(t, b, "guest", "guest", "")
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))

	code, _, body := call(t, "GET", b.api+"/api/connections/", "guest", "guest")
	cs := decode[[]map[string]any](t, body)
	if code != 200 || len(cs) != 2 {
		t.Fatalf("connections: %d %s", code, body)
	}
	wantName := conn.LocalAddr().String() + " -> " + b.amqpAddr
	var mine map[string]any
	for _, c := range cs {
		if c["name"] == wantName {
			mine = c
		}
	}
	if mine == nil {
		t.Fatalf("no connection named %q in %s", wantName, body)
	}
	props, _ := mine["client_properties"].(map[string]any)
	if mine["user"] != "mgr" || mine["vhost"] != "/" || mine["protocol"] != "AMQP 0-9-1" || mine["user_provided_name"] != "worker-1" ||
		props["connection_name"] != "worker-1" || mine["peer_host"] != "127.0.0.1" {
		t.Errorf("connection = %v", mine)
	}
	// A management user sees only its own connection.
	code, _, body = call(t, "GET", b.api+"/api/connections", "mgr", "mgrpw")
	if cs := decode[[]map[string]any](t, body); code != 200 || len(cs) != 1 || cs[0]["name"] != wantName {
		t.Errorf("mgr's connections: %d %s", code, body)
	}
	// ... and may not close guest's.
	guestName := other.LocalAddr().String() + " -> " + b.amqpAddr
	code, _, body = call(t, "DELETE", b.api+"/api/connections/"+url.PathEscape(guestName), "mgr", "mgrpw")
	if code != 401 || !strings.Contains(string(body), "User not authorised to access object") {
		t.Errorf("mgr closing guest's connection: %d %s", code, body)
	}

	code, _, body = call(t, "DELETE", b.api+"/api/connections/"+url.PathEscape(wantName), "guest", "guest", "X-Reason", "maintenance window")
	if code != 204 || len(body) != 0 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || e.Reason != "CONNECTION_FORCED - maintenance window" || e.Server != true {
			t.Errorf("close = %+v, want 320 CONNECTION_FORCED - maintenance window", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client saw no connection.close")
	}
	code, _, _ = call(t, "DELETE", b.api+"/api/connections/"+url.PathEscape(wantName), "guest", "guest")
	if code != 404 {
		t.Errorf("DELETE of a closed connection: %d, want 404", code)
	}

	// Without X-Reason: RabbitMQ's default text.
	closed = other.NotifyClose(make(chan *amqp.Error, 1))
	code, _, _ = call(t, "DELETE", b.api+"/api/connections/"+url.PathEscape(guestName), "guest", "guest")
	if code != 204 {
		t.Fatalf("DELETE guest's: %d", code)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || e.Reason != "CONNECTION_FORCED - Closed via management plugin" {
			t.Errorf("close = %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client saw no connection.close")
	}
}
