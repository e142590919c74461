package conformance

// Dead-lettering (https://www.rabbitmq.com/docs/dlx, COMPATIBILITY.md §4): reasons, routing, the
// x-death header exactly as RabbitMQ writes it, and cycle detection. The expectations were
// checked against RabbitMQ 3.10, which writes x-death and x-first-death-* but not yet the
// x-last-death-* headers of newer releases: those are checked only when a broker writes them.

import (
	"reflect"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// dlEvent is what the top-level x-first-death-* and x-last-death-* headers name.
type dlEvent struct{ queue, reason, exchange string }

// death is one entry of the x-death array.
type death struct {
	queue, reason, exchange string
	count                   int64
	keys                    []string // routing-keys
	expiration              string   // original-expiration; "" when the entry has none
}

// deadLetterSink declares a fanout exchange to dead-letter into and a queue bound to it, and
// consumes the queue with auto-ack on a channel of its own.
func deadLetterSink(t *testing.T, conn *amqp.Connection) (dlx, sink string, deliveries <-chan amqp.Delivery) {
	t.Helper()
	ch := channel(t, conn)
	dlx = declareExchange(t, ch, amqp.ExchangeFanout, nil)
	sink = declareLabeledQueue(t, ch, "sink", nil)
	bind(t, ch, sink, "", dlx, nil)
	return dlx, sink, consume(t, ch, sink, "", true)
}

// wantNoDelivery asserts that nothing arrives on c for d: a bounded wait for something that must
// not happen.
func wantNoDelivery(t *testing.T, c <-chan amqp.Delivery, d time.Duration, what string) {
	t.Helper()
	select {
	case m, ok := <-c:
		if ok {
			t.Errorf("%s: got %q (headers %v), want nothing within %v", what, m.Body, m.Headers, d)
		}
	case <-time.After(d):
	}
}

// dlHeaderNames are the headers dead-lettering adds.
var dlHeaderNames = []string{
	"x-death", "x-first-death-queue", "x-first-death-reason", "x-first-death-exchange",
	"x-last-death-queue", "x-last-death-reason", "x-last-death-exchange",
}

// appHeaders returns the headers of d that dead-lettering did not add.
func appHeaders(d amqp.Delivery) amqp.Table {
	out := amqp.Table{}
	for k, v := range d.Headers {
		if !slices.Contains(dlHeaderNames, k) {
			out[k] = v
		}
	}
	return out
}

// checkDeaths asserts the dead-letter headers of d: x-death holds exactly want, newest first,
// each entry with exactly RabbitMQ's fields and types and a time between since and now;
// x-first-death-* name first; x-last-death-*, when the broker writes them, name last. It returns
// the x-death entries.
func checkDeaths(t *testing.T, d amqp.Delivery, since time.Time, first, last dlEvent, want ...death) []amqp.Table {
	t.Helper()
	raw, ok := d.Headers["x-death"].([]any)
	if !ok {
		t.Errorf("%q: x-death = %#v (%T), want an array of tables", d.Body, d.Headers["x-death"], d.Headers["x-death"])
		return nil
	}
	if len(raw) != len(want) {
		t.Errorf("%q: x-death has %d entries, want %d: %v", d.Body, len(raw), len(want), raw)
	}
	var entries []amqp.Table
	for i, r := range raw {
		e, ok := r.(amqp.Table)
		if !ok {
			t.Errorf("%q: x-death[%d] = %#v (%T), want a table", d.Body, i, r, r)
			continue
		}
		entries = append(entries, e)
		if i < len(want) {
			checkDeath(t, string(d.Body), i, e, since, want[i])
		}
	}
	for _, h := range []struct{ name, want string }{
		{"x-first-death-queue", first.queue}, {"x-first-death-reason", first.reason}, {"x-first-death-exchange", first.exchange},
	} {
		if got, ok := d.Headers[h.name].(string); !ok || got != h.want {
			t.Errorf("%q: %s = %#v, want %q", d.Body, h.name, d.Headers[h.name], h.want)
		}
	}
	lastHeaders := []struct{ name, want string }{
		{"x-last-death-queue", last.queue}, {"x-last-death-reason", last.reason}, {"x-last-death-exchange", last.exchange},
	}
	present := 0
	for _, h := range lastHeaders {
		if _, ok := d.Headers[h.name]; ok {
			present++
		}
	}
	if present > 0 { // RabbitMQ 3.10 writes none of them; newer releases write all three
		for _, h := range lastHeaders {
			if got, ok := d.Headers[h.name].(string); !ok || got != h.want {
				t.Errorf("%q: %s = %#v, want %q (or none of the x-last-death-* headers, as RabbitMQ 3.10)", d.Body, h.name, d.Headers[h.name], h.want)
			}
		}
	}
	return entries
}

func checkDeath(t *testing.T, body string, i int, e amqp.Table, since time.Time, want death) {
	t.Helper()
	fields := []string{"count", "exchange", "queue", "reason", "routing-keys", "time"}
	if want.expiration != "" {
		fields = append(fields, "original-expiration")
	}
	var got []string
	for k := range e {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(fields)
	if !slices.Equal(got, fields) {
		t.Errorf("%q: x-death[%d] has the fields %q, want %q", body, i, got, fields)
	}
	str := func(name, want string) {
		t.Helper()
		if v, ok := e[name].(string); !ok || v != want {
			t.Errorf("%q: x-death[%d] %s = %#v (%T), want the longstr %q", body, i, name, e[name], e[name], want)
		}
	}
	str("queue", want.queue)
	str("reason", want.reason)
	str("exchange", want.exchange)
	if want.expiration != "" {
		str("original-expiration", want.expiration)
	}
	if n, ok := e["count"].(int64); !ok || n != want.count {
		t.Errorf("%q: x-death[%d] count = %#v (%T), want the long %d", body, i, e["count"], e["count"], want.count)
	}
	var keys []string
	arr, ok := e["routing-keys"].([]any)
	for _, k := range arr {
		s, isStr := k.(string)
		ok = ok && isStr
		keys = append(keys, s)
	}
	if !ok || !slices.Equal(keys, want.keys) {
		t.Errorf("%q: x-death[%d] routing-keys = %#v, want the array of longstr %q", body, i, e["routing-keys"], want.keys)
	}
	tm, ok := e["time"].(time.Time)
	if !ok || tm.Before(since.Truncate(time.Second)) || tm.After(time.Now()) {
		t.Errorf("%q: x-death[%d] time = %#v, want a timestamp between %v and now", body, i, e["time"], since.Truncate(time.Second))
	}
}

func TestDeadLetterRejected(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		settle func(d amqp.Delivery) error
	}{
		{"basic.reject", func(d amqp.Delivery) error { return d.Reject(false) }},
		{"basic.nack", func(d amqp.Delivery) error { return d.Nack(false, false) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			dlx, _, sunk := deadLetterSink(t, conn)
			src := declareExchange(t, ch, amqp.ExchangeDirect, nil)
			q := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": dlx})
			bind(t, ch, q, "k", src, nil)
			sent := amqp.Publishing{
				ContentType: "text/plain", DeliveryMode: amqp.Persistent, Priority: 3, MessageId: "id-1",
				CorrelationId: "corr", Timestamp: time.Unix(1_700_000_000, 0), AppId: "conformance",
				Headers: amqp.Table{"app": "v", "n": int32(7)}, Body: []byte("poison"),
			}
			since := time.Now()
			newPublisher(t, conn).publish(src, "k", false, sent)
			if err := c.settle(get(t, ch, q, false)); err != nil {
				t.Fatal(err)
			}
			d := recv(t, sunk, "dead-lettered message")
			if d.Exchange != dlx || d.RoutingKey != "k" || d.Redelivered {
				t.Errorf("dead-lettered via exchange %q with key %q, redelivered=%v; want %q, %q, false", d.Exchange, d.RoutingKey, d.Redelivered, dlx, "k")
			}
			ev := dlEvent{q, "rejected", src}
			checkDeaths(t, d, since, ev, ev, death{queue: q, reason: "rejected", exchange: src, count: 1, keys: []string{"k"}})
			d.Headers = appHeaders(d)
			checkProperties(t, "dead-lettered", sent, d)
			wantEmpty(t, ch, q)
		})
	}

	t.Run("basic.nack multiple", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		dlx, _, sunk := deadLetterSink(t, conn)
		q := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": dlx})
		newPublisher(t, conn).toQueue(q, "m0", "m1", "m2")
		ds := takeAll(t, ch, q, 3)
		if err := ds[1].Nack(true, false); err != nil {
			t.Fatal(err)
		}
		equalStrings(t, "dead-lettered", recvBodies(t, sunk, 2), []string{"m0", "m1"})
		if err := ds[2].Ack(false); err != nil {
			t.Fatal(err)
		}
		wantNoDelivery(t, sunk, 200*time.Millisecond, "after acking m2")
	})
}

