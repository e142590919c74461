package metrics_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/metrics"
	"github.com/warrenmq/warren/server/servertest"
)

// world is a broker with two vhosts ("/" and "other", guest may use both) and its Prometheus
// endpoints.
type world struct {
	srv      *server.Server
	addr     string // the AMQP listener
	base     string // http://host:port of the Prometheus endpoints
	amqpBase string // amqp://guest:guest@addr/
}

func startWorld(t *testing.T) *world {
	t.Helper()
	srv := servertest.New(t, server.Config{MemoryLimit: 1 << 40})
	hash, err := configs.HashPassword("guest", "")
	if err != nil {
		t.Fatal(err)
	}
	defs := &configs.Definitions{
		Vhosts: []configs.Vhost{{Name: "other"}},
		Users:  []configs.User{{Name: "guest", PasswordHash: hash, Tags: []string{"administrator"}}},
		Permissions: []configs.Permission{
			{User: "guest", Vhost: "/", Configure: "*", Write: "*", Read: "*"},
			{User: "guest", Vhost: "other", Configure: "*", Write: "*", Read: "*"},
		},
		Exchanges: []configs.Exchange{{Vhost: "other", Name: "hidden", Type: "topic", Internal: true}},
	}
	if _, err := srv.ApplyDefinitions(defs); err != nil {
		t.Fatal(err)
	}
	addr := servertest.Serve(t, srv)
	hs := httptest.NewServer(metrics.Handler(srv, metrics.Identity{Node: "warren@test"}, zerolog.Nop()))
	t.Cleanup(hs.Close)
	return &world{srv: srv, addr: addr, base: hs.URL, amqpBase: servertest.URL(addr)}
}

// get fetches path with the request headers hdr (name, value, ...) and returns the answer and
// its body, uncompressed.
func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// Set explicitly, the transport leaves a gzip body as it came.
	if req.Header.Get("Accept-Encoding") == "" {
		req.Header.Set("Accept-Encoding", "identity")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: gzip: %v", url, err)
		}
		r = gz
	}
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// parse checks that body is valid Prometheus text (one HELP/TYPE per family, every sample
// well formed) and returns its families by name.
func parse(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("not Prometheus text: %v\n%s", err, body)
	}
	return fams
}

// series returns every sample of fams as "name{l1="v1",...}" (labels in the exposition's
// order) → value; histograms as their _bucket, _sum and _count series.
func series(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	key := func(name string, ls []*dto.LabelPair, extra ...string) string {
		var parts []string
		for _, l := range ls {
			parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			parts = append(parts, extra[i]+`="`+extra[i+1]+`"`)
		}
		if len(parts) == 0 {
			return name
		}
		return name + "{" + strings.Join(parts, ",") + "}"
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key(name, m.GetLabel())] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key(name, m.GetLabel())] = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[key(name, m.GetLabel())] = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					out[key(name+"_bucket", m.GetLabel(), "le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))] = float64(b.GetCumulativeCount())
				}
				out[key(name+"_bucket", m.GetLabel(), "le", "+Inf")] = float64(h.GetSampleCount())
				out[key(name+"_sum", m.GetLabel())] = h.GetSampleSum()
				out[key(name+"_count", m.GetLabel())] = float64(h.GetSampleCount())
			}
		}
	}
	return out
}

func checkSeries(t *testing.T, where string, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		if v, ok := got[k]; !ok {
			t.Errorf("%s: %s missing", where, k)
		} else if v != w {
			t.Errorf("%s: %s = %v, want %v", where, k, v, w)
		}
	}
}

// workload is the known state the tests scrape: in "/", queue a holds three messages, two of
// them held unacked by a consumer with prefetch 2 (channel-wide limit 5), and queue b is
// empty; in "other", queue c holds one message of 200 bytes. The publishes' body sizes are
// 10, 500, 5000 (a), 200 (c) and 150,000 (unroutable, dropped).
type workload struct {
	conn, otherConn *amqp.Connection
	consumerCh      string // the consumer's channel, as the broker names it
	connName        string
	otherConnName   string
}

