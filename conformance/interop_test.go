//go:build interop

package conformance

// Interop tests drive clients other than amqp091-go against the broker under test: Debian's
// python3-pika (through testdata/interop.py, run by the system /usr/bin/python3) and the
// rabbitmq-c command-line tools from amqp-tools. Run them with
//
//	go test -tags interop ./conformance/ -run Interop
//
// and AMQP_URL as usual to aim them at another broker.

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const python = "/usr/bin/python3"

const missingTool = "run the README's test script: it installs python3-pika and amqp-tools"

// requireTools fails the test, never skips it, when a client it drives is not installed.
func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"amqp-publish", "amqp-get", "amqp-consume", "amqp-declare-queue"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s (amqp-tools) not found: %s", tool, missingTool)
		}
	}
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s not found: %s", python, missingTool)
	}
	if out, err := exec.Command(python, "-c", "import pika").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import pika (%v: %s): %s", python, err, strings.TrimSpace(string(out)), missingTool)
	}
}

// brokerArgs are the connection settings of the broker under test, as separate values: the
// tools differ in how they read a vhost from a URL.
type brokerArgs struct{ host, port, vhost, user, password string }

func broker(t *testing.T) brokerArgs {
	t.Helper()
	uri, err := amqp.ParseURI(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	return brokerArgs{uri.Host, strconv.Itoa(uri.Port), uri.Vhost, uri.Username, uri.Password}
}

// toolArgs are the rabbitmq-c tools' connection options.
func (b brokerArgs) toolArgs() []string {
	return []string{"--server", b.host, "--port", b.port, "--vhost", b.vhost, "--username", b.user, "--password", b.password}
}

// runTool runs a client command with a deadline and returns its standard output.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v\nstderr: %s", name, args, err, stderr.String())
	}
	return string(out)
}

func pika(t *testing.T, b brokerArgs, command string, args ...string) string {
	t.Helper()
	all := append([]string{"testdata/interop.py", command, b.host, b.port, b.vhost, b.user, b.password}, args...)
	return runTool(t, python, all...)
}

// pikaMessage is what interop.py consume prints.
type pikaMessage struct {
	Body        string         `json:"body"`
	Exchange    string         `json:"exchange"`
	RoutingKey  string         `json:"routing_key"`
	Redelivered bool           `json:"redelivered"`
	Properties  map[string]any `json:"properties"`
}

func pikaConsume(t *testing.T, b brokerArgs, queue string) pikaMessage {
	t.Helper()
	var m pikaMessage
	out := pika(t, b, "consume", queue, "5")
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("interop.py consume printed %q: %v", out, err)
	}
	return m
}

// exchangeKinds: for each kind, a routing key and binding that route the test's messages.
var exchangeKinds = []struct {
	kind, key, bindingKey string
	bindArgs              amqp.Table
}{
	{"direct", "interop.direct", "interop.direct", nil},
	{"fanout", "ignored.by.fanout", "", nil},
	{"topic", "interop.topic.key", "interop.*.key", nil},
	{"headers", "", "", amqp.Table{"x-match": "all", "route": "yes"}},
}

func TestInteropPikaToGoAndTools(t *testing.T) {
	requireTools(t)
	b := broker(t)
	for _, k := range exchangeKinds {
		t.Run(k.kind, func(t *testing.T) {
			t.Parallel()
			_, ch := connChannel(t)
			x := declareExchange(t, ch, k.kind, nil)
			goQ, getQ, consumeQ := declareQueue(t, ch, nil), declareQueue(t, ch, nil), declareQueue(t, ch, nil)
			for _, q := range []string{goQ, getQ, consumeQ} {
				bind(t, ch, q, k.bindingKey, x, k.bindArgs)
			}
			body := "from pika through a " + k.kind + " exchange"
			msg, _ := json.Marshal(map[string]any{
				"body": body,
				"properties": map[string]any{
					"content_type":     "application/json",
					"content_encoding": "utf-8",
					"delivery_mode":    2,
					"priority":         3,
					"correlation_id":   "corr-1",
					"reply_to":         "replies",
					"expiration":       "60000",
					"message_id":       "msg-1",
					"timestamp":        1700000000,
					"type":             "interop",
					"user_id":          b.user,
					"app_id":           "pika",
					"headers": map[string]any{
						"route": "yes", "count": 42, "big": int64(1) << 40, "ok": true, // pika 1.2 encodes no floats
						"nothing": nil, "nested": map[string]any{"a": "b"}, "list": []any{1, "two"},
					},
				},
			})
			pika(t, b, "publish", x, k.key, string(msg))

			d := get(t, ch, goQ, true)
			checkProperties(t, "pika → Go", amqp.Publishing{
				ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Priority: 3,
				CorrelationId: "corr-1", ReplyTo: "replies", Expiration: "60000", MessageId: "msg-1",
				Timestamp: time.Unix(1700000000, 0), Type: "interop", UserId: b.user, AppId: "pika",
				Headers: amqp.Table{
					"route": "yes", "count": int32(42), "big": int64(1) << 40, "ok": true,
					"nothing": nil, "nested": amqp.Table{"a": "b"}, "list": []any{int32(1), "two"},
				},
				Body: []byte(body),
			}, d)
			if d.Exchange != x || d.RoutingKey != k.key {
				t.Errorf("pika → Go: exchange/key %q/%q, want %q/%q", d.Exchange, d.RoutingKey, x, k.key)
			}

			if got := runTool(t, "amqp-get", append(b.toolArgs(), "--queue", getQ)...); got != body {
				t.Errorf("pika → amqp-get: %q, want %q", got, body)
			}
			if got := runTool(t, "amqp-consume", append(b.toolArgs(), "--queue", consumeQ, "--count", "1", "cat")...); got != body {
				t.Errorf("pika → amqp-consume: %q, want %q", got, body)
			}
		})
	}
}