// A queue's dead-letter routing key replaces all the message's keys and removes CC; x-death still
// records the keys the message had.
func TestDeadLetterRoutingKey(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	src := declareExchange(t, ch, amqp.ExchangeDirect, nil)
	dlx := declareExchange(t, ch, amqp.ExchangeDirect, nil)
	q := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
	bind(t, ch, q, "a", src, nil)
	sinks := map[string]<-chan amqp.Delivery{}
	for _, key := range []string{"dead", "a", "b"} {
		s := declareLabeledQueue(t, ch, "sink-"+key, nil)
		bind(t, ch, s, key, dlx, nil)
		sinks[key] = consume(t, channel(t, conn), s, "", true)
	}
	since := time.Now()
	newPublisher(t, conn).publish(src, "a", false, amqp.Publishing{Headers: amqp.Table{"CC": []any{"b"}, "h": "v"}, Body: []byte("m")})
	if err := get(t, ch, q, false).Reject(false); err != nil {
		t.Fatal(err)
	}
	d := recv(t, sinks["dead"], "dead-lettered with the queue's routing key")
	if d.RoutingKey != "dead" {
		t.Errorf("routing key %q, want dead", d.RoutingKey)
	}
	ev := dlEvent{q, "rejected", src}
	checkDeaths(t, d, since, ev, ev, death{queue: q, reason: "rejected", exchange: src, count: 1, keys: []string{"a", "b"}})
	if h := appHeaders(d); !reflect.DeepEqual(h, amqp.Table{"h": "v"}) {
		t.Errorf("headers besides the dead-letter ones = %v, want only h (CC removed)", h)
	}
	for _, key := range []string{"a", "b"} {
		wantNoDelivery(t, sinks[key], 200*time.Millisecond, "sink bound with the original key "+key)
	}
}

