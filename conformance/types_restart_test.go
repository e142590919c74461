package conformance

import (
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A durable consistent-hash exchange and a quorum queue survive kill -9 of the real binary:
// every key goes to the queue it went to before (the bindings are restored in another order
// than they were made), and the queue is still a quorum queue with its delivery semantics.
func TestExchangeAndQueueTypesSurviveKill(t *testing.T) {
	warrenOnly(t, "kills and restarts the warren binary")
	runner := newBrokerRunner(t, buildWarrenBinary(t), t.TempDir())
	p := runner.start()
	conn := dialConfig(t, p.url, amqp.Config{})
	ch := channel(t, conn)
	const x = "types.restart.chx"
	if err := ch.ExchangeDeclare(x, "x-consistent-hash", true, false, false, false, amqp.Table{"hash-header": "tenant"}); err != nil {
		t.Fatal(err)
	}
	// Bound in an order that is not the store's (by name): q4 first.
	queues := []string{"types.restart.q4", "types.restart.q2", "types.restart.q0", "types.restart.q3", "types.restart.q1"}
	for i, q := range queues {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		bind(t, ch, q, fmt.Sprint(1+i%3), x, nil)
	}
	keys := seq("customer-", 300)
	// tenant publishes one persistent message per key, in the tenant header (the routing keys
	// are all different and do not count), drains the queues and says where each key went.
	tenant := func(conn *amqp.Connection) map[string]string {
		msgs := make([]amqp.Publishing, len(keys))
		for i, k := range keys {
			msgs[i] = amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(k), Headers: amqp.Table{"tenant": k}}
		}
		publishAll(t, conn, x, msgs, seq("rk-", len(keys)))
		c := channel(t, conn)
		got := map[string]string{}
		for _, q := range queues {
			for _, d := range getAll(t, c, q) {
				got[string(d.Body)] = q
			}
		}
		if len(got) != len(keys) {
			t.Fatalf("%d of %d keys reached a queue", len(got), len(keys))
		}
		return got
	}
	before := tenant(conn)
	const qq = "types.restart.quorum"
	if _, err := ch.QueueDeclare(qq, true, false, false, false, amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": int32(5)}); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, conn)
	pub.publish("", qq, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("kept")})
	if err := get(t, ch, qq, false).Nack(false, true); err != nil {
		t.Fatal(err)
	}
	// The return's count is written behind the nack; a confirmed write after it is durable
	// only once the count is.
	pub.publish("", qq, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("second")})

	p.kill(t)
	p = runner.start()
	conn = dialConfig(t, p.url, amqp.Config{})
	after := tenant(conn)
	for _, k := range keys {
		if before[k] != after[k] {
			t.Errorf("key %s went to %s before the restart and to %s after", k, before[k], after[k])
		}
	}
	_, err := channel(t, conn).QueueDeclare(qq, true, false, false, false, nil)
	wantError(t, err, 406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '"+qq+"'")
	d := get(t, channel(t, conn), qq, false)
	if string(d.Body) != "kept" || !d.Redelivered || deliveryCount(d) < 1 {
		t.Errorf("after the restart: %q redelivered=%v x-delivery-count=%v, want kept, true, ≥ 1", d.Body, d.Redelivered, d.Headers["x-delivery-count"])
	}
}