func TestInteropToolsToPika(t *testing.T) {
	requireTools(t)
	b := broker(t)
	for _, k := range exchangeKinds {
		t.Run(k.kind, func(t *testing.T) {
			t.Parallel()
			_, ch := connChannel(t)
			x := declareExchange(t, ch, k.kind, nil)
			want := uniqueName(t, "tools")
			q := strings.TrimSpace(runTool(t, "amqp-declare-queue", append(b.toolArgs(), "--queue", want)...))
			deleteQueueLater(t, want)
			if q != want {
				t.Fatalf("amqp-declare-queue printed %q, want %q", q, want)
			}
			wantMessages(t, ch, q, 0)
			bind(t, ch, q, k.bindingKey, x, k.bindArgs)

			body := "from amqp-publish through a " + k.kind + " exchange"
			runTool(t, "amqp-publish", append(b.toolArgs(),
				"--exchange", x, "--routing-key", k.key, "--body", body,
				"--content-type", "text/plain", "--content-encoding", "identity", "--persistent",
				"--reply-to", "answers", "--header", "route: yes", "--header", "tool: amqp-publish")...)

			m := pikaConsume(t, b, q)
			if m.Body != body || m.Exchange != x || m.RoutingKey != k.key || m.Redelivered {
				t.Errorf("amqp-publish → pika: %+v, want %q via %s/%q", m, body, x, k.key)
			}
			wantProps := map[string]any{
				"content_type":     "text/plain",
				"content_encoding": "identity",
				"delivery_mode":    float64(2),
				"reply_to":         "answers",
				"headers":          map[string]any{"route": "yes", "tool": "amqp-publish"},
			}
			if !reflect.DeepEqual(m.Properties, wantProps) {
				t.Errorf("amqp-publish → pika properties:\n got %v\nwant %v", m.Properties, wantProps)
			}
		})
	}
}

func TestInteropGoToPika(t *testing.T) {
	requireTools(t)
	b := broker(t)
	for _, k := range exchangeKinds {
		t.Run(k.kind, func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			x := declareExchange(t, ch, k.kind, nil)
			q := declareQueue(t, ch, nil)
			bind(t, ch, q, k.bindingKey, x, k.bindArgs)
			body := "from Go through a " + k.kind + " exchange"
			newPublisher(t, conn).publish(x, k.key, true, amqp.Publishing{
				Headers:       amqp.Table{"route": "yes", "n": int32(7), "list": []any{"a", int64(2)}, "t": amqp.Table{"k": true}},
				ContentType:   "text/plain",
				DeliveryMode:  amqp.Transient,
				CorrelationId: "go-corr",
				MessageId:     "go-1",
				Timestamp:     time.Unix(1700000001, 0),
				Type:          "go",
				AppId:         "amqp091-go",
				Body:          []byte(body),
			})
			m := pikaConsume(t, b, q)
			if m.Body != body || m.Exchange != x || m.RoutingKey != k.key {
				t.Errorf("Go → pika: %+v, want %q via %s/%q", m, body, x, k.key)
			}
			wantProps := map[string]any{
				"content_type":   "text/plain",
				"delivery_mode":  float64(1),
				"correlation_id": "go-corr",
				"message_id":     "go-1",
				"timestamp":      float64(1700000001),
				"type":           "go",
				"app_id":         "amqp091-go",
				"headers": map[string]any{
					"route": "yes", "n": float64(7), "list": []any{"a", float64(2)}, "t": map[string]any{"k": true},
				},
			}
			if !reflect.DeepEqual(m.Properties, wantProps) {
				t.Errorf("Go → pika properties:\n got %v\nwant %v", m.Properties, wantProps)
			}
		})
	}
}
