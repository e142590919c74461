package conformance

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The management API's declaring and deleting of exchanges, queues and bindings, checked
// against what RabbitMQ 3.10 answers (run with AMQP_URL and MGMT_URL to check it there).

// apiError is a management API error body.
type apiError struct {
	Error  string          `json:"error"`
	Reason json.RawMessage `json:"reason"`
}

// wantAPIError sends a request and checks its status and error body; reason is the JSON of
// the reason field ("" does not check it).
func wantAPIError(t *testing.T, a *api, method, path string, body any, status int, kind, reason string) {
	t.Helper()
	code, out := a.do(method, path, body)
	if code != status {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, status, out)
	}
	var e apiError
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("%s %s: error body %q: %v", method, path, out, err)
	}
	if e.Error != kind || (reason != "" && string(e.Reason) != reason) {
		t.Fatalf("%s %s: error %s reason %s, want %s %s", method, path, e.Error, e.Reason, kind, reason)
	}
}

// reasonText is a reason that is a JSON string.
func reasonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// raw sends a request with a literal body and returns status and body.
func (a *api) raw(method, path, body string) (int, []byte) {
	a.t.Helper()
	code, out, _ := a.request(method, path, []byte(body))
	return code, out
}

// sendFull sends body as JSON and returns status, body and headers.
func (a *api) sendFull(method, path string, body any) (int, []byte, http.Header) {
	a.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.request(method, path, b)
}

func (a *api) request(method, path string, body []byte) (int, []byte, http.Header) {
	a.t.Helper()
	req, err := http.NewRequest(method, mgmtURL+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.SetBasicAuth(a.user, a.pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, out, resp.Header
}

// TestManagementDeclaresAndDeletesExchanges: PUT /api/exchanges/{vhost}/{name} declares as
// exchange.declare (201 new, 204 equivalent, 400 inequivalent or bad input, 401 for amq.,
// 404 for a missing vhost) and DELETE deletes it, refusing an exchange in use with
// if-unused, 404 once it is gone.
func TestManagementDeclaresAndDeletesExchanges(t *testing.T) {
	a := mgmtAPI(t)
	conn, ch := connChannel(t)
	defer conn.Close()
	x := uniqueName(t, "x")
	path := "/api/exchanges/%2F/" + esc(x)
	deleteExchangeLater(t, x)

	a.json("PUT", path, map[string]any{"type": "direct", "durable": true}, http.StatusCreated, nil)
	a.json("PUT", path, map[string]any{"type": "direct", "durable": "true"}, http.StatusNoContent, nil)
	if err := ch.ExchangeDeclarePassive(x, "direct", true, false, false, false, nil); err != nil {
		t.Fatalf("the exchange declared through the API is not there for AMQP: %v", err)
	}
	wantAPIError(t, a, "PUT", path, map[string]any{"type": "fanout", "durable": true}, 400, "bad_request",
		reasonText("inequivalent arg 'type' for exchange '"+x+"' in vhost '/': received 'fanout' but current is 'direct'"))
	other := "/api/exchanges/%2F/" + esc(x+".other")
	// A type RabbitMQ never heard of (it says "invalid" for a name it has seen before).
	bogus := "bogus" + x[len(x)-8:]
	wantAPIError(t, a, "PUT", other, map[string]any{"type": bogus}, 400, "bad_request", reasonText("unknown exchange type '"+bogus+"'"))
	wantAPIError(t, a, "PUT", other, map[string]any{"durable": "troo"}, 400, "bad_request", `["not_boolean","troo"]`)
	wantAPIError(t, a, "PUT", "/api/exchanges/%2F/amq."+esc(x), map[string]any{"type": "direct"}, 401, "not_authorised", reasonText("Access refused."))
	a.json("PUT", "/api/exchanges/%2F/amq.direct", map[string]any{"type": "direct", "durable": true}, http.StatusNoContent, nil)
	wantAPIError(t, a, "PUT", "/api/exchanges/no-such-vhost/"+esc(x), map[string]any{"type": "direct"}, 404, "not_found", reasonText("vhost_not_found"))
	if code, out := a.raw("PUT", other, "{not json"); code != 400 || !strings.Contains(string(out), `"not_json"`) {
		t.Fatalf("PUT with a body that is not JSON: %d %s", code, out)
	}
	if code, out := a.raw("PUT", other, `"{}"`); code != 400 || !strings.Contains(string(out), "doubly-JSON-encoded") {
		t.Fatalf("PUT with a doubly encoded body: %d %s", code, out)
	}

	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "k", x, nil)
	wantAPIError(t, a, "DELETE", path+"?if-unused=true", nil, 400, "bad_request", reasonText("exchange '"+x+"' in vhost '/' in use"))
	a.json("DELETE", path, nil, http.StatusNoContent, nil)
	wantAPIError(t, a, "DELETE", path, nil, 404, "Object Not Found", reasonText("Not Found"))
	wantAPIError(t, a, "DELETE", other, nil, 404, "Object Not Found", reasonText("Not Found"))
}

// TestManagementDeclaresAndDeletesQueues: PUT /api/queues/{vhost}/{name} declares as
// queue.declare and DELETE honours if-empty, with RabbitMQ's codes and texts.
func TestManagementDeclaresAndDeletesQueues(t *testing.T) {
	a := mgmtAPI(t)
	conn, ch := connChannel(t)
	defer conn.Close()
	q := uniqueName(t, "q")
	path := "/api/queues/%2F/" + esc(q)
	deleteQueueLater(t, q)

	a.json("PUT", path, map[string]any{"durable": true, "arguments": map[string]any{"x-max-length": 10}}, http.StatusCreated, nil)
	a.json("PUT", path, map[string]any{"durable": "true", "auto_delete": "false", "arguments": map[string]any{"x-max-length": 10}}, http.StatusNoContent, nil)
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-max-length": int64(10)}); err != nil {
		t.Fatalf("AMQP redeclare of the queue the API declared: %v", err)
	}
	wantAPIError(t, a, "PUT", path, map[string]any{"durable": false}, 400, "bad_request",
		reasonText("inequivalent arg 'durable' for queue '"+q+"' in vhost '/': received 'false' but current is 'true'"))
	wantAPIError(t, a, "PUT", "/api/queues/%2F/"+esc(q+".bad"), map[string]any{"arguments": map[string]any{"x-max-length": "abc"}}, 400, "bad_request", "")
	wantAPIError(t, a, "PUT", "/api/queues/%2F/amq."+esc(q), map[string]any{}, 401, "not_authorised", reasonText("Access refused."))
	wantAPIError(t, a, "PUT", "/api/queues/no-such-vhost/"+esc(q), map[string]any{}, 404, "not_found", reasonText("vhost_not_found"))
	long := strings.Repeat("q", 256)
	wantAPIError(t, a, "PUT", "/api/queues/%2F/"+long, map[string]any{}, 400, "bad_request",
		reasonText("queue should be less than 255 bytes, actually was 256\n"))

	p := newPublisher(t, conn)
	p.toQueue(q, "one")
	wantAPIError(t, a, "DELETE", path+"?if-empty=true", nil, 400, "bad_request", reasonText("queue '"+q+"' in vhost '/' not empty"))
	a.json("DELETE", path, nil, http.StatusNoContent, nil)
	wantAPIError(t, a, "DELETE", path, nil, 404, "Object Not Found", reasonText("Not Found"))
}

