package conformance

import (
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// filled returns a connection, a channel and a queue holding m0 … m(n-1), published with confirms.
func filled(t *testing.T, n int) (*amqp.Connection, *amqp.Channel, string) {
	t.Helper()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	newPublisher(t, conn).toQueue(q, seq("m", n)...)
	return conn, ch, q
}

// takeAll gets n messages with basic.get without acknowledging them.
func takeAll(t *testing.T, ch *amqp.Channel, q string, n int) []amqp.Delivery {
	t.Helper()
	out := make([]amqp.Delivery, n)
	for i := range out {
		out[i] = get(t, ch, q, false)
	}
	return out
}

// drain gets every ready message (auto-ack) and returns "body", or "body*" for a redelivery.
func drain(t *testing.T, ch *amqp.Channel, q string) []string {
	t.Helper()
	var out []string
	for _, d := range getAll(t, ch, q) {
		s := string(d.Body)
		if d.Redelivered {
			s += "*"
		}
		out = append(out, s)
	}
	return out
}

func TestAck(t *testing.T) {
	t.Parallel()
	conn, ch, q := filled(t, 3)
	sub := channel(t, conn)
	ds := takeAll(t, sub, q, 3)
	if err := ds[1].Ack(false); err != nil {
		t.Fatal(err)
	}
	// Closing the channel requeues only what was not acknowledged.
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "requeued", drain(t, ch, q), []string{"m0*", "m2*"})
}

func TestAckMultiple(t *testing.T) {
	t.Parallel()
	conn, ch, q := filled(t, 5)
	sub := channel(t, conn)
	ds := takeAll(t, sub, q, 5)
	if err := ds[2].Ack(true); err != nil { // m0, m1, m2
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "requeued", drain(t, ch, q), []string{"m3*", "m4*"})
}

// TestAckZeroMultiple: multiple=true with delivery tag 0 acknowledges everything outstanding.
func TestAckZeroMultiple(t *testing.T) {
	t.Parallel()
	conn, ch, q := filled(t, 4)
	sub := channel(t, conn)
	takeAll(t, sub, q, 4)
	if err := sub.Ack(0, true); err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	wantMessages(t, ch, q, 0)

	// The same for nack: all outstanding go back, in order.
	newPublisher(t, conn).toQueue(q, seq("n", 3)...)
	sub = channel(t, conn)
	takeAll(t, sub, q, 3)
	if err := sub.Nack(0, true, true); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "requeued", drain(t, sub, q), []string{"n0*", "n1*", "n2*"})
}

// TestNackRequeueOrder: a requeued message goes back to its original place in the queue, ahead
// of messages published after it, and comes back marked redelivered.
func TestNackRequeueOrder(t *testing.T) {
	t.Parallel()
	_, ch, q := filled(t, 5)
	ds := takeAll(t, ch, q, 3) // m0 m1 m2 out; m3 m4 ready
	if err := ds[1].Nack(false, true); err != nil {
		t.Fatal(err)
	}
	d := get(t, ch, q, false)
	if string(d.Body) != "m1" || !d.Redelivered {
		t.Errorf("after nack of m1 got %q redelivered=%v, want m1 redelivered", d.Body, d.Redelivered)
	}
	if d.DeliveryTag != 4 {
		t.Errorf("redelivery has tag %d, want a new tag 4", d.DeliveryTag)
	}
	// Requeue m2 then m0: they return in queue order, not nack order.
	if err := ds[2].Nack(false, true); err != nil {
		t.Fatal(err)
	}
	if err := ds[0].Reject(true); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "queue", drain(t, ch, q), []string{"m0*", "m2*", "m3", "m4"})
}

func TestNackMultiple(t *testing.T) {
	t.Parallel()
	_, ch, q := filled(t, 5)
	ds := takeAll(t, ch, q, 4)
	if err := ds[2].Nack(true, true); err != nil { // m0 m1 m2 back; m3 still out
		t.Fatal(err)
	}
	equalStrings(t, "queue", drain(t, ch, q), []string{"m0*", "m1*", "m2*", "m4"})
	if err := ds[3].Ack(false); err != nil {
		t.Fatal(err)
	}
	wantMessages(t, ch, q, 0)

	// Nack multiple without requeue drops them all.
	p := newPublisher(t, dial(t))
	p.toQueue(q, seq("n", 3)...)
	ds = takeAll(t, ch, q, 3)
	if err := ds[2].Nack(true, false); err != nil {
		t.Fatal(err)
	}
	wantEmpty(t, ch, q)
}

func TestRejectDiscard(t *testing.T) {
	t.Parallel()
	conn, ch, q := filled(t, 3)
	sub := channel(t, conn)
	ds := takeAll(t, sub, q, 3)
	if err := ds[0].Reject(false); err != nil {
		t.Fatal(err)
	}
	if err := ds[1].Nack(false, false); err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "queue", drain(t, ch, q), []string{"m2*"})
}

