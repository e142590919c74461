package mgmt_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/mgmt"
	"github.com/warrenmq/warren/server/servertest"
	"github.com/warrenmq/warren/store"
)

type redriven struct{ Moved, Skipped, Left int }

func redrive(t *testing.T, api, queue, body string) redriven {
	t.Helper()
	out := want(t, "POST", api+"/queues/%2F/"+queue+"/redrive", "guest", body, 200, "")
	var r redriven
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("redrive answer %s: %v", out, err)
	}
	return r
}

// bodies takes every message of a queue (auto-ack) and returns their bodies.
func bodies(t *testing.T, ch *amqp.Channel, queue string) []string {
	t.Helper()
	var out []string
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, string(d.Body))
	}
}

func equal(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %q, want %q", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: %q, want %q", what, got, want)
		}
	}
}

// TestRedrive: a message rejected by one of the two queues a fanout gave it to is moved
// from the dead-letter queue back to that queue only, keeping its x-death history; a message
// without x-death stays where it was; count bounds how many are looked at.
func TestRedrive(t *testing.T) {
	b := startBroker(t)
	api := b.api + "/api"
	conn := dial(t, b, "guest", "guest", "redrive")
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	dl := amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}
	for _, q := range []struct {
		name string
		args amqp.Table
	}{{"dlq", nil}, {"work", dl}, {"other", dl}} {
		if _, err := ch.QueueDeclare(q.name, false, false, false, false, q.args); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.ExchangeDeclare("fx", "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"work", "other"} {
		if err := ch.QueueBind(q, "", "fx", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"m1", "m2"} {
		if err := ch.PublishWithContext(context.Background(), "fx", "", false, false, amqp.Publishing{Body: []byte(m)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.PublishWithContext(context.Background(), "", "dlq", false, false, amqp.Publishing{Body: []byte("plain")}); err != nil {
		t.Fatal(err)
	}
	// work rejects both of its copies: dlq has m1, m2 (from work) after plain.
	for range 2 {
		d, ok, err := ch.Get("work", false)
		if err != nil || !ok {
			t.Fatalf("get from work: %v %v", ok, err)
		}
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	servertest.WaitReady(t, ch, "dlq", 3)

	if r := redrive(t, api, "dlq", `{"count":2}`); r != (redriven{Moved: 1, Skipped: 1, Left: 2}) {
		t.Fatalf("redrive of two: %+v, want plain skipped and m1 moved", r)
	}
	if r := redrive(t, api, "dlq", ""); r != (redriven{Moved: 1, Skipped: 1, Left: 1}) {
		t.Fatalf("redrive of all: %+v, want m2 moved", r)
	}
	d, ok, err := ch.Get("work", true)
	if err != nil || !ok || string(d.Body) != "m1" || d.Exchange != "" || d.RoutingKey != "work" {
		t.Fatalf("work's first message after the redrive: %q from %q/%q (%v %v)", d.Body, d.Exchange, d.RoutingKey, ok, err)
	}
	if deaths, _ := d.Headers["x-death"].([]any); len(deaths) != 1 {
		t.Fatalf("x-death after the redrive: %v", d.Headers)
	}
	equal(t, "work after the redrive", bodies(t, ch, "work"), "m2")
	equal(t, "other, which kept its copies", bodies(t, ch, "other"), "m1", "m2")
	equal(t, "dlq after the redrive", bodies(t, ch, "dlq"), "plain")

	want(t, "POST", api+"/queues/%2F/none/redrive", "guest", "", 404, "NOT_FOUND - no queue 'none' in vhost '/'")
	want(t, "POST", api+"/queues/%2F/dlq/redrive", "guest", `{"count":"x"}`, 400, "")
}

// TestRedriveKeepsWhatCannotMove: a message whose queue refuses it (x-overflow
// reject-publish, full) stays in the dead-letter queue, in its place; once the queue has room
// the next redrive moves it. With a store, a persistent message moved to a durable queue is
// there after a restart and gone from the dead-letter queue.
func TestRedriveKeepsWhatCannotMove(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Logger: zerolog.Nop(), Store: st})
	if err := srv.Recover(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(context.Background(), ln) }()
	hs := httptest.NewServer(mgmt.Handler(t.Context(), srv, mgmt.Identity{Node: "warren@test"}, zerolog.Nop()))
	api := hs.URL + "/api"
	conn, err := amqp.Dial("amqp://guest:guest@" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("dlq", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("work", true, false, false, false, amqp.Table{
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq", "x-max-length": int64(1), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"a", "b"} {
		if err := ch.PublishWithContext(context.Background(), "", "work", false, false, amqp.Publishing{Body: []byte(m), DeliveryMode: 2}); err != nil {
			t.Fatal(err)
		}
		d, ok, err := ch.Get("work", false)
		if err != nil || !ok {
			t.Fatalf("get: %v %v", ok, err)
		}
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	servertest.WaitReady(t, ch, "dlq", 2)
	if err := ch.PublishWithContext(context.Background(), "", "work", false, false, amqp.Publishing{Body: []byte("filler"), DeliveryMode: 2}); err != nil {
		t.Fatal(err)
	}
	servertest.WaitReady(t, ch, "work", 1)
	if r := redrive(t, api, "dlq", ""); r != (redriven{Moved: 0, Skipped: 2, Left: 2}) {
		t.Fatalf("redrive into a full queue: %+v, want both kept", r)
	}
	equal(t, "work, full", bodies(t, ch, "work"), "filler")
	if r := redrive(t, api, "dlq", `{"count":1}`); r != (redriven{Moved: 1, Left: 1}) {
		t.Fatalf("redrive of one into room for one: %+v", r)
	}
	_ = conn.Close()
	hs.Close()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = store.Open(store.Options{Dir: dir, Logger: zerolog.Nop(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv = server.New(server.Config{Logger: zerolog.Nop(), Store: st})
	if err := srv.Recover(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	hs = httptest.NewServer(mgmt.Handler(t.Context(), srv, mgmt.Identity{Node: "warren@test"}, zerolog.Nop()))
	defer hs.Close()
	api = hs.URL + "/api"
	for q, wantBodies := range map[string][]string{"work": {"a"}, "dlq": {"b"}} {
		out := want(t, "POST", api+"/queues/%2F/"+q+"/get", "guest", `{"count":5,"ackmode":"ack_requeue_false","encoding":"auto"}`, 200, "")
		var got []struct{ Payload string }
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		var payloads []string
		for _, g := range got {
			payloads = append(payloads, g.Payload)
		}
		equal(t, q+" after the restart", payloads, wantBodies...)
	}
}