// binding is a binding as the API lists it.
type apiBinding struct {
	Source          string         `json:"source"`
	Vhost           string         `json:"vhost"`
	Destination     string         `json:"destination"`
	DestinationType string         `json:"destination_type"`
	RoutingKey      string         `json:"routing_key"`
	Arguments       map[string]any `json:"arguments"`
	PropertiesKey   string         `json:"properties_key"`
}

// TestManagementCreatesAndDeletesBindings: POST /api/bindings/{vhost}/e/{x}/q/{q} binds (201
// and the properties_key in Location), the pair's GET lists the bindings, the binding's own
// path shows and deletes it, and a binding made so routes AMQP publishes.
func TestManagementCreatesAndDeletesBindings(t *testing.T) {
	a := mgmtAPI(t)
	conn, ch := connChannel(t)
	defer conn.Close()
	x := declareExchange(t, ch, "direct", nil)
	q := declareQueue(t, ch, nil)
	x2 := declareExchange(t, ch, "fanout", nil)
	pair := "/api/bindings/%2F/e/" + esc(x) + "/q/" + esc(q)

	for _, c := range []struct {
		body     map[string]any
		location string
		hashed   bool // the location ends in a hash of the arguments
	}{
		{map[string]any{}, url.QueryEscape(q) + "/~", false},
		{map[string]any{"routing_key": "a b~c"}, url.QueryEscape(q) + "/a%2Bb%257Ec", false},
		{map[string]any{"routing_key": "k", "arguments": map[string]any{"x": 1}}, url.QueryEscape(q) + "/k~", true},
	} {
		code, _, hdr := a.sendFull("POST", pair, c.body)
		if code != http.StatusCreated {
			t.Fatalf("POST %s %v: %d", pair, c.body, code)
		}
		if loc := hdr.Get("Location"); !strings.HasPrefix(loc, c.location) || c.hashed == (loc == c.location) {
			t.Fatalf("POST %v: Location %q, want %q(hash)", c.body, loc, c.location)
		}
	}
	var bs []apiBinding
	a.json("GET", pair, nil, 200, &bs)
	if len(bs) != 3 {
		t.Fatalf("GET %s: %d bindings, want 3: %+v", pair, len(bs), bs)
	}
	keys := map[string]apiBinding{}
	for _, b := range bs {
		if b.Source != x || b.Destination != q || b.DestinationType != "queue" || b.Vhost != "/" {
			t.Fatalf("binding %+v", b)
		}
		keys[b.PropertiesKey] = b
	}
	if keys["~"].RoutingKey != "" || keys["a+b%7Ec"].RoutingKey != "a b~c" {
		t.Fatalf("properties keys %+v", keys)
	}
	var withArgs apiBinding
	for k, b := range keys {
		if strings.HasPrefix(k, "k~") {
			withArgs = b
		}
	}
	if withArgs.Arguments["x"] != float64(1) {
		t.Fatalf("binding with arguments: %+v", withArgs)
	}
	var one apiBinding
	a.json("GET", pair+"/"+esc(withArgs.PropertiesKey), nil, 200, &one)
	if one.RoutingKey != "k" {
		t.Fatalf("GET by properties_key: %+v", one)
	}
	wantAPIError(t, a, "GET", pair+"/zzz", nil, 404, "Object Not Found", reasonText("Not Found"))

	p := newPublisher(t, conn)
	p.body(x, "a b~c", "routed")
	equalStrings(t, "messages routed by the API's binding", getBodies(t, ch, q), []string{"routed"})

	a.json("DELETE", pair+"/"+esc("a+b%7Ec"), nil, http.StatusNoContent, nil)
	wantAPIError(t, a, "DELETE", pair+"/"+esc("a+b%7Ec"), nil, 404, "Object Not Found", reasonText("Not Found"))
	p.body(x, "a b~c", "not routed")
	wantEmpty(t, ch, q)

	wantAPIError(t, a, "POST", "/api/bindings/%2F/e/"+esc(x)+"/q/"+esc(q+".none"), map[string]any{}, 404, "not_found",
		reasonText("no queue '"+q+".none' in vhost '/'"))
	wantAPIError(t, a, "POST", "/api/bindings/%2F/e/"+esc(x+".none")+"/q/"+esc(q), map[string]any{}, 404, "not_found",
		reasonText("no exchange '"+x+".none' in vhost '/'"))
	var none []apiBinding
	a.json("GET", "/api/bindings/%2F/e/"+esc(x+".none")+"/q/"+esc(q), nil, 200, &none)
	if len(none) != 0 {
		t.Fatalf("bindings from a missing exchange: %+v", none)
	}
	wantAPIError(t, a, "GET", "/api/bindings/%2F/e/"+esc(x+".none")+"/q/"+esc(q)+"/~", nil, 404, "Object Not Found", reasonText("Not Found"))
	var implicit []apiBinding
	a.json("GET", "/api/bindings/%2F/e/amq.default/q/"+esc(q), nil, 200, &implicit)
	if len(implicit) != 1 || implicit[0].Source != "" || implicit[0].RoutingKey != q || implicit[0].PropertiesKey != url.QueryEscape(q) {
		t.Fatalf("the default exchange's binding of %s: %+v", q, implicit)
	}
	wantAPIError(t, a, "POST", "/api/bindings/%2F/e/amq.default/q/"+esc(q), map[string]any{}, 401, "not_authorised", reasonText("Access refused."))

	e2e := "/api/bindings/%2F/e/" + esc(x) + "/e/" + esc(x2)
	a.json("POST", e2e, map[string]any{"routing_key": "r"}, http.StatusCreated, nil)
	var ebs []apiBinding
	a.json("GET", e2e, nil, 200, &ebs)
	if len(ebs) != 1 || ebs[0].DestinationType != "exchange" || ebs[0].PropertiesKey != "r" {
		t.Fatalf("GET %s: %+v", e2e, ebs)
	}
	a.json("DELETE", e2e+"/r", nil, http.StatusNoContent, nil)
}