func runWorkload(t *testing.T, w *world) *workload {
	t.Helper()
	conn := must[*amqp.Connection](t)(amqp.Dial(w.amqpBase))
	t.Cleanup(func() { _ = conn.Close() })
	pub := must[*amqp.Channel](t)(conn.Channel()) // channel 1
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := pub.NotifyPublish(make(chan amqp.Confirmation, 10))
	must[amqp.Queue](t)(pub.QueueDeclare("a", false, false, false, false, nil))
	must[amqp.Queue](t)(pub.QueueDeclare("b", false, false, false, false, nil))
	if err := pub.QueueBind("a", "k1", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	if err := pub.QueueBind("b", "k2", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		key  string
		size int
	}{{"a", 10}, {"a", 500}, {"a", 5000}, {"nowhere", 150_000}} {
		if err := pub.PublishWithContext(context.Background(), "", p.key, false, false, amqp.Publishing{Body: make([]byte, p.size)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		if c := <-confirms; !c.Ack {
			t.Fatal("publish nacked")
		}
	}
	con := must[*amqp.Channel](t)(conn.Channel()) // channel 2
	if err := con.Qos(5, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := con.Qos(2, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries := must[<-chan amqp.Delivery](t)(con.Consume("a", "c1", false, false, false, false, nil))
	for range 2 {
		<-deliveries
	}

	other := must[*amqp.Connection](t)(amqp.Dial(w.amqpBase + "other"))
	t.Cleanup(func() { _ = other.Close() })
	och := must[*amqp.Channel](t)(other.Channel())
	if err := och.Confirm(false); err != nil {
		t.Fatal(err)
	}
	must[amqp.Queue](t)(och.QueueDeclare("c", false, false, false, false, nil))
	dc := must[*amqp.DeferredConfirmation](t)(och.PublishWithDeferredConfirmWithContext(context.Background(), "", "c", false, false, amqp.Publishing{Body: make([]byte, 200)}))
	if !dc.Wait() {
		t.Fatal("publish nacked")
	}
	name := conn.LocalAddr().String() + " -> " + w.addr
	return &workload{conn: conn, otherConn: other, connName: name, consumerCh: name + " (2)",
		otherConnName: other.LocalAddr().String() + " -> " + w.addr}
}

// TestPerObjectReportsEachObject scrapes /metrics/per-object after a known workload: every
// queue, channel and connection has its own series with RabbitMQ's labels and the exact
// figures, the node-wide metrics are there once, the aggregated-only series are not, and the
// message size histogram counts what was published.
func TestPerObjectReportsEachObject(t *testing.T) {
	w := startWorld(t)
	wl := runWorkload(t, w)
	resp, body := get(t, w.base+"/metrics/per-object")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics/per-object: %s\n%s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q, want Prometheus text 0.0.4", ct)
	}
	fams := parse(t, body)
	got := series(fams)
	ch, cn, on := wl.consumerCh, wl.connName, wl.otherConnName
	checkSeries(t, "per-object", got, map[string]float64{
		`rabbitmq_queue_messages_ready{vhost="/",queue="a"}`:           1,
		`rabbitmq_queue_messages_unacked{vhost="/",queue="a"}`:         2,
		`rabbitmq_queue_messages{vhost="/",queue="a"}`:                 3,
		`rabbitmq_queue_consumers{vhost="/",queue="a"}`:                1,
		`rabbitmq_queue_messages_ready_bytes{vhost="/",queue="a"}`:     5000,
		`rabbitmq_queue_messages{vhost="/",queue="b"}`:                 0,
		`rabbitmq_queue_consumers{vhost="/",queue="b"}`:                0,
		`rabbitmq_queue_messages_ready{vhost="other",queue="c"}`:       1,
		`rabbitmq_queue_messages_ready_bytes{vhost="other",queue="c"}`: 200,
		`rabbitmq_channel_consumers{channel="` + ch + `"}`:             1,
		`rabbitmq_channel_messages_unacked{channel="` + ch + `"}`:      2,
		`rabbitmq_consumer_prefetch{channel="` + ch + `"}`:             2,
		`rabbitmq_channel_prefetch{channel="` + ch + `"}`:              5,
		`rabbitmq_channel_consumers{channel="` + cn + ` (1)"}`:         0,
		`rabbitmq_connection_channels{channel="` + cn + `"}`:           2,
		`rabbitmq_connection_channels{channel="` + on + `"}`:           1,
		"rabbitmq_queues":                               3,
		"rabbitmq_connections":                          2,
		"rabbitmq_channels":                             3,
		"rabbitmq_consumers":                            1,
		`rabbitmq_global_consumers{protocol="amqp091"}`: 1,
		`rabbitmq_global_messages_received_total{protocol="amqp091"}`:           5,
		`rabbitmq_global_messages_unroutable_dropped_total{protocol="amqp091"}`: 1,
		`rabbitmq_message_size_bytes_bucket{protocol="amqp091",le="100"}`:       1,
		`rabbitmq_message_size_bytes_bucket{protocol="amqp091",le="1000"}`:      3,
		`rabbitmq_message_size_bytes_bucket{protocol="amqp091",le="10000"}`:     4,
		`rabbitmq_message_size_bytes_bucket{protocol="amqp091",le="100000"}`:    4,
		`rabbitmq_message_size_bytes_bucket{protocol="amqp091",le="1e+06"}`:     5,
		`rabbitmq_message_size_bytes_bucket{protocol="amqp091",le="+Inf"}`:      5,
		`rabbitmq_message_size_bytes_sum{protocol="amqp091"}`:                   155_710,
		`rabbitmq_message_size_bytes_count{protocol="amqp091"}`:                 5,
		"rabbitmq_connections_opened_total":                                     2,
	})
	for _, name := range []string{"rabbitmq_build_info", "rabbitmq_identity_info"} {
		if f := fams[name]; f == nil || len(f.GetMetric()) != 1 {
			t.Errorf("%s: want exactly one series", name)
		}
	}
	// Per object there is no node-wide sum of queue or channel figures, and no alarms, as
	// with RabbitMQ.
	for k := range got {
		switch {
		case k == "rabbitmq_queue_messages_ready", k == "rabbitmq_queue_messages", k == "rabbitmq_channel_consumers",
			strings.HasPrefix(k, "rabbitmq_alarms_"):
			t.Errorf("per-object has the aggregated series %s", k)
		}
	}
	for name, f := range fams {
		if strings.HasPrefix(name, "rabbitmq_queue_") && f.GetMetric()[0].GetLabel()[0].GetName() != "vhost" {
			t.Errorf("%s: labels %v, want vhost, queue", name, f.GetMetric()[0].GetLabel())
		}
	}
	if f := fams["rabbitmq_queue_messages_ready"]; f == nil || len(f.GetMetric()) != 3 {
		t.Errorf("rabbitmq_queue_messages_ready: want one series per queue (3)")
	}

	// The aggregated endpoint has the same histogram, and sums the queues.
	_, agg := get(t, w.base+"/metrics")
	checkSeries(t, "/metrics", series(parse(t, agg)), map[string]float64{
		`rabbitmq_message_size_bytes_bucket{protocol="amqp091",le="1000"}`: 3,
		`rabbitmq_message_size_bytes_sum{protocol="amqp091"}`:              155_710,
		"rabbitmq_queue_messages":                                          4,
	})

	// A channel closed is gone from the listing at once; its connection counts one fewer.
	if err := wl.otherConn.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body = get(t, w.base+"/metrics/per-object")
		if !strings.Contains(body, on) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(body, on) {
		t.Errorf("the closed connection %s is still listed", on)
	}
}

// TestMessageSizeHistogramBuckets publishes bodies on and around RabbitMQ's bucket bounds:
// a body of exactly a bound counts in that bucket (le), one byte more in the next.
func TestMessageSizeHistogramBuckets(t *testing.T) {
	w := startWorld(t)
	conn := must[*amqp.Connection](t)(amqp.Dial(w.amqpBase))
	defer conn.Close()
	ch := must[*amqp.Channel](t)(conn.Channel())
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 100, 101, 1000, 1001, 99_999, 100_000, 100_001}
	for _, n := range sizes {
		dc := must[*amqp.DeferredConfirmation](t)(ch.PublishWithDeferredConfirmWithContext(context.Background(), "", "nowhere", false, false, amqp.Publishing{Body: make([]byte, n)}))
		if !dc.Wait() {
			t.Fatal("nacked")
		}
	}
	var sum float64
	for _, n := range sizes {
		sum += float64(n)
	}
	_, body := get(t, w.base+"/metrics")
	fams := parse(t, body)
	if f := fams["rabbitmq_message_size_bytes"]; f == nil || f.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("rabbitmq_message_size_bytes is not a histogram on /metrics")
	}
	b := `rabbitmq_message_size_bytes_bucket{protocol="amqp091",le="%s"}`
	want := map[string]float64{}
	for le, n := range map[string]float64{"100": 2, "1000": 4, "10000": 5, "100000": 7, "1e+06": 8, "1e+07": 8, "5e+07": 8, "1e+08": 8, "+Inf": 8} {
		want[strings.Replace(b, "%s", le, 1)] = n
	}
	want[`rabbitmq_message_size_bytes_sum{protocol="amqp091"}`] = sum
	want[`rabbitmq_message_size_bytes_count{protocol="amqp091"}`] = 8
	checkSeries(t, "/metrics", series(fams), want)
	_, po := get(t, w.base+"/metrics/per-object")
	checkSeries(t, "per-object", series(parse(t, po)), want)
}

// TestDetailedServesTheFamiliesAskedFor checks /metrics/detailed: nothing but the identity
// unless families are named, the rabbitmq_detailed_ and rabbitmq_cluster_ names, the vhost
// filter on queue tables (and not on others), the exchange tables without the default and
// internal exchanges, and the HTTP answers RabbitMQ gives.
func TestDetailedServesTheFamiliesAskedFor(t *testing.T) {
	w := startWorld(t)
	wl := runWorkload(t, w)

	_, body := get(t, w.base+"/metrics/detailed")
	fams := parse(t, body)
	if len(fams) != 2 || fams["rabbitmq_identity_info"] == nil || fams["rabbitmq_build_info"] == nil {
		names := make([]string, 0, len(fams))
		for n := range fams {
			names = append(names, n)
		}
		t.Errorf("no family asked: got %v, want only rabbitmq_identity_info and rabbitmq_build_info", names)
	}

	_, body = get(t, w.base+"/metrics/detailed?family=queue_coarse_metrics&vhost=other&vhost=nosuch")
	got := series(parse(t, body))
	checkSeries(t, "queue_coarse_metrics vhost=other", got, map[string]float64{
		`rabbitmq_detailed_queue_messages_ready{vhost="other",queue="c"}`:   1,
		`rabbitmq_detailed_queue_messages_unacked{vhost="other",queue="c"}`: 0,
		`rabbitmq_detailed_queue_messages{vhost="other",queue="c"}`:         1,
	})
	for k := range got {
		if strings.Contains(k, `vhost="/"`) || strings.HasPrefix(k, "rabbitmq_detailed_queue_consumers") {
			t.Errorf("vhost=other, queue_coarse_metrics: unexpected %s", k)
		}
	}

	_, body = get(t, w.base+"/metrics/detailed?family=queue_consumer_count&family=queue_metrics&family=channel_metrics&family=connection_metrics&family=connection_churn_metrics&family=bogus")
	fams = parse(t, body) // one queue_consumers family, though two tables have it
	got = series(fams)
	checkSeries(t, "detailed", got, map[string]float64{
		`rabbitmq_detailed_queue_consumers{vhost="/",queue="a"}`:                      1,
		`rabbitmq_detailed_queue_consumers{vhost="other",queue="c"}`:                  0,
		`rabbitmq_detailed_queue_messages_ready_bytes{vhost="/",queue="a"}`:           5000,
		`rabbitmq_detailed_channel_messages_unacked{channel="` + wl.consumerCh + `"}`: 2,
		`rabbitmq_detailed_connection_channels{channel="` + wl.connName + `"}`:        2,
		"rabbitmq_detailed_connections_opened_total":                                  2,
		"rabbitmq_detailed_queues_created_total":                                      3,
	})
	for k := range got {
		if strings.HasPrefix(k, "rabbitmq_detailed_queue_messages_ready{") || strings.HasPrefix(k, "rabbitmq_detailed_process_") ||
			strings.HasPrefix(k, "rabbitmq_global_") || strings.HasPrefix(k, "rabbitmq_queues") {
			t.Errorf("a family not asked for: %s", k)
		}
	}

	_, body = get(t, w.base+"/metrics/detailed?family=vhost_status&family=exchange_bindings&family=exchange_names&vhost=other")
	got = series(parse(t, body))
	checkSeries(t, "cluster tables", got, map[string]float64{
		`rabbitmq_cluster_vhost_status{vhost="/"}`:                                          1,
		`rabbitmq_cluster_vhost_status{vhost="other"}`:                                      1,
		`rabbitmq_cluster_exchange_bindings{vhost="/",exchange="amq.direct",type="direct"}`: 2,
		`rabbitmq_cluster_exchange_bindings{vhost="/",exchange="amq.topic",type="topic"}`:   0,
		`rabbitmq_cluster_exchange_name{vhost="/",exchange="amq.fanout",type="fanout"}`:     1,
		`rabbitmq_cluster_exchange_name{vhost="other",exchange="amq.direct",type="direct"}`: 1,
	})
	for k := range got {
		if strings.Contains(k, `exchange=""`) || strings.Contains(k, `exchange="hidden"`) {
			t.Errorf("the default or an internal exchange is listed: %s", k)
		}
	}

	_, body = get(t, w.base+"/metrics/detailed?family=node_coarse_metrics&family=node_metrics")
	got = series(parse(t, body))
	for _, k := range []string{"rabbitmq_detailed_process_resident_memory_bytes", "rabbitmq_detailed_resident_memory_limit_bytes"} {
		if got[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, got[k])
		}
	}

	// gzip when asked, as RabbitMQ.
	resp, zbody := get(t, w.base+"/metrics/detailed?family=queue_coarse_metrics", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(zbody, `rabbitmq_detailed_queue_messages{vhost="/",queue="a"} 3`) {
		t.Errorf("gzip: encoding %q, body:\n%s", resp.Header.Get("Content-Encoding"), zbody)
	}
}

// TestPrometheusHTTPAnswers checks the answers RabbitMQ 3.10 gives for registries, methods
// and formats it does not serve.
func TestPrometheusHTTPAnswers(t *testing.T) {
	w := startWorld(t)
	resp, body := get(t, w.base+"/metrics/foo")
	if resp.StatusCode != http.StatusNotFound || body != "Unknown Registry" {
		t.Errorf("/metrics/foo: %s %q, want 404 Unknown Registry", resp.Status, body)
	}
	if resp, _ := get(t, w.base+"/metricsooops"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metricsooops: %s, want 404", resp.Status)
	}
	for _, path := range []string{"/metrics", "/metrics/per-object", "/metrics/detailed"} {
		for _, accept := range []string{"text/xdvi", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"} {
			if resp, _ := get(t, w.base+path, "Accept", accept); resp.StatusCode != http.StatusNotAcceptable {
				t.Errorf("%s with Accept %s: %s, want 406", path, accept, resp.Status)
			}
		}
		// Prometheus's own Accept offers protobuf first and text after: text is served.
		resp, body := get(t, w.base+path, "Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s with Prometheus's Accept: %s %s", path, resp.Status, resp.Header.Get("Content-Type"))
		}
		parse(t, body)
		post, err := http.Post(w.base+path, "text/plain", bytes.NewReader(nil))
		if err != nil {
			t.Fatal(err)
		}
		post.Body.Close()
		if post.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %s, want 405", path, post.Status)
		}
	}
}

// syncBuffer is a log destination safe for the HTTP server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRefusalsAreLoggedInSummary sends a flood of requests the endpoint refuses: the first
// is logged with what was asked, the rest are not logged one by one.
func TestRefusalsAreLoggedInSummary(t *testing.T) {
	srv := server.New(server.Config{Logger: zerolog.Nop()})
	var logs syncBuffer
	hs := httptest.NewServer(metrics.Handler(srv, metrics.Identity{Node: "warren@test"}, zerolog.New(&logs)))
	defer hs.Close()
	for range 50 {
		if resp, body := get(t, hs.URL+"/metrics/foo"); resp.StatusCode != http.StatusNotFound || body != "Unknown Registry" {
			t.Fatalf("/metrics/foo: %s %q", resp.Status, body)
		}
	}
	if resp, _ := get(t, hs.URL+"/metrics", "Accept", "text/xdvi"); resp.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("Accept text/xdvi: %s, want 406", resp.Status)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"path":"/metrics/foo"`) || !strings.Contains(lines[0], `"status":404`) ||
		!strings.Contains(lines[0], "unknown registry") {
		t.Errorf("want one line for the first refusal, got %d:\n%s", len(lines), logs.String())
	}
}
