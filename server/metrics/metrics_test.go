package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/metrics"
	"github.com/warrenmq/warren/server/servertest"
)

// startBroker runs an in-process broker on a loopback port and its metrics endpoint on an
// httptest server; it returns the AMQP URL and the /metrics URL.
func startBroker(t *testing.T) (amqpURL, metricsURL string) {
	t.Helper()
	srv := servertest.New(t, server.Config{MemoryLimit: 1 << 40})
	addr := servertest.Serve(t, srv)
	hs := httptest.NewServer(metrics.Handler(srv, metrics.Identity{Node: "warren@test"}, zerolog.Nop()))
	t.Cleanup(hs.Close)
	return servertest.URL(addr), hs.URL + "/metrics"
}

// sample is one line of the text exposition: name{labels} value.
var sample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)

// scrape returns every sample of the endpoint by name and labels ("name{labels}" as printed),
// and the TYPE of every family.
func scrape(t *testing.T, url string) (values map[string]float64, types map[string]string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q, want Prometheus text format 0.0.4", ct)
	}
	values, types = map[string]float64{}, map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		values[m[1]+m[2]] = v
	}
	return values, types
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestScrapeCountsWhatClientsDid drives a known workload through the broker and checks that
// /metrics reports exactly it: queue depths, object totals, churn and the global counters.
func TestScrapeCountsWhatClientsDid(t *testing.T) {
	amqpURL, metricsURL := startBroker(t)
	conn := must[*amqp.Connection](t)(amqp.Dial(amqpURL))
	defer conn.Close()
	pub := must[*amqp.Channel](t)(conn.Channel())
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := pub.NotifyPublish(make(chan amqp.Confirmation, 100))
	returns := pub.NotifyReturn(make(chan amqp.Return, 1))
	for _, q := range []string{"q", "q2", "temp"} {
		must[amqp.Queue](t)(pub.QueueDeclare(q, false, false, false, false, nil))
	}
	must[int](t)(pub.QueueDelete("temp", false, false, false))
	must[amqp.Queue](t)(pub.QueueDeclarePassive("q", false, false, false, false, nil)) // not counted as declared
	for _, q := range []string{"f1", "f2"} {
		must[amqp.Queue](t)(pub.QueueDeclare(q, false, false, false, false, nil))
		if err := pub.QueueBind(q, "", "amq.fanout", false, nil); err != nil {
			t.Fatal(err)
		}
	}

	publish := func(key string, mandatory bool) {
		t.Helper()
		if err := pub.PublishWithContext(context.Background(), "", key, mandatory, false, amqp.Publishing{Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		publish("q", false)
	}
	publish("q2", false)
	publish("q2", false)
	publish("nowhere", false) // dropped
	publish("nowhere", true)  // returned
	if err := pub.PublishWithContext(context.Background(), "amq.fanout", "", false, false, amqp.Publishing{Body: []byte("f")}); err != nil {
		t.Fatal(err)
	}
	for i := range 15 {
		if c := <-confirms; !c.Ack {
			t.Fatalf("publish %d nacked", i)
		}
	}
	<-returns

	// basic.get: one rejected with requeue and fetched again (redelivered), then acked; one
	// with auto-ack; one on an empty queue.
	get := must[*amqp.Channel](t)(conn.Channel())
	m, ok, err := get.Get("q", false)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if err := m.Reject(true); err != nil {
		t.Fatal(err)
	}
	m, ok, err = get.Get("q", false)
	if err != nil || !ok || !m.Redelivered {
		t.Fatalf("second get: ok %v, redelivered %v, %v", ok, m.Redelivered, err)
	}
	if err := m.Ack(false); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := get.Get("q", true); err != nil || !ok {
		t.Fatalf("auto-ack get: %v %v", ok, err)
	}
	if _, ok, err := get.Get("temp2", true); err == nil && ok {
		t.Fatal("get on a missing queue succeeded")
	}
	// The failed get closed that channel (404); count an empty get on a fresh one.
	get = must[*amqp.Channel](t)(conn.Channel())
	must[amqp.Queue](t)(get.QueueDeclare("empty", false, false, false, false, nil))
	if _, ok, err := get.Get("empty", true); err != nil || ok {
		t.Fatalf("get on an empty queue: %v %v", ok, err)
	}

	// A manual-ack consumer with prefetch 3 holds 3 deliveries; an auto-ack one drains q2.
	con := must[*amqp.Channel](t)(conn.Channel())
	if err := con.Qos(3, 0, false); err != nil {
		t.Fatal(err)
	}
	manual := must[<-chan amqp.Delivery](t)(con.Consume("q", "manual", false, false, false, false, nil))
	auto := must[<-chan amqp.Delivery](t)(con.Consume("q2", "auto", true, false, false, false, nil))
	for range 3 {
		<-manual
	}
	for range 2 {
		<-auto
	}

	// A second connection with one channel, closed.
	other := must[*amqp.Connection](t)(amqp.Dial(amqpURL))
	must[*amqp.Channel](t)(other.Channel())
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}

	// Channels: pub, get (closed by the 404), get, con on conn; one on other (closed with it).
	want := map[string]float64{
		"rabbitmq_connections":                                                   1,
		"rabbitmq_channels":                                                      3,
		"rabbitmq_consumers":                                                     2,
		"rabbitmq_queues":                                                        5, // q, q2, f1, f2, empty
		"rabbitmq_queue_messages_ready":                                          7, // q: 10 - 2 got - 3 held; f1, f2: 1 each
		"rabbitmq_queue_messages_unacked":                                        3,
		"rabbitmq_queue_messages":                                                10,
		"rabbitmq_connections_opened_total":                                      2,
		"rabbitmq_connections_closed_total":                                      1,
		"rabbitmq_channels_opened_total":                                         5,
		"rabbitmq_channels_closed_total":                                         2,
		"rabbitmq_queues_declared_total":                                         6,
		"rabbitmq_queues_created_total":                                          6,
		"rabbitmq_queues_deleted_total":                                          1,
		`rabbitmq_global_messages_received_total{protocol="amqp091"}`:            15,
		`rabbitmq_global_messages_received_confirm_total{protocol="amqp091"}`:    15,
		`rabbitmq_global_messages_routed_total{protocol="amqp091"}`:              14, // per queue: the fanout message counts 2
		`rabbitmq_global_messages_unroutable_dropped_total{protocol="amqp091"}`:  1,
		`rabbitmq_global_messages_unroutable_returned_total{protocol="amqp091"}`: 1,
		`rabbitmq_global_messages_confirmed_total{protocol="amqp091"}`:           15,
		`rabbitmq_global_messages_delivered_total{protocol="amqp091",queue_type="rabbit_classic_queue"}`:                    8,
		`rabbitmq_global_messages_delivered_consume_auto_ack_total{protocol="amqp091",queue_type="rabbit_classic_queue"}`:   2,
		`rabbitmq_global_messages_delivered_consume_manual_ack_total{protocol="amqp091",queue_type="rabbit_classic_queue"}`: 3,
		`rabbitmq_global_messages_delivered_get_auto_ack_total{protocol="amqp091",queue_type="rabbit_classic_queue"}`:       1,
		`rabbitmq_global_messages_delivered_get_manual_ack_total{protocol="amqp091",queue_type="rabbit_classic_queue"}`:     2,
		`rabbitmq_global_messages_get_empty_total{protocol="amqp091",queue_type="rabbit_classic_queue"}`:                    1,
		`rabbitmq_global_messages_redelivered_total{protocol="amqp091",queue_type="rabbit_classic_queue"}`:                  1,
		`rabbitmq_global_messages_acknowledged_total{protocol="amqp091",queue_type="rabbit_classic_queue"}`:                 1,
		"rabbitmq_resident_memory_limit_bytes":      1 << 40,
		"rabbitmq_alarms_memory_used_watermark":     0,
		"rabbitmq_alarms_free_disk_space_watermark": 0,
	}
	// The second connection's teardown finishes after its close-ok: wait for it, on the
	// endpoint itself.
	var got map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ = scrape(t, metricsURL)
		if got["rabbitmq_connections_closed_total"] == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for k, w := range want {
		if v, ok := got[k]; !ok {
			t.Errorf("%s missing", k)
		} else if v != w {
			t.Errorf("%s = %v, want %v", k, v, w)
		}
	}
	for _, k := range []string{"rabbitmq_process_resident_memory_bytes", "rabbitmq_process_open_fds", "rabbitmq_process_max_fds"} {
		if got[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, got[k])
		}
	}
}
