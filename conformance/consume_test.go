package conformance

import (
	"slices"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqpwire"
)

// TestServerGeneratedConsumerTag uses raw frames: amqp091-go always chooses a tag itself.
func TestServerGeneratedConsumerTag(t *testing.T) {
	t.Parallel()
	rc := rawOpen(t)
	rc.openChannel(1)
	const exclusive, autoDelete = 4, 8
	rc.writeMethod(1, amqpwire.ClassQueue, amqpwire.MethodQueueDeclare, u16(0), shortstr(""), []byte{exclusive | autoDelete}, table())
	ok := rc.expect(amqpwire.ClassQueue, amqpwire.MethodQueueDeclareOk)
	queue := string(ok.args[1 : 1+ok.args[0]])
	if !strings.HasPrefix(queue, "amq.gen-") {
		t.Errorf("server-named queue %q, want the amq.gen- prefix", queue)
	}
	var tags []string
	for i := 0; i < 2; i++ {
		rc.writeMethod(1, amqpwire.ClassBasic, amqpwire.MethodBasicConsume, u16(0), shortstr(queue), shortstr(""), []byte{0}, table())
		cok := rc.expect(amqpwire.ClassBasic, amqpwire.MethodBasicConsumeOk)
		tag := string(cok.args[1 : 1+cok.args[0]])
		if !strings.HasPrefix(tag, "amq.ctag-") || len(tag) <= len("amq.ctag-") {
			t.Errorf("server-generated consumer tag %q, want the amq.ctag- prefix", tag)
		}
		tags = append(tags, tag)
	}
	if tags[0] == tags[1] {
		t.Errorf("two server-generated consumer tags are both %q", tags[0])
	}
	rc.writeMethod(1, amqpwire.ClassBasic, amqpwire.MethodBasicCancel, shortstr(tags[0]), []byte{0})
	if cok := rc.expect(amqpwire.ClassBasic, amqpwire.MethodBasicCancelOk); string(cok.args[1:1+cok.args[0]]) != tags[0] {
		t.Errorf("cancel-ok for %q, want %q", cok.args[1:], tags[0])
	}
}