// Without a dead-letter routing key a message is dead-lettered with all its keys: the publish key,
// CC and BCC (the DLX doc: "This includes routing keys added by the CC and BCC headers"). The CC
// header stays; BCC appears neither in the headers nor in x-death.
func TestDeadLetterCCAndBCC(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	src := declareExchange(t, ch, amqp.ExchangeDirect, nil)
	dlx := declareExchange(t, ch, amqp.ExchangeDirect, nil)
	q := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": dlx})
	bind(t, ch, q, "a", src, nil)
	sinks := map[string]<-chan amqp.Delivery{}
	for _, key := range []string{"a", "b", "c"} {
		s := declareLabeledQueue(t, ch, "sink-"+key, nil)
		bind(t, ch, s, key, dlx, nil)
		sinks[key] = consume(t, channel(t, conn), s, "", true)
	}
	since := time.Now()
	newPublisher(t, conn).publish(src, "a", false, amqp.Publishing{
		Headers: amqp.Table{"CC": []any{"b"}, "BCC": []any{"c"}}, Body: []byte("m"),
	})
	if err := get(t, ch, q, false).Reject(false); err != nil {
		t.Fatal(err)
	}
	ev := dlEvent{q, "rejected", src}
	for _, key := range []string{"a", "b", "c"} {
		d := recv(t, sinks[key], "the copy routed by "+key)
		if d.RoutingKey != "a" {
			t.Errorf("sink %s: routing key %q, want the publish key a", key, d.RoutingKey)
		}
		checkDeaths(t, d, since, ev, ev, death{queue: q, reason: "rejected", exchange: src, count: 1, keys: []string{"a", "b"}})
		if h := appHeaders(d); !reflect.DeepEqual(h, amqp.Table{"CC": []any{"b"}}) {
			t.Errorf("sink %s: headers besides the dead-letter ones = %v, want only CC [b]", key, h)
		}
	}
	for _, key := range []string{"a", "b", "c"} {
		wantNoDelivery(t, sinks[key], 100*time.Millisecond, "a second copy in sink "+key)
	}
}

