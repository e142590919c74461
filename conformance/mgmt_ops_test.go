package conformance

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The management API's queue contents endpoints (purge, get, publish) and health checks,
// checked against what RabbitMQ 3.10 answers.

// gotMessage is one message of POST /api/queues/{vhost}/{name}/get.
type gotMessage struct {
	PayloadBytes    int             `json:"payload_bytes"`
	Redelivered     bool            `json:"redelivered"`
	Exchange        string          `json:"exchange"`
	RoutingKey      string          `json:"routing_key"`
	MessageCount    int             `json:"message_count"`
	Properties      json.RawMessage `json:"properties"`
	Payload         string          `json:"payload"`
	PayloadEncoding string          `json:"payload_encoding"`
}

func apiPublish(t *testing.T, a *api, exchange, key string, props map[string]any, payload, encoding string) bool {
	t.Helper()
	var res struct {
		Routed bool `json:"routed"`
	}
	a.json("POST", "/api/exchanges/%2F/"+esc(exchange)+"/publish", map[string]any{
		"routing_key": key, "properties": props, "payload": payload, "payload_encoding": encoding}, 200, &res)
	return res.Routed
}

func apiGet(t *testing.T, a *api, queue string, body map[string]any) []gotMessage {
	t.Helper()
	var got []gotMessage
	a.json("POST", "/api/queues/%2F/"+esc(queue)+"/get", body, 200, &got)
	return got
}