func TestConsume(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	p := newPublisher(t, conn)
	p.toQueue(q, "before") // waiting in the queue when the consumer arrives
	deliveries := consume(t, ch, q, "client-tag", false)
	p.toQueue(q, "after")
	for i, want := range []string{"before", "after"} {
		d := recv(t, deliveries, want)
		if string(d.Body) != want || d.ConsumerTag != "client-tag" || d.DeliveryTag != uint64(i+1) || d.Redelivered || d.Exchange != "" || d.RoutingKey != q {
			t.Errorf("delivery %d: %q tag %q/%d redelivered=%v via %q/%q; want %q on client-tag/%d via \"\"/%s",
				i, d.Body, d.ConsumerTag, d.DeliveryTag, d.Redelivered, d.Exchange, d.RoutingKey, want, i+1, q)
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	// The same tag on another channel is another consumer.
	other := channel(t, conn)
	consume(t, other, q, "client-tag", false)
	wantConsumers(t, ch, q, 2)
}

func TestDuplicateConsumerTag(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q1, q2 := declareQueue(t, ch, nil), declareQueue(t, ch, nil)
	closes := notifyConnClose(conn)
	consume(t, ch, q1, "taken", false)
	_, err := ch.Consume(q2, "taken", false, false, false, false, nil) // another queue, same channel
	wantError(t, err, amqp.NotAllowed, "NOT_ALLOWED - attempt to reuse consumer tag 'taken'")
	wantClosed(t, closes, amqp.NotAllowed, "NOT_ALLOWED - attempt to reuse consumer tag 'taken'")
}

func TestExclusiveConsumer(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	inUse := "ACCESS_REFUSED - queue '" + q + "' in vhost '/' in exclusive use"
	if _, err := ch.Consume(q, "exclusive", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, exclusive := range []bool{false, true} {
		other := channel(t, conn)
		closes := notifyClose(other)
		_, err := other.Consume(q, "second", false, exclusive, false, false, nil)
		wantError(t, err, amqp.AccessRefused, inUse)
		wantClosed(t, closes, amqp.AccessRefused, inUse)
	}
	// An exclusive consumer cannot join a queue that already has consumers.
	q2 := declareQueue(t, ch, nil)
	consume(t, ch, q2, "plain", false)
	other := channel(t, conn)
	_, err := other.Consume(q2, "exclusive", false, true, false, false, nil)
	wantError(t, err, amqp.AccessRefused, "ACCESS_REFUSED - queue '"+q2+"' in vhost '/' in exclusive use")

	// Once the exclusive consumer is gone, anyone may consume.
	if err := ch.Cancel("exclusive", false); err != nil {
		t.Fatal(err)
	}
	consume(t, channel(t, conn), q, "next", false)
}

func TestConsumeMissingQueue(t *testing.T) {
	t.Parallel()
	_, ch := connChannel(t)
	missing := uniqueName(t, "missing")
	closes := notifyClose(ch)
	_, err := ch.Consume(missing, "", false, false, false, false, nil)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue '"+missing+"' in vhost '/'")
	wantClosed(t, closes, amqp.NotFound, "NOT_FOUND")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	p := newPublisher(t, conn)
	deliveries := consume(t, ch, q, "c", false)
	p.toQueue(q, "one")
	d := recv(t, deliveries, "delivery before cancel")
	if err := ch.Cancel("c", false); err != nil {
		t.Fatal(err)
	}
	if _, open := <-deliveries; open {
		t.Error("deliveries continued after cancel-ok")
	}
	p.toQueue(q, "two", "three")
	wantMessages(t, ch, q, 2)
	wantConsumers(t, ch, q, 0)
	// A message delivered before the cancel can still be acknowledged.
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "left in the queue", getBodies(t, ch, q), []string{"two", "three"})

	// Cancelling an unknown tag is not an error.
	if err := ch.Cancel("never-was", false); err != nil {
		t.Errorf("cancel of an unknown tag: %v", err)
	}
}

// TestServerCancel: deleting a queue sends basic.cancel to its consumers (consumer_cancel_notify);
// their channels stay open.
func TestServerCancel(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	cancels := ch.NotifyCancel(make(chan string, 2))
	closes := notifyClose(ch)
	d1 := consume(t, ch, q, "one", false)
	d2 := consume(t, ch, q, "two", true)
	if _, err := channel(t, conn).QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{recv(t, cancels, "basic.cancel"): true, recv(t, cancels, "basic.cancel"): true}
	if !got["one"] || !got["two"] {
		t.Errorf("cancelled %v, want one and two", got)
	}
	for _, d := range []<-chan amqp.Delivery{d1, d2} {
		if _, open := <-d; open {
			t.Error("deliveries continued after basic.cancel")
		}
	}
	if err := ch.ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil); err != nil {
		t.Errorf("channel after basic.cancel: %v", err)
	}
	select {
	case err := <-closes:
		t.Errorf("channel closed: %v", err)
	default:
	}
}

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	a := consume(t, channel(t, conn), q, "a", true)
	b := consume(t, channel(t, conn), q, "b", true)
	p := newPublisher(t, conn)
	p.toQueue(q, seq("m", 6)...)
	gotA, gotB := recvBodies(t, a, 3), recvBodies(t, b, 3)
	even, odd := []string{"m0", "m2", "m4"}, []string{"m1", "m3", "m5"}
	if !(slices.Equal(gotA, even) && slices.Equal(gotB, odd)) && !(slices.Equal(gotA, odd) && slices.Equal(gotB, even)) {
		t.Errorf("consumers got %q and %q, want %q and %q, alternating", gotA, gotB, even, odd)
	}
}

func TestNoAckConsume(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	p := newPublisher(t, conn)
	p.toQueue(q, seq("m", 5)...)
	sub := channel(t, conn)
	if err := sub.Qos(1, 0, false); err != nil { // prefetch does not limit no-ack consumers
		t.Fatal(err)
	}
	deliveries := consume(t, sub, q, "", true)
	equalStrings(t, "deliveries", recvBodies(t, deliveries, 5), seq("m", 5))
	// Nothing is outstanding: closing the channel requeues nothing.
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	wantMessages(t, ch, q, 0)
}