// A message rejected back and forth between two queues: x-death keeps one entry per {queue,
// reason}, newest first, whose count grows while its time, exchange and routing-keys stay those
// of the first event; x-first-death-* never change.
func TestDeadLetterCountsAcrossQueues(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	src := declareExchange(t, ch, amqp.ExchangeDirect, nil)
	dlx1 := declareExchange(t, ch, amqp.ExchangeDirect, nil)
	dlx2 := declareExchange(t, ch, amqp.ExchangeDirect, nil)
	q1 := declareLabeledQueue(t, ch, "q1", amqp.Table{"x-dead-letter-exchange": dlx1, "x-dead-letter-routing-key": "to-q2"})
	q2 := declareLabeledQueue(t, ch, "q2", amqp.Table{"x-dead-letter-exchange": dlx2, "x-dead-letter-routing-key": "to-q1"})
	bind(t, ch, q1, "k", src, nil)
	bind(t, ch, q2, "to-q2", dlx1, nil)
	bind(t, ch, q1, "to-q1", dlx2, nil)
	in1 := consume(t, channel(t, conn), q1, "", false)
	in2 := consume(t, channel(t, conn), q2, "", false)

	since := time.Now()
	newPublisher(t, conn).publish(src, "k", false, amqp.Publishing{Body: []byte("ping-pong")})
	reject := func(d amqp.Delivery) {
		t.Helper()
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	d := recv(t, in1, "published to q1")
	if _, ok := d.Headers["x-death"]; ok {
		t.Errorf("x-death on a message never dead-lettered: %v", d.Headers)
	}
	reject(d)

	first := dlEvent{q1, "rejected", src}
	q1Death := func(n int64) death {
		return death{queue: q1, reason: "rejected", exchange: src, count: n, keys: []string{"k"}}
	}
	q2Death := func(n int64) death {
		return death{queue: q2, reason: "rejected", exchange: dlx1, count: n, keys: []string{"to-q2"}}
	}
	d = recv(t, in2, "dead-lettered once, into q2")
	initial := checkDeaths(t, d, since, first, first, q1Death(1))
	if d.Exchange != dlx1 || d.RoutingKey != "to-q2" {
		t.Errorf("into q2 via %q with key %q, want %q, to-q2", d.Exchange, d.RoutingKey, dlx1)
	}
	reject(d)
	d = recv(t, in1, "dead-lettered twice, back in q1")
	checkDeaths(t, d, since, first, dlEvent{q2, "rejected", dlx1}, q2Death(1), q1Death(1))
	reject(d)
	d = recv(t, in2, "dead-lettered three times, in q2")
	again := checkDeaths(t, d, since, first, dlEvent{q1, "rejected", dlx2}, q1Death(2), q2Death(1))
	if len(initial) == 1 && len(again) == 2 && !reflect.DeepEqual(initial[0]["time"], again[0]["time"]) {
		t.Errorf("q1's x-death time changed from %v to %v, want the time of the first event", initial[0]["time"], again[0]["time"])
	}
	reject(d)
	d = recv(t, in1, "dead-lettered four times, in q1")
	checkDeaths(t, d, since, first, dlEvent{q2, "rejected", dlx1}, q2Death(2), q1Death(2))
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
}

// Cycle detection (the DLX doc, "Dead-letter cycle"): a message that would return to a queue it
// was dead-lettered from, with no rejection in the cycle, is dropped for that queue.
func TestDeadLetterCycle(t *testing.T) {
	t.Parallel()

	t.Run("expiry back into the same queue", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		dlx, _, sunk := deadLetterSink(t, conn)
		q := declareQueue(t, ch, amqp.Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": dlx})
		bind(t, ch, q, "", dlx, nil) // the fanout DLX routes to q itself and to the sink
		since := time.Now()
		newPublisher(t, conn).toQueue(q, "loop")
		d := recv(t, sunk, "the copy dead-lettered to the sink")
		ev := dlEvent{q, "expired", ""}
		checkDeaths(t, d, since, ev, ev, death{queue: q, reason: "expired", exchange: "", count: 1, keys: []string{q}})
		// Had the copy for q been kept, it would expire again within 50 ms and reach the sink
		// with count 2.
		wantNoDelivery(t, sunk, 400*time.Millisecond, "a second dead-lettering")
		wantEmpty(t, ch, q)
	})

	t.Run("rejection keeps the cycle going", func(t *testing.T) {
		t.Parallel()
		// The retry pattern: rejected in work, dead-lettered to retry, expires back into work.
		conn, ch := connChannel(t)
		work := uniqueName(t, "work")
		retry := declareLabeledQueue(t, ch, "retry", amqp.Table{
			"x-message-ttl": int32(50), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": work,
		})
		if _, err := ch.QueueDeclare(work, false, false, false, false, amqp.Table{
			"x-dead-letter-exchange": "", "x-dead-letter-routing-key": retry,
		}); err != nil {
			t.Fatal(err)
		}
		deleteQueueLater(t, work)
		in := consume(t, channel(t, conn), work, "", false)
		since := time.Now()
		newPublisher(t, conn).toQueue(work, "retry-me")
		if err := recv(t, in, "first delivery").Reject(false); err != nil {
			t.Fatal(err)
		}
		for n := int64(1); n <= 3; n++ {
			d := recv(t, in, "redelivery through the retry queue")
			checkDeaths(t, d, since, dlEvent{work, "rejected", ""}, dlEvent{retry, "expired", ""},
				death{queue: retry, reason: "expired", exchange: "", count: n, keys: []string{retry}},
				death{queue: work, reason: "rejected", exchange: "", count: n, keys: []string{work}})
			settle := d.Reject(false)
			if n == 3 {
				settle = d.Ack(false)
			}
			if settle != nil {
				t.Fatal(settle)
			}
		}
	})
}

// A dead-letter exchange that does not exist drops the message silently.
func TestDeadLetterMissingExchange(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	closes := notifyClose(ch)
	q := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": uniqueName(t, "missing")})
	p := newPublisher(t, conn)
	p.toQueue(q, "dropped")
	if err := get(t, ch, q, false).Reject(false); err != nil {
		t.Fatal(err)
	}
	wantEmpty(t, ch, q)
	p.toQueue(q, "after")
	if d := get(t, ch, q, true); string(d.Body) != "after" {
		t.Errorf("got %q, want after", d.Body)
	}
	select {
	case err := <-closes:
		t.Errorf("channel closed: %v", err)
	default:
	}
}

// A persistent message dead-lettered into a durable queue keeps its x-death headers across a
// clean restart.
func TestDeadLetterHeadersSurviveRestart(t *testing.T) {
	warrenOnly(t, "restarts the warren binary")
	runner := newBrokerRunner(t, buildWarrenBinary(t), t.TempDir())
	p := runner.start()
	conn := dialConfig(t, p.url, amqp.Config{})
	ch := channel(t, conn)
	const dlx, dead, q = "dlx.restart.x", "dlx.restart.dead", "dlx.restart.q"
	args := amqp.Table{"x-dead-letter-exchange": dlx}
	if err := ch.ExchangeDeclare(dlx, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]amqp.Table{dead: nil, q: args} {
		if _, err := ch.QueueDeclare(name, true, false, false, false, a); err != nil {
			t.Fatal(err)
		}
	}
	bind(t, ch, dead, "", dlx, nil)
	since := time.Now()
	newPublisher(t, conn).publish("", q, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent, Expiration: "60000", Headers: amqp.Table{"h": "v"}, Body: []byte("durable-death"),
	})
	if err := get(t, ch, q, false).Reject(false); err != nil {
		t.Fatal(err)
	}
	sub := channel(t, conn)
	before := recv(t, consume(t, sub, dead, "", false), "dead-lettered before the restart")
	ev := dlEvent{q, "rejected", ""}
	want := death{queue: q, reason: "rejected", exchange: "", count: 1, keys: []string{q}, expiration: "60000"}
	checkDeaths(t, before, since, ev, ev, want)
	if err := sub.Close(); err != nil { // requeues it
		t.Fatal(err)
	}

	p.terminate(t)
	p = runner.start()
	conn = dialConfig(t, p.url, amqp.Config{})
	ch = channel(t, conn)
	if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
		t.Fatalf("redeclare %s with its arguments after the restart: %v", q, err)
	}
	after := get(t, ch, dead, true)
	checkDeaths(t, after, since, ev, ev, want)
	if !reflect.DeepEqual(after.Headers, before.Headers) || after.Expiration != "" || after.DeliveryMode != amqp.Persistent {
		t.Errorf("after the restart: headers %v, expiration %q, delivery mode %d; want headers %v, no expiration, persistent",
			after.Headers, after.Expiration, after.DeliveryMode, before.Headers)
	}
	p.terminate(t)
}
