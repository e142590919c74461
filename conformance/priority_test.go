package conformance

// Priority queues (https://www.rabbitmq.com/docs/priority): x-max-priority from 1 to 255. The
// argument's validation is in args_test.go.

import (
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// prioMsg is a body and the priority it is published with. amqp091-go leaves the priority
// property out when it is 0.
type prioMsg struct {
	body     string
	priority uint8
}

// publishPriorities publishes msgs in order, confirmed.
func publishPriorities(t *testing.T, conn *amqp.Connection, q string, msgs ...prioMsg) {
	t.Helper()
	p := newPublisher(t, conn)
	for _, m := range msgs {
		p.publish("", q, false, amqp.Publishing{Priority: m.priority, Body: []byte(m.body)})
	}
}

// bodiesWithPriority gets every message and returns "body/priority" for each, the priority being
// the delivered property.
func bodiesWithPriority(t *testing.T, ch *amqp.Channel, q string) []string {
	t.Helper()
	var out []string
	for _, d := range getAll(t, ch, q) {
		out = append(out, fmt.Sprintf("%s/%d", d.Body, d.Priority))
	}
	return out
}

// Higher priorities go first, FIFO within one priority, to basic.get and to consumers alike.
func TestPriorityOrder(t *testing.T) {
	t.Parallel()
	msgs := []prioMsg{{body: "a", priority: 1}, {body: "b", priority: 5}, {body: "c", priority: 1},
		{body: "d", priority: 10}, {body: "e", priority: 5}, {body: "f", priority: 0}, {body: "g", priority: 10}}
	want := []string{"d/10", "g/10", "b/5", "e/5", "a/1", "c/1", "f/0"}

	t.Run("basic.get", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		q := declareQueue(t, ch, amqp.Table{"x-max-priority": int32(10)})
		publishPriorities(t, conn, q, msgs...)
		equalStrings(t, "order", bodiesWithPriority(t, ch, q), want)
	})
	t.Run("consumer", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		q := declareQueue(t, ch, amqp.Table{"x-max-priority": int32(10)})
		publishPriorities(t, conn, q, msgs...)
		var got []string
		for _, d := range recvAll(t, consume(t, ch, q, "", true), len(msgs)) {
			got = append(got, fmt.Sprintf("%s/%d", d.Body, d.Priority))
		}
		equalStrings(t, "order", got, want)
	})
	t.Run("published while the consumer is blocked", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		q := declareQueue(t, ch, amqp.Table{"x-max-priority": int32(10)})
		if err := ch.Qos(1, 0, false); err != nil {
			t.Fatal(err)
		}
		in := consume(t, ch, q, "", false)
		publishPriorities(t, conn, q, prioMsg{body: "first"})
		d := recv(t, in, "first")
		publishPriorities(t, conn, q, prioMsg{body: "low", priority: 1}, prioMsg{body: "high", priority: 9})
		var got []string
		for i := 0; i < 2; i++ {
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
			d = recv(t, in, "next")
			got = append(got, string(d.Body))
		}
		equalStrings(t, "after the ack", got, []string{"high", "low"})
	})
}

// recvAll receives n deliveries.
func recvAll(t *testing.T, c <-chan amqp.Delivery, n int) []amqp.Delivery {
	t.Helper()
	out := make([]amqp.Delivery, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, recv(t, c, fmt.Sprintf("delivery %d of %d", i+1, n)))
	}
	return out
}

// A priority above x-max-priority counts as the maximum (FIFO with the messages at the maximum),
// and the message keeps the priority property it was published with.
func TestPriorityAboveMax(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, amqp.Table{"x-max-priority": int32(5)})
	publishPriorities(t, conn, q, prioMsg{body: "d", priority: 4}, prioMsg{body: "a", priority: 9},
		prioMsg{body: "b", priority: 5}, prioMsg{body: "c", priority: 255})
	equalStrings(t, "order", bodiesWithPriority(t, ch, q), []string{"a/9", "b/5", "c/255", "d/4"})
}

// A message without the priority property has priority 0: behind those with a priority, FIFO
// among themselves.
func TestPriorityDefaultZero(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, amqp.Table{"x-max-priority": int32(5)})
	publishPriorities(t, conn, q, prioMsg{body: "none"}, prioMsg{body: "one", priority: 1}, prioMsg{body: "none2"})
	equalStrings(t, "order", bodiesWithPriority(t, ch, q), []string{"one/1", "none/0", "none2/0"})
}

// Requeued messages keep their priority, and their place among the messages of that priority.
func TestPriorityRequeue(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, amqp.Table{"x-max-priority": int32(10)})
	publishPriorities(t, conn, q, prioMsg{body: "lo", priority: 1}, prioMsg{body: "mid", priority: 5}, prioMsg{body: "hi", priority: 9})
	hi, mid := get(t, ch, q, false), get(t, ch, q, false)
	if string(hi.Body) != "hi" || string(mid.Body) != "mid" {
		t.Fatalf("got %q then %q, want hi then mid", hi.Body, mid.Body)
	}
	publishPriorities(t, conn, q, prioMsg{body: "mid2", priority: 5})
	for _, d := range []amqp.Delivery{mid, hi} {
		if err := d.Nack(false, true); err != nil {
			t.Fatal(err)
		}
	}
	equalStrings(t, "order after the requeue (* = redelivered)", drain(t, ch, q), []string{"hi*", "mid*", "mid2", "lo"})
}

// x-max-priority 0 is accepted (RabbitMQ 3.10 validates it as a non-negative integer up to 255)
// and gives a queue in which every message has the one priority 0: plain FIFO.
func TestMaxPriorityZero(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, amqp.Table{"x-max-priority": int32(0)})
	publishPriorities(t, conn, q, prioMsg{body: "a", priority: 5}, prioMsg{body: "b", priority: 0}, prioMsg{body: "c", priority: 9})
	equalStrings(t, "order", bodiesWithPriority(t, ch, q), []string{"a/5", "b/0", "c/9"})
}

// x-max-priority 255, the largest, orders the whole range.
func TestMaxPriority255(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, amqp.Table{"x-max-priority": uint8(255)})
	publishPriorities(t, conn, q, prioMsg{body: "a", priority: 200}, prioMsg{body: "b", priority: 255}, prioMsg{body: "c", priority: 254})
	equalStrings(t, "order", bodiesWithPriority(t, ch, q), []string{"b/255", "c/254", "a/200"})
}
