package conformance

// Queue length limits (https://www.rabbitmq.com/docs/maxlength): x-max-length,
// x-max-length-bytes and the x-overflow behaviours; and Warren's x-delivery-limit, which RabbitMQ
// has on quorum queues only (https://www.rabbitmq.com/docs/quorum-queues#poison-message-handling).

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// publishAcked publishes msg and reports whether the broker confirmed it with an ack (true) or a
// nack (false).
func (p *publisher) publishAcked(exchange, key string, msg amqp.Publishing) bool {
	p.t.Helper()
	dc, err := p.ch.PublishWithDeferredConfirm(exchange, key, false, false, msg)
	if err != nil {
		p.t.Fatalf("publish to %q with key %q: %v", exchange, key, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		p.t.Fatalf("confirm of publish to %q with key %q: %v", exchange, key, err)
	}
	return acked
}

// wantMaxlenDeaths receives one dead-lettered message per body and checks that each was dropped
// from q for its length limit.
func wantMaxlenDeaths(t *testing.T, sunk <-chan amqp.Delivery, since time.Time, q string, bodies ...string) {
	t.Helper()
	ev := dlEvent{q, "maxlen", ""}
	for _, b := range bodies {
		d := recv(t, sunk, "dropped "+b)
		if string(d.Body) != b {
			t.Errorf("dead-lettered %q, want %q", d.Body, b)
		}
		checkDeaths(t, d, since, ev, ev, death{queue: q, reason: "maxlen", exchange: "", count: 1, keys: []string{q}})
	}
}

// Over x-max-length, the default overflow behaviour drops the oldest messages from the head and
// dead-letters them with the reason maxlen; the publishes are all confirmed.
func TestMaxLengthDropHead(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args amqp.Table
	}{
		{"default", nil},
		{"x-overflow drop-head", amqp.Table{"x-overflow": "drop-head"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			dlx, _, sunk := deadLetterSink(t, conn)
			args := amqp.Table{"x-max-length": int32(2), "x-dead-letter-exchange": dlx}
			for k, v := range c.args {
				args[k] = v
			}
			q := declareQueue(t, ch, args)
			since := time.Now()
			newPublisher(t, conn).toQueue(q, seq("m", 5)...)
			wantMessages(t, ch, q, 2)
			wantMaxlenDeaths(t, sunk, since, q, "m0", "m1", "m2")
			equalStrings(t, "kept", getBodies(t, ch, q), []string{"m3", "m4"})
		})
	}
	t.Run("x-max-length 0", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		dlx, _, sunk := deadLetterSink(t, conn)
		q := declareQueue(t, ch, amqp.Table{"x-max-length": int32(0), "x-dead-letter-exchange": dlx})
		since := time.Now()
		newPublisher(t, conn).toQueue(q, "m0", "m1")
		wantMaxlenDeaths(t, sunk, since, q, "m0", "m1")
		wantEmpty(t, ch, q)
	})
}

// x-max-length-bytes counts message bodies only: neither headers nor properties.
func TestMaxLengthBytes(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	dlx, _, sunk := deadLetterSink(t, conn)
	q := declareQueue(t, ch, amqp.Table{"x-max-length-bytes": int32(10), "x-dead-letter-exchange": dlx})
	p := newPublisher(t, conn)
	since := time.Now()
	p.publish("", q, false, amqp.Publishing{
		Headers: amqp.Table{"pad": strings.Repeat("h", 1000)}, MessageId: strings.Repeat("i", 200), Body: []byte("aaaa"),
	})
	p.toQueue(q, "bbbbbb") // 10 body bytes in all: at the limit, not over it
	wantMessages(t, ch, q, 2)
	p.toQueue(q, "c") // 11: the head goes
	wantMaxlenDeaths(t, sunk, since, q, "aaaa")
	equalStrings(t, "kept", getBodies(t, ch, q), []string{"bbbbbb", "c"})
}

