package conformance

// Consumer extensions: consumer priorities (https://www.rabbitmq.com/docs/consumer-priority),
// single active consumer (https://www.rabbitmq.com/docs/consumers#single-active-consumer) and the
// x-cancel-on-ha-failover consume argument, which RabbitMQ accepts for classic queues.

import (
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// consumeWith starts a consumer with a tag and consume arguments on ch, without auto-ack.
func consumeWith(t *testing.T, ch *amqp.Channel, q, tag string, args amqp.Table) <-chan amqp.Delivery {
	t.Helper()
	d, err := ch.Consume(q, tag, false, false, false, false, args)
	if err != nil {
		t.Fatalf("basic.consume %s with %v: %v", q, args, err)
	}
	return d
}

// The consumer with the highest x-priority gets the messages while it has credit; the others get
// them only while it is blocked by its prefetch limit. Registration order does not matter.
func TestConsumerPriority(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	lowCh, highCh, lowestCh := channel(t, conn), channel(t, conn), channel(t, conn)
	for _, c := range []*amqp.Channel{lowCh, highCh, lowestCh} {
		if err := c.Qos(2, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	low := consumeWith(t, lowCh, q, "low", nil) // priority 0
	high := consumeWith(t, highCh, q, "high", amqp.Table{"x-priority": int32(10)})
	lowest := consumeWith(t, lowestCh, q, "lowest", amqp.Table{"x-priority": int64(-5)})
	wantConsumers(t, ch, q, 3)

	p := newPublisher(t, conn)
	p.toQueue(q, seq("m", 6)...)
	var highGot []amqp.Delivery
	for _, c := range []struct {
		name string
		in   <-chan amqp.Delivery
		want []string
	}{
		{"high", high, []string{"m0", "m1"}},
		{"low", low, []string{"m2", "m3"}},
		{"lowest", lowest, []string{"m4", "m5"}},
	} {
		ds := recvAll(t, c.in, len(c.want))
		var got []string
		for _, d := range ds {
			got = append(got, string(d.Body))
		}
		equalStrings(t, "delivered to "+c.name, got, c.want)
		if c.name == "high" {
			highGot = ds
		}
	}

	// An ack gives the high-priority consumer credit again: the next message is its.
	if err := highGot[0].Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := highCh.Qos(2, 0, false); err != nil { // a round trip after the ack on its channel
		t.Fatal(err)
	}
	p.toQueue(q, "m6")
	if d := recv(t, high, "m6"); string(d.Body) != "m6" {
		t.Errorf("high got %q, want m6", d.Body)
	}
	wantNoDelivery(t, low, 100*time.Millisecond, "low, while high had credit")
	wantNoDelivery(t, lowest, 50*time.Millisecond, "lowest, while high had credit")
}

// With x-single-active-consumer only one consumer receives; when it goes (cancelled, or its
// channel closed) the next in registration order takes over. All consumers count in
// queue.declare-ok.
func TestSingleActiveConsumer(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, amqp.Table{"x-single-active-consumer": true})
	var chans []*amqp.Channel
	var ins []<-chan amqp.Delivery
	for _, tag := range []string{"c0", "c1", "c2"} {
		c := channel(t, conn)
		chans = append(chans, c)
		in, err := c.Consume(q, tag, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	wantConsumers(t, ch, q, 3)
	p := newPublisher(t, conn)

	p.toQueue(q, "a", "b", "c")
	equalStrings(t, "c0, the first registered", recvBodies(t, ins[0], 3), []string{"a", "b", "c"})

	if err := chans[0].Cancel("c0", false); err != nil {
		t.Fatal(err)
	}
	wantConsumers(t, ch, q, 2)
	p.toQueue(q, "d", "e")
	equalStrings(t, "c1, after c0 was cancelled", recvBodies(t, ins[1], 2), []string{"d", "e"})

	if err := chans[1].Close(); err != nil {
		t.Fatal(err)
	}
	p.toQueue(q, "f")
	equalStrings(t, "c2, after c1's channel was closed", recvBodies(t, ins[2], 1), []string{"f"})
	wantNoDelivery(t, ins[2], 100*time.Millisecond, "c2")
	wantConsumers(t, ch, q, 1)
}

// With single active consumer, messages the active consumer leaves unacknowledged go to the next
// consumer when its channel closes.
func TestSingleActiveConsumerRequeue(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, amqp.Table{"x-single-active-consumer": true})
	first, second := channel(t, conn), channel(t, conn)
	in0 := consumeWith(t, first, q, "c0", nil)
	in1 := consumeWith(t, second, q, "c1", nil)
	newPublisher(t, conn).toQueue(q, "a", "b")
	equalStrings(t, "c0", recvBodies(t, in0, 2), []string{"a", "b"})
	wantNoDelivery(t, in1, 100*time.Millisecond, "c1 while c0 is active")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range recvAll(t, in1, 2) {
		got = append(got, string(d.Body))
		if !d.Redelivered {
			t.Errorf("%q: redelivered=false after c0's channel closed", d.Body)
		}
	}
	equalStrings(t, "c1 after c0's channel closed", got, []string{"a", "b"})
}

// x-cancel-on-ha-failover is accepted and has no effect on a single broker.
func TestCancelOnHAFailover(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	on := consumeWith(t, channel(t, conn), q, "on", amqp.Table{"x-cancel-on-ha-failover": true})
	off := consumeWith(t, channel(t, conn), q, "off", amqp.Table{"x-cancel-on-ha-failover": false})
	wantConsumers(t, ch, q, 2)
	newPublisher(t, conn).toQueue(q, "m0", "m1")
	// One each, round-robin.
	got := []string{string(recv(t, on, "on").Body), string(recv(t, off, "off").Body)}
	slices.Sort(got)
	equalStrings(t, "delivered", got, []string{"m0", "m1"})
}
