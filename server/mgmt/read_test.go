package mgmt_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/mgmt"
)

// get does a GET as guest and decodes the 200 answer.
func get[T any](t *testing.T, b broker, path string) T {
	t.Helper()
	code, _, body := call(t, "GET", b.api+path, "guest", "guest")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return decode[T](t, body)
}

// The listings of channels, consumers, exchanges and bindings show what a client declared.
func TestChannelsConsumersExchangesBindings(t *testing.T) {
	b := startBroker(t)
	conn := dial(t, b, "guest", "guest", "lister")
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(7, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("rx", "topic", true, false, false, false, amqp.Table{"x-note": "n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("rq", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("rq", "a.#", "rx", false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume("rq", "ctag-1", false, true, false, false, amqp.Table{"x-priority": int32(3)}); err != nil {
		t.Fatal(err)
	}

	chans := get[[]map[string]any](t, b, "/api/channels")
	if len(chans) != 1 {
		t.Fatalf("channels: %v", chans)
	}
	c := chans[0]
	conns := get[[]map[string]any](t, b, "/api/connections")
	connName := conns[0]["name"].(string)
	if c["name"] != connName+" (1)" || c["number"] != 1.0 || c["user"] != "guest" || c["vhost"] != "/" ||
		c["consumer_count"] != 1.0 || c["prefetch_count"] != 7.0 || c["confirm"] != true || c["transactional"] != false ||
		c["connection_details"].(map[string]any)["name"] != connName || c["state"] != "running" {
		t.Errorf("channel: %v", c)
	}
	if conns[0]["channels"] != 1.0 || conns[0]["state"] != "running" || conns[0]["recv_oct"].(float64) == 0 || conns[0]["send_oct"].(float64) == 0 {
		t.Errorf("connection: channels %v state %v recv_oct %v send_oct %v", conns[0]["channels"], conns[0]["state"], conns[0]["recv_oct"], conns[0]["send_oct"])
	}
	one := get[map[string]any](t, b, "/api/channels/"+url.PathEscape(connName+" (1)"))
	if d := one["consumer_details"].([]any); len(d) != 1 || d[0].(map[string]any)["consumer_tag"] != "ctag-1" {
		t.Errorf("channel's consumer_details: %v", one["consumer_details"])
	}
	if got := get[[]map[string]any](t, b, "/api/connections/"+url.PathEscape(connName)+"/channels"); len(got) != 1 || got[0]["name"] != c["name"] {
		t.Errorf("connection's channels: %v", got)
	}
	// As in RabbitMQ, the per-vhost lists are not paginated: page is ignored.
	if got := get[[]map[string]any](t, b, "/api/vhosts/%2F/channels?page=1"); len(got) != 1 {
		t.Errorf("vhost's channels: %v", got)
	}
	if got := get[[]map[string]any](t, b, "/api/vhosts/%2F/connections?page=1"); len(got) != 1 {
		t.Errorf("vhost's connections: %v", got)
	}
	if got := get[map[string]any](t, b, "/api/channels?page=1&columns=name"); got["total_count"] != 1.0 || fmt.Sprint(got["items"]) != "[map[name:"+connName+" (1)]]" {
		t.Errorf("a page of channels: %v", got)
	}

	cons := get[[]map[string]any](t, b, "/api/consumers/%2F")
	if len(cons) != 1 {
		t.Fatalf("consumers: %v", cons)
	}
	cs := cons[0]
	if cs["consumer_tag"] != "ctag-1" || cs["exclusive"] != true || cs["ack_required"] != true || cs["active"] != true ||
		cs["activity_status"] != "up" || cs["arguments"].(map[string]any)["x-priority"] != 3.0 ||
		fmt.Sprint(cs["queue"]) != "map[name:rq vhost:/]" || cs["channel_details"].(map[string]any)["name"] != c["name"] {
		t.Errorf("consumer: %v", cs)
	}

	xs := get[[]map[string]any](t, b, "/api/exchanges/%2F?columns=name")
	var names []string
	for _, x := range xs {
		names = append(names, x["name"].(string))
	}
	if fmt.Sprint(names) != "[ amq.direct amq.fanout amq.headers amq.match amq.topic rx]" &&
		fmt.Sprint(names) != "[ amq.direct amq.fanout amq.headers amq.match amq.rabbitmq.trace amq.topic rx]" {
		t.Errorf("exchanges: %v", names)
	}
	x := get[map[string]any](t, b, "/api/exchanges/%2F/rx")
	if x["type"] != "topic" || x["durable"] != true || x["arguments"].(map[string]any)["x-note"] != "n" || x["internal"] != false {
		t.Errorf("exchange: %v", x)
	}
	src := get[[]map[string]any](t, b, "/api/exchanges/%2F/rx/bindings/source")
	if len(src) != 1 || src[0]["destination"] != "rq" || src[0]["routing_key"] != "a.#" || src[0]["properties_key"] != "a.%23" {
		t.Errorf("bindings/source: %v", src)
	}
	qb := get[[]map[string]any](t, b, "/api/queues/%2F/rq/bindings")
	if len(qb) != 2 || qb[0]["source"] != "" || qb[0]["routing_key"] != "rq" || qb[1]["source"] != "rx" {
		t.Errorf("queue's bindings: %v", qb)
	}
	if all := get[[]map[string]any](t, b, "/api/bindings/%2F"); len(all) != 2 {
		t.Errorf("vhost's bindings: %v", all)
	}
	for _, p := range []string{"/api/exchanges/%2F/nope", "/api/exchanges/nope", "/api/queues/%2F/nope/bindings", "/api/channels/nope", "/api/consumers/nope"} {
		if code, _, body := call(t, "GET", b.api+p, "guest", "guest"); code != 404 {
			t.Errorf("GET %s: %d %s, want 404", p, code, body)
		}
	}
	// A management user sees only its own connections' channels and consumers.
	if code, _, body := call(t, "GET", b.api+"/api/channels", "mgr", "mgrpw"); code != 200 || string(body) != "[]\n" {
		t.Errorf("mgr's channels: %d %s", code, body)
	}
	if code, _, body := call(t, "GET", b.api+"/api/consumers", "mon", "monpw"); code != 200 || len(decode[[]any](t, body)) != 1 {
		t.Errorf("monitor's consumers: %d %s", code, body)
	}
}

// A steady publisher makes the publish rates non-zero (the test broker samples every 50 ms).
func TestRatesUnderSteadyPublisher(t *testing.T) {
	b := startBroker(t)
	conn := dial(t, b, "guest", "guest", "rates")
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("rateq", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := ch.Publish("", "rateq", false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() { close(stop); <-done }()
	rateOf := func(path, field string) float64 {
		m := get[map[string]any](t, b, path)
		ms, _ := m["message_stats"].(map[string]any)
		d, _ := ms[field+"_details"].(map[string]any)
		r, _ := d["rate"].(float64)
		return r
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, x, o := rateOf("/api/queues/%2F/rateq", "publish"), rateOf("/api/exchanges/%2F/amq.default", "publish_in"), rateOf("/api/overview", "publish")
		var chRate float64
		if chs := get[[]map[string]any](t, b, "/api/channels"); len(chs) == 1 {
			ms, _ := chs[0]["message_stats"].(map[string]any)
			d, _ := ms["publish_details"].(map[string]any)
			chRate, _ = d["rate"].(float64)
		}
		if q > 0 && o > 0 && chRate > 0 && x > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish rates stay 0: queue %v exchange %v overview %v channel %v", q, x, o, chRate)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The rate sampler stops when the handler's context ends.
func TestSamplerStopsWithContext(t *testing.T) {
	srv := server.New(server.Config{Logger: zerolog.Nop(), MemoryLimit: 1 << 40}) // not serving: no goroutines of its own
	if err := srv.Recover(); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	_ = mgmt.Handler(ctx, srv, mgmt.Identity{Node: "warren@test", StatsInterval: time.Millisecond}, zerolog.Nop())
	if runtime.NumGoroutine() <= before {
		t.Fatalf("no sampler goroutine started: %d goroutines before, %d after", before, runtime.NumGoroutine())
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("the sampler did not stop: %d goroutines, %d before\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// cluster-name: anyone reads it; only an administrator renames the running broker, and bad
// bodies get RabbitMQ's 400s. /api/nodes is for monitors.
func TestClusterNameAndNodes(t *testing.T) {
	b := startBroker(t)
	if cn := get[map[string]any](t, b, "/api/cluster-name"); cn["name"] != "warren@test" {
		t.Errorf("cluster-name: %v", cn)
	}
	put := func(user, pass, body string) (int, string) {
		req, err := http.NewRequest("PUT", b.api+"/api/cluster-name", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(out))
	}
	for _, c := range []struct {
		user, body string
		code       int
		answer     string
	}{
		{"mon", `{"name":"x"}`, 401, `{"error":"not_authorised","reason":"Not administrator user"}`},
		{"guest", `not json`, 400, `{"error":"bad_request","reason":"not_json"}`},
		{"guest", `{}`, 400, `{"error":"bad_request","reason":"[{key_missing,name}]"}`},
		{"guest", `{"name":"renamed"}`, 204, ``},
	} {
		pass := c.user + "pw"
		if c.user == "guest" {
			pass = "guest"
		}
		if code, answer := put(c.user, pass, c.body); code != c.code || answer != c.answer {
			t.Errorf("PUT %s as %s: %d %s, want %d %s", c.body, c.user, code, answer, c.code, c.answer)
		}
	}
	if cn := get[map[string]any](t, b, "/api/cluster-name"); cn["name"] != "renamed" {
		t.Errorf("cluster-name after PUT: %v", cn)
	}
	if ov := get[map[string]any](t, b, "/api/overview"); ov["cluster_name"] != "renamed" {
		t.Errorf("overview cluster_name after PUT: %v", ov["cluster_name"])
	}

	if code, _, body := call(t, "GET", b.api+"/api/nodes", "mgr", "mgrpw"); code != 401 || !strings.Contains(string(body), "Not monitor user") {
		t.Errorf("nodes as a management user: %d %s", code, body)
	}
	nodes := get[[]map[string]any](t, b, "/api/nodes")
	if len(nodes) != 1 || nodes[0]["name"] != "warren@test" || nodes[0]["running"] != true || nodes[0]["fd_used"].(float64) <= 0 {
		t.Errorf("nodes: %v", nodes)
	}
	if code, _, _ := call(t, "GET", b.api+"/api/nodes/rabbit@elsewhere", "guest", "guest"); code != 404 {
		t.Errorf("another node: %d, want 404", code)
	}
}

// Under a memory alarm a connection that has not published is "blocking", one held on its
// publish "blocked", as RabbitMQ shows them.
func TestConnectionStateUnderAlarm(t *testing.T) {
	b := startBroker(t)
	idle := dial(t, b, "guest", "guest", "idle")
	pub := dial(t, b, "guest", "guest", "publisher")
	ch, err := pub.Channel()
	if err != nil {
		t.Fatal(err)
	}
	_ = idle
	state := func(name string) string {
		for _, c := range get[[]map[string]any](t, b, "/api/connections") {
			if c["user_provided_name"] == name {
				return c["state"].(string)
			}
		}
		return "not listed"
	}
	if s := state("idle"); s != "running" {
		t.Fatalf("state before the alarm: %s", s)
	}
	b.srv.SetResourceLimits(1, -1) // every byte is too many: the memory alarm goes off
	t.Cleanup(func() { b.srv.SetResourceLimits(1<<40, -1) })
	deadline := time.Now().Add(10 * time.Second)
	for state("idle") != "blocking" {
		if time.Now().After(deadline) {
			t.Fatalf("idle connection under the alarm: %s, want blocking", state("idle"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := ch.Publish("", "nowhere", false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for state("publisher") != "blocked" {
		if time.Now().After(deadline) {
			t.Fatalf("publisher under the alarm: %s, want blocked", state("publisher"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