// x-overflow reject-publish refuses new messages while the queue is full: a publisher in confirm
// mode gets basic.nack, and the refused message is not dead-lettered.
func TestOverflowRejectPublish(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args amqp.Table
		fill []string
		over string
	}{
		{"x-max-length", amqp.Table{"x-max-length": int32(2)}, []string{"m0", "m1"}, "m2"},
		{"x-max-length-bytes", amqp.Table{"x-max-length-bytes": int32(4)}, []string{"m0", "m1"}, "m2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			dlx, _, sunk := deadLetterSink(t, conn)
			args := amqp.Table{"x-overflow": "reject-publish", "x-dead-letter-exchange": dlx}
			for k, v := range c.args {
				args[k] = v
			}
			q := declareQueue(t, ch, args)
			p := newPublisher(t, conn)
			p.toQueue(q, c.fill...)
			if p.publishAcked("", q, amqp.Publishing{Body: []byte(c.over)}) {
				t.Errorf("publish to the full queue was acked, want basic.nack")
			}
			wantNoDelivery(t, sunk, 200*time.Millisecond, "the refused message dead-lettered")
			wantMessages(t, ch, q, 2)
			if d := get(t, ch, q, true); string(d.Body) != "m0" {
				t.Errorf("head %q, want m0", d.Body)
			}
			if !p.publishAcked("", q, amqp.Publishing{Body: []byte("m3")}) {
				t.Errorf("publish after room was made was nacked")
			}
			equalStrings(t, "kept", getBodies(t, ch, q), []string{"m1", "m3"})
		})
	}
}

// x-overflow reject-publish-dlx nacks like reject-publish and dead-letters the refused message
// with the reason maxlen.
func TestOverflowRejectPublishDLX(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	dlx, _, sunk := deadLetterSink(t, conn)
	q := declareQueue(t, ch, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish-dlx", "x-dead-letter-exchange": dlx})
	p := newPublisher(t, conn)
	since := time.Now()
	p.toQueue(q, "kept")
	if p.publishAcked("", q, amqp.Publishing{Expiration: "60000", Body: []byte("refused")}) {
		t.Errorf("publish to the full queue was acked, want basic.nack")
	}
	d := recv(t, sunk, "the refused message")
	if string(d.Body) != "refused" || d.Expiration != "" {
		t.Errorf("dead-lettered %q with expiration %q, want refused without", d.Body, d.Expiration)
	}
	ev := dlEvent{q, "maxlen", ""}
	checkDeaths(t, d, since, ev, ev, death{queue: q, reason: "maxlen", exchange: "", count: 1, keys: []string{q}, expiration: "60000"})
	equalStrings(t, "kept", getBodies(t, ch, q), []string{"kept"})
}

// Limits count ready messages only: delivered, unacknowledged messages do not take room. When they
// are requeued over the limit, drop-head enforces it again from the head, which they are back at.
func TestMaxLengthCountsReadyOnly(t *testing.T) {
	t.Parallel()
	t.Run("drop-head", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		dlx, _, sunk := deadLetterSink(t, conn)
		q := declareQueue(t, ch, amqp.Table{"x-max-length": int32(1), "x-dead-letter-exchange": dlx})
		p := newPublisher(t, conn)
		since := time.Now()
		p.toQueue(q, "m0")
		held := get(t, ch, q, false)
		p.toQueue(q, "m1")
		wantNoDelivery(t, sunk, 100*time.Millisecond, "dropped while m0 was unacknowledged")
		p.toQueue(q, "m2")
		wantMaxlenDeaths(t, sunk, since, q, "m1")
		if err := held.Nack(false, true); err != nil {
			t.Fatal(err)
		}
		wantMaxlenDeaths(t, sunk, since, q, "m0")
		equalStrings(t, "kept", getBodies(t, ch, q), []string{"m2"})
	})
	t.Run("reject-publish", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		q := declareQueue(t, ch, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
		p := newPublisher(t, conn)
		p.toQueue(q, "m0")
		held := get(t, ch, q, false)
		if !p.publishAcked("", q, amqp.Publishing{Body: []byte("m1")}) {
			t.Errorf("m1 was nacked while the only other message was unacknowledged")
		}
		if p.publishAcked("", q, amqp.Publishing{Body: []byte("m2")}) {
			t.Errorf("m2 was acked with m1 ready, want basic.nack")
		}
		if err := held.Ack(false); err != nil {
			t.Fatal(err)
		}
		equalStrings(t, "kept", getBodies(t, ch, q), []string{"m1"})
	})
}