// TestManagementPublishAndGet: a message published through the API reaches its queue as an
// AMQP publish would, and get shows it with RabbitMQ's fields; ack_requeue_true and
// reject_requeue_true leave messages in their places, redelivered, and ack_requeue_false
// takes them.
func TestManagementPublishAndGet(t *testing.T) {
	a := mgmtAPI(t)
	conn, ch := connChannel(t)
	defer conn.Close()
	q := declareQueue(t, ch, nil)

	if !apiPublish(t, a, "amq.default", q, map[string]any{"delivery_mode": 2, "headers": map[string]any{"h": "v"}}, "hello", "string") {
		t.Fatal("publish to an existing queue: routed false")
	}
	if !apiPublish(t, a, "amq.default", q, map[string]any{}, "//79", "base64") {
		t.Fatal("base64 publish: routed false")
	}
	if apiPublish(t, a, "amq.default", q+".nowhere", map[string]any{}, "x", "string") {
		t.Fatal("publish to no queue: routed true")
	}

	got := apiGet(t, a, q, map[string]any{"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 3})
	if len(got) != 2 {
		t.Fatalf("get: %d messages, want 2: %+v", len(got), got)
	}
	first, second := got[0], got[1]
	if first.PayloadBytes != 5 || first.Payload != "hel" || first.PayloadEncoding != "string" || first.Redelivered ||
		first.Exchange != "" || first.RoutingKey != q || first.MessageCount != 1 ||
		string(first.Properties) != `{"delivery_mode":2,"headers":{"h":"v"}}` {
		t.Fatalf("first message: %+v (properties %s)", first, first.Properties)
	}
	if second.PayloadBytes != 3 || second.Payload != "//79" || second.PayloadEncoding != "base64" || second.MessageCount != 0 ||
		string(second.Properties) != `[]` {
		t.Fatalf("second message: %+v (properties %s)", second, second.Properties)
	}

	got = apiGet(t, a, q, map[string]any{"count": "1", "ackmode": "reject_requeue_true", "encoding": "base64"})
	if len(got) != 1 || got[0].Payload != "aGVsbG8=" || got[0].PayloadEncoding != "base64" || !got[0].Redelivered || got[0].MessageCount != 1 {
		t.Fatalf("get after requeue: %+v, want the first message again, redelivered, in base64", got)
	}
	got = apiGet(t, a, q, map[string]any{"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
	if len(got) != 1 || got[0].Payload != "hello" {
		t.Fatalf("get ack_requeue_false: %+v", got)
	}
	d := get(t, ch, q, true)
	if string(d.Body) != "\xff\xfe\xfd" || !d.Redelivered {
		t.Fatalf("the message left after ack_requeue_false: %q redelivered %v", d.Body, d.Redelivered)
	}
	wantEmpty(t, ch, q)
	if got := apiGet(t, a, q, map[string]any{"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}); len(got) != 0 {
		t.Fatalf("get from an empty queue: %+v", got)
	}
}

// TestManagementPublishAndGetErrors: bad publish and get requests get RabbitMQ's codes and
// reasons.
func TestManagementPublishAndGetErrors(t *testing.T) {
	a := mgmtAPI(t)
	conn, ch := connChannel(t)
	defer conn.Close()
	q := declareQueue(t, ch, nil)
	pub := "/api/exchanges/%2F/amq.default/publish"
	msg := func(kv ...any) map[string]any {
		m := map[string]any{"routing_key": q, "properties": map[string]any{}, "payload": "x", "payload_encoding": "string"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	wantAPIError(t, a, "POST", pub, msg("payload_encoding", nil), 400, "bad_request", reasonText("[{key_missing,payload_encoding}]"))
	wantAPIError(t, a, "POST", pub, msg("payload_encoding", "zz"), 400, "bad_request", `["unsupported_encoding","zz"]`)
	wantAPIError(t, a, "POST", pub, msg("payload", 5), 400, "bad_request", reasonText("payload_not_string"))
	wantAPIError(t, a, "POST", pub, msg("payload", "!!", "payload_encoding", "base64"), 400, "bad_request", `["not_base64","!!"]`)
	wantAPIError(t, a, "POST", pub, msg("properties", map[string]any{"priority": "high"}), 400, "bad_request", `["not_int","priority"]`)
	wantAPIError(t, a, "POST", pub, msg("properties", map[string]any{"expiration": 1234}), 400, "bad_request", `["not_string","expiration"]`)
	wantAPIError(t, a, "POST", pub, msg("properties", map[string]any{"expiration": "abc"}), 400, "bad_request",
		reasonText("406 PRECONDITION_FAILED - invalid expiration 'abc': no_integer"))
	wantAPIError(t, a, "POST", pub, msg("properties", map[string]any{"user_id": "bob"}), 400, "bad_request",
		reasonText("406 PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'"))
	wantAPIError(t, a, "POST", "/api/exchanges/%2F/"+esc(q+".none")+"/publish", msg(), 400, "bad_request",
		reasonText("404 NOT_FOUND - no exchange '"+q+".none' in vhost '/'"))
	internal := uniqueName(t, "internal")
	deleteExchangeLater(t, internal)
	a.json("PUT", "/api/exchanges/%2F/"+esc(internal), map[string]any{"type": "fanout", "internal": true}, http.StatusCreated, nil)
	wantAPIError(t, a, "POST", "/api/exchanges/%2F/"+esc(internal)+"/publish", msg(), 400, "bad_request",
		reasonText("403 ACCESS_REFUSED - cannot publish to internal exchange '"+internal+"' in vhost '/'"))

	full := declareQueue(t, ch, amqp.Table{"x-max-length": int64(0), "x-overflow": "reject-publish"})
	wantAPIError(t, a, "POST", pub, msg("routing_key", full), 400, "bad_request", reasonText("rejected Unable to publish message. Check queue limits."))

	get := "/api/queues/%2F/" + esc(q) + "/get"
	wantAPIError(t, a, "POST", get, map[string]any{"ackmode": "ack_requeue_true", "encoding": "auto"}, 400, "bad_request", reasonText("[{key_missing,count}]"))
	wantAPIError(t, a, "POST", get, map[string]any{"count": "x", "ackmode": "ack_requeue_true", "encoding": "auto"}, 400, "bad_request", `["not_integer","x"]`)
	wantAPIError(t, a, "POST", get, map[string]any{"count": 1, "ackmode": "ack_requeue_true", "encoding": "zz"}, 400, "bad_request",
		reasonText("Unsupported encoding. Please use auto or base64."))
	wantAPIError(t, a, "POST", "/api/queues/%2F/"+esc(q+".none")+"/get", map[string]any{"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"},
		404, "not_found", reasonText("NOT_FOUND - no queue '"+q+".none' in vhost '/'"))
}

// TestManagementPublishDeadLettersAndGetRejects: an API publish goes through the normal
// publish path (a length limit dead-letters the head to the DLX), and a get with
// reject_requeue_false dead-letters what it takes.
func TestManagementPublishDeadLettersAndGetRejects(t *testing.T) {
	a := mgmtAPI(t)
	conn, ch := connChannel(t)
	defer conn.Close()
	dlq := declareQueue(t, ch, nil)
	q := declareQueue(t, ch, amqp.Table{"x-max-length": int64(1), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
	apiPublish(t, a, "amq.default", q, map[string]any{}, "first", "string")
	apiPublish(t, a, "amq.default", q, map[string]any{}, "second", "string")
	if d := get(t, ch, dlq, true); string(d.Body) != "first" {
		t.Fatalf("dead-lettered by the length limit: %q, want first", d.Body)
	}
	got := apiGet(t, a, q, map[string]any{"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto"})
	if len(got) != 1 || got[0].Payload != "second" {
		t.Fatalf("get: %+v", got)
	}
	wantEmpty(t, ch, q)
	d := get(t, ch, dlq, true)
	if string(d.Body) != "second" {
		t.Fatalf("dead-lettered by the reject: %q, want second", d.Body)
	}
	if deaths, _ := d.Headers["x-death"].([]any); len(deaths) == 0 {
		t.Fatalf("no x-death on the rejected message: %v", d.Headers)
	} else if death, _ := deaths[0].(amqp.Table); death["reason"] != "rejected" || death["queue"] != q {
		t.Fatalf("x-death %v, want reason rejected from %s", deaths[0], q)
	}
}

// TestManagementPurge: DELETE /api/queues/{vhost}/{name}/contents drops the ready messages;
// a missing queue is 404.
func TestManagementPurge(t *testing.T) {
	a := mgmtAPI(t)
	conn, ch := connChannel(t)
	defer conn.Close()
	q := declareQueue(t, ch, nil)
	p := newPublisher(t, conn)
	p.toQueue(q, "a", "b", "c")
	a.json("DELETE", "/api/queues/%2F/"+esc(q)+"/contents", nil, http.StatusNoContent, nil)
	wantEmpty(t, ch, q)
	wantAPIError(t, a, "DELETE", "/api/queues/%2F/"+esc(q+".none")+"/contents", nil, 404, "Object Not Found", reasonText("Not Found"))
}

// TestManagementHealthChecks: RabbitMQ 3.10's health checks answer a healthy single node with
// 200 {"status":"ok"} (plus what each adds), a missing listener with 503 and its reason, and
// bad arguments with 400.
func TestManagementHealthChecks(t *testing.T) {
	a := mgmtAPI(t)
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	if port == "" {
		port = "5672"
	}
	type status struct {
		Status   string          `json:"status"`
		Reason   string          `json:"reason"`
		Port     int             `json:"port"`
		Protocol string          `json:"protocol"`
		Missing  json.RawMessage `json:"missing"`
	}
	check := func(path string, code int) status {
		t.Helper()
		c, out := a.do("GET", "/api/health/checks/"+path, nil)
		var s status
		if c != code || json.Unmarshal(out, &s) != nil {
			t.Fatalf("%s: %d %s, want %d", path, c, out, code)
		}
		return s
	}
	for _, p := range []string{"alarms", "local-alarms", "virtual-hosts", "certificate-expiration/1/days"} {
		if s := check(p, 200); s.Status != "ok" {
			t.Fatalf("%s: %+v", p, s)
		}
	}
	for _, p := range []string{"node-is-mirror-sync-critical", "node-is-quorum-critical"} {
		if s := check(p, 200); s.Status != "ok" || s.Reason != "single node cluster" {
			t.Fatalf("%s: %+v", p, s)
		}
	}
	if s := check("port-listener/"+port, 200); s.Status != "ok" || strconv.Itoa(s.Port) != port {
		t.Fatalf("port-listener/%s: %+v", port, s)
	}
	if s := check("port-listener/1", 503); s.Status != "failed" || s.Reason != "No active listener" || string(s.Missing) != "1" {
		t.Fatalf("port-listener/1: %+v", s)
	}
	for _, p := range []string{"amqp", "amqp091", "amqp0-9-1"} {
		if s := check("protocol-listener/"+p, 200); s.Protocol != "amqp" {
			t.Fatalf("protocol-listener/%s: %+v", p, s)
		}
	}
	if s := check("protocol-listener/mqtt", 503); s.Status != "failed" || string(s.Missing) != `"mqtt"` {
		t.Fatalf("protocol-listener/mqtt: %+v", s)
	}
	wantAPIError(t, a, "GET", "/api/health/checks/port-listener/abc", nil, 400, "bad_request", reasonText("Invalid port"))
	wantAPIError(t, a, "GET", "/api/health/checks/certificate-expiration/x/days", nil, 400, "bad_request", reasonText("Invalid expiration value."))
	wantAPIError(t, a, "GET", "/api/health/checks/certificate-expiration/1/fortnights", nil, 400, "bad_request",
		reasonText("Time unit not recognised. Supported units: days, weeks, months, years."))
	// is-in-service came after 3.10.
	wantAPIError(t, a, "GET", "/api/health/checks/is-in-service", nil, 404, "Object Not Found", reasonText("Not Found"))
}

// TestManagementAlivenessTest: GET /api/aliveness-test/{vhost} declares aliveness-test,
// publishes to it and gets the message back: 200 {"status":"ok"}, the queue left empty; a
// missing vhost is 404.
func TestManagementAlivenessTest(t *testing.T) {
	a := mgmtAPI(t)
	deleteQueueLater(t, "aliveness-test") // the test leaves it, as RabbitMQ does; the broker under test need not keep it
	var s struct {
		Status string `json:"status"`
	}
	a.json("GET", "/api/aliveness-test/%2F", nil, 200, &s)
	if s.Status != "ok" {
		t.Fatalf("aliveness-test: %+v", s)
	}
	conn, ch := connChannel(t)
	defer conn.Close()
	if _, err := ch.QueueDeclarePassive("aliveness-test", false, false, false, false, nil); err != nil {
		t.Fatalf("the aliveness-test queue is not there: %v", err)
	}
	wantEmpty(t, ch, "aliveness-test")
	wantAPIError(t, a, "GET", "/api/aliveness-test/no-such-vhost", nil, 404, "Object Not Found", reasonText("Not Found"))
}
