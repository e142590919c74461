package conformance

// The delayed-message exchange (x-delayed-message), as the rabbitmq-delayed-message-exchange
// plugin behaves, and where Warren differs (persistence, mandatory). RabbitMQ 3.10.8 on the
// reference node has no such plugin, so these tests run against Warren only.

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const noDelayPlugin = "the reference RabbitMQ has no delayed-message plugin"

// The tests measure delays on the wall clock (time.Now().Round(0) drops the monotonic
// reading), as the broker does: a held message's due time is a wall-clock time, so that it
// means the same after a restart. On the monotonic clock a wall clock being slewed shows up
// as a message a few milliseconds early.

// declareDelayed declares a delayed-message exchange routing as kind, deleted at the end.
func declareDelayed(t *testing.T, ch *amqp.Channel, kind string, durable bool) string {
	t.Helper()
	name := uniqueName(t, "x-delayed")
	if err := ch.ExchangeDeclare(name, "x-delayed-message", durable, false, false, false,
		amqp.Table{"x-delayed-type": kind}); err != nil {
		t.Fatalf("declare x-delayed-message exchange: %v", err)
	}
	deleteExchangeLater(t, name)
	return name
}

func delayed(body string, ms any) amqp.Publishing {
	p := amqp.Publishing{Body: []byte(body), DeliveryMode: amqp.Persistent}
	if ms != nil {
		p.Headers = amqp.Table{"x-delay": ms}
	}
	return p
}

// A held message is routed when it is due with the bindings there are then: published with
// mandatory to an exchange with no binding, it is confirmed and not returned, and it reaches
// the queue bound after the publish, no earlier than its delay, carrying x-delay set to minus
// the delay (the plugin's marker), its other headers unchanged.
func TestDelayedRoutesAtDueTimeWithBindingsThen(t *testing.T) {
	warrenOnly(t, noDelayPlugin)
	conn, ch := connChannel(t)
	x := declareDelayed(t, ch, "direct", false)
	pub := newPublisher(t, conn)
	start := time.Now().Round(0) // wall clock, as the broker's due times
	msg := delayed("later", int32(400))
	msg.Headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	pub.publish(x, "k", true, msg)
	if r, ok := pub.returned(); ok {
		t.Fatalf("a held mandatory message was returned (%d %s); Warren routes it when due", r.ReplyCode, r.ReplyText)
	}
	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "k", x, nil)
	wantMessages(t, ch, q, 0)
	d := recv(t, consume(t, ch, q, "", true), "the held message")
	if waited := time.Since(start); waited < 400*time.Millisecond {
		t.Errorf("delivered %v after the publish, before its x-delay of 400 ms", waited)
	}
	if string(d.Body) != "later" || d.Exchange != x || d.RoutingKey != "k" {
		t.Errorf("delivered %q from %q with key %q", d.Body, d.Exchange, d.RoutingKey)
	}
	if got := fmt.Sprint(d.Headers["x-delay"]); got != "-400" {
		t.Errorf("x-delay on delivery = %s (%T), want -400 as the plugin sets it", got, d.Headers["x-delay"])
	}
	if d.Headers["traceparent"] != msg.Headers["traceparent"] {
		t.Errorf("traceparent = %v, want it unchanged", d.Headers["traceparent"])
	}
}

// Messages come out in due order whatever order they were published in; without x-delay, or
// with zero, negative or unreadable x-delay, a message is routed at once, as the plugin does.
// A delay given as a string or a float counts as the plugin reads it.
func TestDelayedOrderByDueTime(t *testing.T) {
	warrenOnly(t, noDelayPlugin)
	conn, ch := connChannel(t)
	x := declareDelayed(t, ch, "topic", false)
	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "jobs.#", x, nil)
	deliveries := consume(t, ch, q, "", true)
	pub := newPublisher(t, conn)
	for _, m := range []amqp.Publishing{
		delayed("600", int64(600)), delayed("200", "200"), delayed("400", 400.9),
		delayed("none", nil), delayed("negative", int32(-5)), delayed("zero", int8(0)), delayed("bad", "soon"),
	} {
		pub.publish(x, "jobs.mail", false, m)
	}
	equalStrings(t, "delivery order", recvBodies(t, deliveries, 7),
		[]string{"none", "negative", "zero", "bad", "200", "400", "600"})
}

// A consumer that republishes a message with x-delay gets it again later: delayed retries with
// no extra queue; the retry keeps its headers.
func TestDelayedRetryByRepublish(t *testing.T) {
	warrenOnly(t, noDelayPlugin)
	conn, ch := connChannel(t)
	x := declareDelayed(t, ch, "fanout", false)
	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "", x, nil)
	deliveries := consume(t, ch, q, "", false)
	pub := newPublisher(t, conn)
	first := delayed("job", nil)
	first.Headers = amqp.Table{"attempt": int32(1), "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	pub.publish(x, "", false, first)
	d := recv(t, deliveries, "first attempt")
	retry := amqp.Publishing{Body: d.Body, DeliveryMode: amqp.Persistent, Headers: amqp.Table{}}
	for k, v := range d.Headers {
		retry.Headers[k] = v
	}
	retry.Headers["attempt"] = int32(2)
	retry.Headers["x-delay"] = int32(300)
	sent := time.Now().Round(0) // wall clock, as the broker's due times
	pub.publish(x, "", false, retry)
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	again := recv(t, deliveries, "the delayed retry")
	if waited := time.Since(sent); waited < 300*time.Millisecond {
		t.Errorf("retry delivered after %v, before its 300 ms", waited)
	}
	if again.Headers["attempt"] != int32(2) || again.Headers["traceparent"] != first.Headers["traceparent"] {
		t.Errorf("retry headers %v", again.Headers)
	}
	wantMessages(t, ch, q, 0)
}