// TestRequeueToConsumer: a nacked message goes back to a consumer, redelivered.
func TestRequeueToConsumer(t *testing.T) {
	t.Parallel()
	conn, _, q := filled(t, 2)
	sub := channel(t, conn)
	if err := sub.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	d := consume(t, sub, q, "", false)
	first := recv(t, d, "first delivery")
	if string(first.Body) != "m0" || first.Redelivered {
		t.Fatalf("got %q redelivered=%v, want m0", first.Body, first.Redelivered)
	}
	if err := first.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	again := recv(t, d, "redelivery")
	if string(again.Body) != "m0" || !again.Redelivered || again.DeliveryTag <= first.DeliveryTag {
		t.Errorf("got %q redelivered=%v tag %d, want m0 redelivered with a tag above %d", again.Body, again.Redelivered, again.DeliveryTag, first.DeliveryTag)
	}
}

func TestUnknownDeliveryTag(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		do   func(t *testing.T, ch *amqp.Channel, q string) uint64 // returns the tag the error names
	}{
		{"ack of a tag never sent", func(t *testing.T, ch *amqp.Channel, q string) uint64 {
			must(t, ch.Ack(42, false))
			return 42
		}},
		{"double ack", func(t *testing.T, ch *amqp.Channel, q string) uint64 {
			d := get(t, ch, q, false)
			must(t, d.Ack(false))
			must(t, d.Ack(false))
			return d.DeliveryTag
		}},
		{"ack after multiple ack", func(t *testing.T, ch *amqp.Channel, q string) uint64 {
			ds := takeAll(t, ch, q, 2)
			must(t, ds[1].Ack(true))
			must(t, ds[0].Ack(false))
			return ds[0].DeliveryTag
		}},
		{"nack of a tag never sent", func(t *testing.T, ch *amqp.Channel, q string) uint64 {
			must(t, ch.Nack(7, false, true))
			return 7
		}},
		{"reject of a tag never sent", func(t *testing.T, ch *amqp.Channel, q string) uint64 {
			must(t, ch.Reject(9, false))
			return 9
		}},
		{"ack of an auto-ack delivery", func(t *testing.T, ch *amqp.Channel, q string) uint64 {
			d := get(t, ch, q, true)
			must(t, ch.Ack(d.DeliveryTag, false))
			return d.DeliveryTag
		}},
		{"ack on another channel", func(t *testing.T, ch *amqp.Channel, q string) uint64 {
			// Tags are channel-local: tag 1 is outstanding on the other channel, not on ch.
			other := channel(t, dial(t))
			d := get(t, other, q, false)
			must(t, ch.Ack(d.DeliveryTag, false))
			return d.DeliveryTag
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, ch, q := filled(t, 2)
			closes := notifyClose(ch)
			tag := c.do(t, ch, q)
			wantClosed(t, closes, amqp.PreconditionFailed, fmt.Sprintf("PRECONDITION_FAILED - unknown delivery tag %d", tag))
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRecover: basic.recover with requeue=true puts every unacknowledged message back; they are
// delivered again, marked redelivered, in their original order.
func TestRecover(t *testing.T) {
	t.Parallel()
	conn, ch, q := filled(t, 3)
	sub := channel(t, conn)
	d := consume(t, sub, q, "", false)
	firstRound := recvBodies(t, d, 3)
	equalStrings(t, "first round", firstRound, seq("m", 3))
	//lint:ignore SA1019 deprecated for applications, but brokers must still answer basic.recover
	if err := sub.Recover(true); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		m := recv(t, d, "redelivery after recover")
		if string(m.Body) != fmt.Sprintf("m%d", i) || !m.Redelivered {
			t.Errorf("redelivery %d: %q redelivered=%v, want m%d redelivered", i, m.Body, m.Redelivered, i)
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	wantMessages(t, ch, q, 0)
}

// TestRequeueOnClose: unacknowledged messages go back to the queue, in order and marked
// redelivered, when their channel or connection closes, whether the client closes it or the
// broker does after an error.
func TestRequeueOnClose(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		close func(t *testing.T, conn *amqp.Connection, ch *amqp.Channel)
	}{
		{"channel close", func(t *testing.T, _ *amqp.Connection, ch *amqp.Channel) { must(t, ch.Close()) }},
		{"connection close", func(t *testing.T, conn *amqp.Connection, _ *amqp.Channel) { must(t, conn.Close()) }},
		{"channel error", func(t *testing.T, _ *amqp.Connection, ch *amqp.Channel) {
			closes := notifyClose(ch)
			_, err := ch.QueueDeclarePassive(uniqueName(t, "missing"), false, false, false, false, nil)
			wantError(t, err, amqp.NotFound, "NOT_FOUND")
			wantClosed(t, closes, amqp.NotFound, "NOT_FOUND")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, ch, q := filled(t, 6)
			conn := dial(t)
			sub := channel(t, conn)
			d := consume(t, sub, q, "", false)
			ds := make([]amqp.Delivery, 6)
			for i := range ds {
				ds[i] = recv(t, d, "delivery")
			}
			must(t, ds[1].Ack(false))
			wantConsumers(t, ch, q, 1)
			c.close(t, conn, sub)
			// m1 was acked; the others come back.
			equalStrings(t, "queue after close", drain(t, ch, q), []string{"m0*", "m2*", "m3*", "m4*", "m5*"})
		})
	}
}