// x-delivery-limit on a classic queue (Warren-only: RabbitMQ 3.10 refuses the argument on classic
// queues with 406, and has it on quorum queues). Warren mirrors the quorum-queue semantics: every
// return to the queue (nack or reject with requeue, a closed channel) counts as a failed delivery; a redelivered message carries x-delivery-count, the number
// of deliveries before this one (a long; absent on the first delivery); the requeue that takes the
// count over the limit dead-letters the message with the reason delivery_limit instead, without
// x-delivery-count. (Checked against a RabbitMQ 3.10 quorum queue.)
func TestDeliveryLimit(t *testing.T) {
	warrenOnly(t, "RabbitMQ supports x-delivery-limit on quorum queues only")
	t.Parallel()
	for _, c := range []struct {
		name    string
		limit   int32
		returns []func(d amqp.Delivery) error // how each delivery is given back
	}{
		{"limit 2", 2, []func(amqp.Delivery) error{
			func(d amqp.Delivery) error { return d.Nack(false, true) },
			func(d amqp.Delivery) error { return d.Reject(true) },
			func(d amqp.Delivery) error { return d.Nack(false, true) },
		}},
		{"limit 0", 0, []func(amqp.Delivery) error{
			func(d amqp.Delivery) error { return d.Nack(false, true) },
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			dlx, _, sunk := deadLetterSink(t, conn)
			q := declareQueue(t, ch, amqp.Table{"x-delivery-limit": c.limit, "x-dead-letter-exchange": dlx})
			in := consume(t, channel(t, conn), q, "", false)
			since := time.Now()
			newPublisher(t, conn).toQueue(q, "poison")
			for i, giveBack := range c.returns {
				d := recv(t, in, "delivery")
				count, has := d.Headers["x-delivery-count"]
				switch {
				case i == 0 && (has || d.Redelivered):
					t.Errorf("first delivery: x-delivery-count %#v, redelivered %v; want no header, not redelivered", count, d.Redelivered)
				case i > 0 && (count != int64(i) || !d.Redelivered):
					t.Errorf("delivery %d: x-delivery-count = %#v (%T), redelivered %v; want the long %d, redelivered", i+1, count, count, d.Redelivered, i)
				}
				if err := giveBack(d); err != nil {
					t.Fatal(err)
				}
			}
			d := recv(t, sunk, "the message over its delivery limit")
			ev := dlEvent{q, "delivery_limit", ""}
			checkDeaths(t, d, since, ev, ev, death{queue: q, reason: "delivery_limit", exchange: "", count: 1, keys: []string{q}})
			if h := appHeaders(d); len(h) != 0 { // as from a quorum queue: x-delivery-count is for consumers
				t.Errorf("dead-lettered copy has the headers %v besides the dead-letter ones, want none", h)
			}
			wantNoDelivery(t, in, 100*time.Millisecond, "delivered again after dead-lettering")
			wantEmpty(t, ch, q)
		})
	}
	t.Run("channel close and basic.get count too", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		dlx, _, sunk := deadLetterSink(t, conn)
		q := declareQueue(t, ch, amqp.Table{"x-delivery-limit": int32(2), "x-dead-letter-exchange": dlx})
		since := time.Now()
		newPublisher(t, conn).toQueue(q, "poison")
		sub := channel(t, conn)
		recv(t, consume(t, sub, q, "", false), "first delivery")
		if err := sub.Close(); err != nil { // a return: count 1
			t.Fatal(err)
		}
		sub = channel(t, conn)
		d := get(t, sub, q, false)
		if d.Headers["x-delivery-count"] != int64(1) {
			t.Errorf("after a channel close: x-delivery-count = %#v, want the long 1", d.Headers["x-delivery-count"])
		}
		if err := d.Nack(false, true); err != nil { // count 2
			t.Fatal(err)
		}
		if d = get(t, sub, q, false); d.Headers["x-delivery-count"] != int64(2) {
			t.Errorf("after a nack: x-delivery-count = %#v, want the long 2", d.Headers["x-delivery-count"])
		}
		if err := sub.Close(); err != nil { // count 3, over the limit
			t.Fatal(err)
		}
		ev := dlEvent{q, "delivery_limit", ""}
		checkDeaths(t, recv(t, sunk, "the message over its delivery limit"), since, ev, ev,
			death{queue: q, reason: "delivery_limit", exchange: "", count: 1, keys: []string{q}})
		wantEmpty(t, ch, q)
	})
	t.Run("rejected without requeue", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		dlx, _, sunk := deadLetterSink(t, conn)
		q := declareQueue(t, ch, amqp.Table{"x-delivery-limit": int32(5), "x-dead-letter-exchange": dlx})
		since := time.Now()
		newPublisher(t, conn).toQueue(q, "bad")
		if err := get(t, ch, q, false).Reject(false); err != nil {
			t.Fatal(err)
		}
		ev := dlEvent{q, "rejected", ""}
		checkDeaths(t, recv(t, sunk, "the rejected message"), since, ev, ev, death{queue: q, reason: "rejected", exchange: "", count: 1, keys: []string{q}})
	})
}