// TestQosPerConsumer: with global=false, prefetch-count limits each consumer's unacknowledged
// deliveries; an ack lets exactly one more through.
func TestQosPerConsumer(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	p := newPublisher(t, conn)
	p.toQueue(q, seq("m", 10)...)
	sub := channel(t, conn)
	if err := sub.Qos(3, 0, false); err != nil {
		t.Fatal(err)
	}
	d := consume(t, sub, q, "", false)
	first := make([]amqp.Delivery, 3)
	for i := range first {
		first[i] = recv(t, d, "delivery within prefetch")
	}
	wantMessages(t, ch, q, 7) // exactly three are out
	if err := first[0].Ack(false); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, d, "delivery after an ack"); string(m.Body) != "m3" {
		t.Errorf("after one ack got %q, want m3", m.Body)
	}
	wantMessages(t, ch, q, 6)

	// A second consumer on the same channel has a prefetch of its own.
	q2 := declareQueue(t, ch, nil)
	p.toQueue(q2, seq("n", 10)...)
	d2 := consume(t, sub, q2, "", false)
	recvBodies(t, d2, 3)
	wantMessages(t, ch, q2, 7)
	wantMessages(t, ch, q, 6)

	// Prefetch 0 means no limit.
	q3 := declareQueue(t, ch, nil)
	p.toQueue(q3, seq("u", 20)...)
	unlimited := channel(t, conn)
	if err := unlimited.Qos(0, 0, false); err != nil {
		t.Fatal(err)
	}
	recvBodies(t, consume(t, unlimited, q3, "", false), 20)
	wantMessages(t, ch, q3, 0)
}

// TestQosGlobal: with global=true RabbitMQ shares prefetch-count across all consumers of the
// channel; a per-consumer limit can apply at the same time.
func TestQosGlobal(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	p := newPublisher(t, conn)
	p.toQueue(q, seq("m", 10)...)
	sub := channel(t, conn)
	if err := sub.Qos(3, 0, true); err != nil {
		t.Fatal(err)
	}
	a := consume(t, sub, q, "a", false)
	b := consume(t, sub, q, "b", false)
	var got []amqp.Delivery
	for len(got) < 3 {
		select {
		case d := <-a:
			got = append(got, d)
		case d := <-b:
			got = append(got, d)
		case <-timeoutAfter():
			t.Fatalf("%d deliveries, want 3", len(got))
		}
	}
	wantMessages(t, ch, q, 7) // three across both consumers, not three each
	if err := sub.Ack(got[2].DeliveryTag, true); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for len(got) < 3 {
		select {
		case d := <-a:
			got = append(got, d)
		case d := <-b:
			got = append(got, d)
		case <-timeoutAfter():
			t.Fatalf("%d deliveries after acking all, want 3", len(got))
		}
	}
	wantMessages(t, ch, q, 4)

	// Both limits: each consumer at most 1, the channel at most 3. Set in the order RabbitMQ's
	// consumer-prefetch page shows: in 3.10, global first and then per-consumer lets a fourth
	// consumer past the channel's limit.
	q2 := declareQueue(t, ch, nil)
	p.toQueue(q2, seq("n", 10)...)
	both := channel(t, conn)
	if err := both.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := both.Qos(3, 0, true); err != nil {
		t.Fatal(err)
	}
	c1 := consume(t, both, q2, "c1", false)
	c2 := consume(t, both, q2, "c2", false)
	recv(t, c1, "c1")
	recv(t, c2, "c2")
	wantMessages(t, ch, q2, 8)
	c3 := consume(t, both, q2, "c3", false)
	recv(t, c3, "c3")
	wantMessages(t, ch, q2, 7)
	consume(t, both, q2, "c4", false)
	wantMessages(t, ch, q2, 7) // the channel's limit of 3 holds the fourth consumer back
}
