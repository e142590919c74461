package conformance

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Message deduplication (LavinMQ's arguments; docs/queues.md#message-deduplication). RabbitMQ
// 3.10 has none and ignores the arguments, so every test here is Warren-only.

const noDedupInRabbitMQ = "RabbitMQ has no message deduplication"

func withID(body string, id any) amqp.Publishing {
	return amqp.Publishing{Body: []byte(body), Headers: amqp.Table{"x-deduplication-header": id}}
}

// A queue with x-message-deduplication keeps the first message of each id: the copies are
// confirmed with basic.ack and, with mandatory, not returned, and never reach the queue.
// Messages without the header all get through.
func TestDedupQueueAcksAndDropsDuplicates(t *testing.T) {
	warrenOnly(t, noDedupInRabbitMQ)
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, amqp.Table{"x-message-deduplication": true})
	pub := newPublisher(t, conn)
	for _, m := range []amqp.Publishing{
		withID("a1", "a"), withID("a2", "a"), withID("b1", "b"), withID("a3", "a"),
		{Body: []byte("plain1")}, {Body: []byte("plain2")},
	} {
		pub.publish("", q, true, m) // fails the test on a nack
		if r, ok := pub.returned(); ok {
			t.Errorf("%s: returned (%d %s), want no return: a duplicate counts as taken", m.Body, r.ReplyCode, r.ReplyText)
		}
	}
	equalStrings(t, "queue contents", getBodies(t, ch, q), []string{"a1", "b1", "plain1", "plain2"})
	wantDedupStats(t, "queues", q, 2, 2)
}

// wantDedupStats checks the management API's deduplication field of a queue or exchange
// (kind "queues" or "exchanges"): duplicates dropped and ids held.
func wantDedupStats(t *testing.T, kind, name string, dropped, ids int) {
	t.Helper()
	var obj struct {
		Deduplication *struct {
			Dropped int `json:"duplicates_dropped"`
			IDs     int `json:"cached_ids"`
		} `json:"deduplication"`
	}
	mgmtAPI(t).json("GET", "/api/"+kind+"/%2F/"+esc(name), nil, 200, &obj)
	if d := obj.Deduplication; d == nil || d.Dropped != dropped || d.IDs != ids {
		t.Errorf("management API %s %s: deduplication %+v, want %d duplicates dropped and %d ids", kind, name, d, dropped, ids)
	}
}

// x-deduplication-header names the header that carries the id; the default header and the
// message-id property are then not ids.
func TestDedupCustomHeaderNotMessageID(t *testing.T) {
	warrenOnly(t, noDedupInRabbitMQ)
	t.Parallel()
	conn, ch := connChannel(t)
	custom := declareQueue(t, ch, amqp.Table{"x-message-deduplication": true, "x-deduplication-header": "order-id"})
	plain := declareQueue(t, ch, amqp.Table{"x-message-deduplication": true})
	pub := newPublisher(t, conn)
	for i, h := range []amqp.Table{
		{"order-id": "o1", "x-deduplication-header": "same"},
		{"order-id": "o2", "x-deduplication-header": "same"},
		{"order-id": "o1"},
	} {
		pub.publish("", custom, false, amqp.Publishing{Body: []byte(fmt.Sprint("c", i)), Headers: h})
	}
	equalStrings(t, "queue with x-deduplication-header order-id", getBodies(t, ch, custom), []string{"c0", "c1"})
	for _, body := range []string{"m1", "m2"} {
		pub.publish("", plain, false, amqp.Publishing{Body: []byte(body), MessageId: "same-message-id"})
	}
	equalStrings(t, "same message-id, no header", getBodies(t, ch, plain), []string{"m1", "m2"})
}

// An exchange with x-message-deduplication routes a duplicate nowhere (neither bound queue
// gets it) and acks it without returning it to a mandatory publisher.
func TestDedupExchange(t *testing.T) {
	warrenOnly(t, noDedupInRabbitMQ)
	t.Parallel()
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, amqp.ExchangeFanout, amqp.Table{"x-message-deduplication": true})
	q1, q2 := declareQueue(t, ch, nil), declareQueue(t, ch, nil)
	bind(t, ch, q1, "", x, nil)
	bind(t, ch, q2, "", x, nil)
	pub := newPublisher(t, conn)
	for _, m := range []amqp.Publishing{withID("a1", "a"), withID("a2", "a"), withID("b1", "b")} {
		pub.publish(x, "", true, m)
		if r, ok := pub.returned(); ok {
			t.Errorf("%s: returned (%d %s), want no return", m.Body, r.ReplyCode, r.ReplyText)
		}
	}
	equalStrings(t, "first bound queue", getBodies(t, ch, q1), []string{"a1", "b1"})
	equalStrings(t, "second bound queue", getBodies(t, ch, q2), []string{"a1", "b1"})
	wantDedupStats(t, "exchanges", x, 1, 2)
}

// x-cache-size bounds the cache: with room for one id, a second id evicts the first, which is
// then taken again.
func TestDedupCacheSizeEvicts(t *testing.T) {
	warrenOnly(t, noDedupInRabbitMQ)
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, amqp.Table{"x-message-deduplication": true, "x-cache-size": int32(1)})
	pub := newPublisher(t, conn)
	for _, m := range []amqp.Publishing{withID("a1", "a"), withID("a2", "a"), withID("b1", "b"), withID("a3", "a")} {
		pub.publish("", q, false, m)
	}
	equalStrings(t, "queue contents", getBodies(t, ch, q), []string{"a1", "b1", "a3"})
}

