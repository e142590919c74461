//go:build interop

package conformance

import (
	"strings"
	"testing"
	"time"
)

// TestRabbitmqadminTopologyAndMessages: rabbitmqadmin declares an exchange, a queue and a
// binding (string booleans, POST to the binding path), publishes through them (reading
// "routed"), gets with both ackmodes (count sent as a string), purges and deletes, as an
// operator would, and each step has its effect on the broker as AMQP sees it.
func TestRabbitmqadminTopologyAndMessages(t *testing.T) {
	x, q := uniqueName(t, "x"), uniqueName(t, "q")
	deleteExchangeLater(t, x)
	deleteQueueLater(t, q)
	conn, ch := connChannel(t)
	defer conn.Close()

	rabbitmqadmin(t, "declare", "exchange", "name="+x, "type=direct", "durable=true")
	rabbitmqadmin(t, "declare", "queue", "name="+q, "durable=false", `arguments={"x-max-length":10}`)
	rabbitmqadmin(t, "declare", "binding", "source="+x, "destination="+q, "routing_key=k")
	if err := ch.ExchangeDeclarePassive(x, "direct", true, false, false, false, nil); err != nil {
		t.Fatalf("the exchange rabbitmqadmin declared: %v", err)
	}

	if out := rabbitmqadmin(t, "publish", "exchange="+x, "routing_key=k", "payload=hello"); !strings.Contains(out, "Message published") || strings.Contains(out, "NOT routed") {
		t.Fatalf("publish: %q", out)
	}
	if out := rabbitmqadmin(t, "publish", "exchange="+x, "routing_key=nowhere", "payload=lost"); !strings.Contains(out, "NOT routed") {
		t.Fatalf("unroutable publish: %q", out)
	}
	rabbitmqadmin(t, "publish", "exchange=amq.default", "routing_key="+q, "payload=second")

	var got []gotMessage
	rabbitmqadminJSON(t, &got, "get", "queue="+q, "ackmode=ack_requeue_true")
	if len(got) != 1 || got[0].Payload != "hello" || got[0].Redelivered || got[0].Exchange != x || got[0].RoutingKey != "k" || got[0].MessageCount != 1 {
		t.Fatalf("get ack_requeue_true: %+v", got)
	}
	rabbitmqadminJSON(t, &got, "get", "queue="+q, "count=2", "ackmode=ack_requeue_false")
	if len(got) != 2 || got[0].Payload != "hello" || !got[0].Redelivered || got[1].Payload != "second" {
		t.Fatalf("get ack_requeue_false after a requeue: %+v", got)
	}
	wantEmpty(t, ch, q)

	rabbitmqadmin(t, "publish", "exchange="+x, "routing_key=k", "payload=to purge")
	var qs []struct {
		Name     string `json:"name"`
		Messages *int   `json:"messages"`
	}
	// RabbitMQ lists counts once its stats emit (up to ~5 s).
	deadline := time.Now().Add(timeout)
	for {
		rabbitmqadminJSON(t, &qs, "list", "queues", "name", "messages")
		n := -1
		for _, e := range qs {
			if e.Name == q && e.Messages != nil {
				n = *e.Messages
			}
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list queues does not show %s with 1 message: %+v", q, qs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := rabbitmqadmin(t, "purge", "queue", "name="+q); !strings.Contains(out, "purged") {
		t.Fatalf("purge: %q", out)
	}
	wantEmpty(t, ch, q)

	rabbitmqadmin(t, "delete", "binding", "source="+x, "destination_type=queue", "destination="+q, "properties_key=k")
	rabbitmqadmin(t, "publish", "exchange="+x, "routing_key=k", "payload=unbound")
	wantEmpty(t, ch, q)
	rabbitmqadmin(t, "delete", "queue", "name="+q)
	rabbitmqadmin(t, "delete", "exchange", "name="+x)
	if out, err := rabbitmqadminRun(t, "delete", "queue", "name="+q); err == nil || !strings.Contains(out, "Not found") {
		t.Fatalf("deleting the deleted queue: %v %q", err, out)
	}
	ch2 := channel(t, conn)
	if err := ch2.ExchangeDeclarePassive(x, "direct", true, false, false, false, nil); err == nil {
		t.Fatal("the exchange rabbitmqadmin deleted is still there")
	}
}

// TestRabbitmqadminListsTopology: what rabbitmqadmin declared shows in its `list exchanges`
// and `list bindings` (the listings, GET /api/exchanges and /api/bindings, are another part of
// the API: this test needs them).
func TestRabbitmqadminListsTopology(t *testing.T) {
	x, q := uniqueName(t, "x"), uniqueName(t, "q")
	deleteExchangeLater(t, x)
	deleteQueueLater(t, q)
	rabbitmqadmin(t, "declare", "exchange", "name="+x, "type=topic")
	rabbitmqadmin(t, "declare", "queue", "name="+q)
	rabbitmqadmin(t, "declare", "binding", "source="+x, "destination="+q, "routing_key=a.#")

	var xs []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	rabbitmqadminJSON(t, &xs, "list", "exchanges", "name", "type")
	found := false
	for _, e := range xs {
		found = found || (e.Name == x && e.Type == "topic")
	}
	if !found {
		t.Fatalf("list exchanges does not show %s (topic): %+v", x, xs)
	}
	var bs []struct {
		Source      string `json:"source"`
		Destination string `json:"destination"`
		RoutingKey  string `json:"routing_key"`
	}
	rabbitmqadminJSON(t, &bs, "list", "bindings", "source", "destination", "routing_key")
	found = false
	for _, b := range bs {
		found = found || (b.Source == x && b.Destination == q && b.RoutingKey == "a.#")
	}
	if !found {
		t.Fatalf("list bindings does not show %s -> %s (a.#): %+v", x, q, bs)
	}
}