// Deleting a delayed-message exchange drops what it holds: a new exchange of the same name
// never delivers the old exchange's messages.
func TestDelayedDeleteDropsHeld(t *testing.T) {
	warrenOnly(t, noDelayPlugin)
	conn, ch := connChannel(t)
	x := declareDelayed(t, ch, "fanout", true)
	pub := newPublisher(t, conn)
	pub.publish(x, "", false, delayed("old", int32(200)))
	if err := ch.ExchangeDelete(x, false, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(x, "x-delayed-message", true, false, false, false, amqp.Table{"x-delayed-type": "fanout"}); err != nil {
		t.Fatal(err)
	}
	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "", x, nil)
	deliveries := consume(t, ch, q, "", true)
	pub.publish(x, "", false, delayed("new", int32(400)))
	equalStrings(t, "deliveries", recvBodies(t, deliveries, 1), []string{"new"})
}

// The declare errors are the plugin's: x-delayed-type missing or not a string is 406 with its
// text; an unknown x-delayed-type is 503 unknown exchange type, closing the connection.
func TestDelayedDeclareErrors(t *testing.T) {
	warrenOnly(t, noDelayPlugin)
	for _, tc := range []struct {
		name string
		args amqp.Table
		code int
		text string
	}{
		{"missing", nil, amqp.PreconditionFailed, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"},
		{"not a string", amqp.Table{"x-delayed-type": int32(1)}, amqp.PreconditionFailed, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"},
		{"itself", amqp.Table{"x-delayed-type": "x-delayed-message"}, amqp.PreconditionFailed, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"},
		{"unknown", amqp.Table{"x-delayed-type": "nope"}, amqp.CommandInvalid, "COMMAND_INVALID - unknown exchange type 'nope'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ch := connChannel(t)
			name := uniqueName(t, "x-delayed")
			err := ch.ExchangeDeclare(name, "x-delayed-message", false, false, false, false, tc.args)
			wantError(t, err, tc.code, tc.text)
		})
	}
}

// Held persistent messages of a durable delayed-message exchange survive kill -9 of the real
// binary once confirmed: after the restart each is delivered in due order — those that fell
// due while the broker was down at once, the others not before their time — and transient
// ones are gone, as transient queued messages are.
func TestDelayedSurviveKill(t *testing.T) {
	warrenOnly(t, "kills and restarts the warren binary")
	runner := newBrokerRunner(t, buildWarrenBinary(t), t.TempDir())
	p := runner.start()
	conn := dialConfig(t, p.url, amqp.Config{})
	ch := channel(t, conn)
	const x, q = "delayed.durable", "delayed.target"
	if err := ch.ExchangeDeclare(x, "x-delayed-message", true, false, false, false, amqp.Table{"x-delayed-type": "direct"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	bind(t, ch, q, "k", x, nil)
	pub := newPublisher(t, conn)
	start := time.Now().Round(0) // wall clock, as the broker's due times
	// Due while the broker is down (100 ms), and after it is back (4 s, 3 s).
	for _, m := range []struct {
		body       string
		ms         int32
		persistent bool
	}{{"late", 4000, true}, {"soon", 100, true}, {"transient", 150, false}, {"middle", 3000, true}} {
		msg := delayed(m.body, m.ms)
		if !m.persistent {
			msg.DeliveryMode = amqp.Transient
		}
		pub.publish(x, "k", false, msg)
	}
	p.kill(t)
	p = runner.start()
	conn = dialConfig(t, p.url, amqp.Config{})
	ch = channel(t, conn)
	deliveries := consume(t, ch, q, "", true)
	first := recv(t, deliveries, "the message due while the broker was down")
	if string(first.Body) != "soon" {
		t.Fatalf("first delivery %q, want soon", first.Body)
	}
	for _, want := range []struct {
		body string
		ms   time.Duration
	}{{"middle", 3000 * time.Millisecond}, {"late", 4000 * time.Millisecond}} {
		var d amqp.Delivery
		select {
		case d = <-deliveries:
		case <-time.After(want.ms + timeout):
			t.Fatalf("%s not delivered", want.body)
		}
		if string(d.Body) != want.body {
			t.Fatalf("delivered %q, want %q (transient messages are dropped at restart)", d.Body, want.body)
		}
		if waited := time.Since(start); waited < want.ms {
			t.Errorf("%s delivered %v after its publish, before its delay %v", want.body, waited, want.ms)
		}
	}
	wantMessages(t, ch, q, 0)
	p.terminate(t)
}