// An id is remembered for x-cache-ttl: a copy right after the first is dropped, and a copy is
// taken again once the window has passed, not before. The test republishes until a copy is
// taken rather than sleeping for a guessed time.
func TestDedupTTLWindow(t *testing.T) {
	warrenOnly(t, noDedupInRabbitMQ)
	t.Parallel()
	const ttl = 300 * time.Millisecond
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, amqp.Table{"x-message-deduplication": true, "x-cache-ttl": int32(ttl / time.Millisecond)})
	pub := newPublisher(t, conn)
	first := time.Now()
	pub.publish("", q, false, withID("first", "a"))
	pub.publish("", q, false, withID("copy", "a"))
	wantMessages(t, ch, q, 1)
	deadline := time.Now().Add(timeout)
	for n := 0; ; n++ {
		// Measured before the publish: a copy taken now was published at least this long
		// after the first.
		elapsed := time.Since(first)
		pub.publish("", q, false, withID(fmt.Sprint("retry", n), "a"))
		if got, _ := queueCounts(t, ch, q); got >= 2 {
			if elapsed < ttl {
				t.Errorf("a copy published %v after the first was taken; the window is %v", elapsed, ttl)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no copy taken within %v of the first; the window is %v", timeout, ttl)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Bad argument values are 406 PRECONDITION_FAILED with RabbitMQ's wording for queue arguments,
// on queues and exchanges, and a redeclare with other deduplication arguments is inequivalent.
func TestDedupArgumentErrors(t *testing.T) {
	warrenOnly(t, noDedupInRabbitMQ)
	t.Parallel()
	conn := dial(t)
	for _, tc := range []struct {
		args   amqp.Table
		reason string
	}{
		{amqp.Table{"x-message-deduplication": "yes"}, "invalid arg 'x-message-deduplication' for %s '%s' in vhost '/': {unacceptable_type,longstr}"},
		{amqp.Table{"x-message-deduplication": true, "x-cache-size": int32(-1)}, "invalid arg 'x-cache-size' for %s '%s' in vhost '/': {value_negative,-1}"},
		{amqp.Table{"x-message-deduplication": true, "x-cache-size": int32(0)}, "invalid arg 'x-cache-size' for %s '%s' in vhost '/': {value_zero,0}"},
		{amqp.Table{"x-message-deduplication": true, "x-cache-ttl": "1s"}, `invalid arg 'x-cache-ttl' for %s '%s' in vhost '/': "expected integer, got longstr"`},
		{amqp.Table{"x-message-deduplication": true, "x-deduplication-header": int32(5)}, "invalid arg 'x-deduplication-header' for %s '%s' in vhost '/': {unacceptable_type,signedint}"},
	} {
		for _, kind := range []string{"queue", "exchange"} {
			ch := channel(t, conn)
			closes := notifyClose(ch)
			name := uniqueName(t, "bad-"+kind)
			var err error
			if kind == "queue" {
				_, err = ch.QueueDeclare(name, false, true, false, false, tc.args)
			} else {
				err = ch.ExchangeDeclare(name, amqp.ExchangeDirect, false, true, false, false, tc.args)
			}
			want := "PRECONDITION_FAILED - " + fmt.Sprintf(tc.reason, kind, name)
			wantError(t, err, amqp.PreconditionFailed, want)
			wantClosed(t, closes, amqp.PreconditionFailed, want)
		}
	}
	ch := channel(t, conn)
	q := declareQueue(t, ch, amqp.Table{"x-message-deduplication": true, "x-cache-size": int32(10)})
	_, err := ch.QueueDeclare(q, false, false, false, false, amqp.Table{"x-message-deduplication": true, "x-cache-size": int32(20)})
	wantError(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'x-cache-size' for queue '"+q+"' in vhost '/': received '20' but current is '10'")
}

// The caches of a durable queue and a durable exchange survive kill -9 of the real binary:
// a republished copy of a confirmed message is still a duplicate after the restart, and a new
// id is taken.
func TestDedupSurvivesKill(t *testing.T) {
	warrenOnly(t, "restarts the warren binary")
	runner := newBrokerRunner(t, buildWarrenBinary(t), t.TempDir())
	p := runner.start()
	const q, x, sink = "dedup.durable", "dedup.durable-x", "dedup.sink"
	dedup := amqp.Table{"x-message-deduplication": true, "x-cache-ttl": int32(3_600_000)}
	declare := func(conn *amqp.Connection) {
		t.Helper()
		ch := channel(t, conn)
		if _, err := ch.QueueDeclare(q, true, false, false, false, dedup); err != nil {
			t.Fatal(err)
		}
		if err := ch.ExchangeDeclare(x, amqp.ExchangeFanout, true, false, false, false, dedup); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare(sink, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		bind(t, ch, sink, "", x, nil)
	}
	persistent := func(body, id string) amqp.Publishing {
		m := withID(body, id)
		m.DeliveryMode = amqp.Persistent
		return m
	}
	conn := dialConfig(t, p.url, amqp.Config{})
	declare(conn)
	pub := newPublisher(t, conn)
	pub.publish("", q, false, persistent("a1", "a"))
	pub.publish(x, "", false, persistent("x1", "x"))
	p.kill(t)

	p = runner.start()
	conn = dialConfig(t, p.url, amqp.Config{})
	declare(conn) // redeclares with the same arguments: equivalent
	pub = newPublisher(t, conn)
	pub.publish("", q, false, persistent("a2", "a"))
	pub.publish("", q, false, persistent("b1", "b"))
	pub.publish(x, "", false, persistent("x2", "x"))
	pub.publish(x, "", false, persistent("y1", "y"))
	ch := channel(t, conn)
	equalStrings(t, "durable queue after kill -9", getBodies(t, ch, q), []string{"a1", "b1"})
	equalStrings(t, "queue behind the durable exchange after kill -9", getBodies(t, ch, sink), []string{"x1", "y1"})
}
