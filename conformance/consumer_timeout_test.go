package conformance

// Acknowledgement timeouts (docs/queues.md, "Acknowledgement timeouts").
//
// RabbitMQ's consumer timeout closes the channel of a delivery left unacknowledged too long
// with 406 and the text of rabbit_channel:handle_consumer_timed_out (the same in 3.10.8 and
// 3.13), checked there rather than by waiting: RabbitMQ 3.10's timeout is 30 minutes, checked
// once a minute, and its queue argument and policy key came in 3.12. Warren's delivery timeout
// has no RabbitMQ counterpart. So the tests here run against Warren only, but for the one that
// checks that RabbitMQ accepts what Warren accepts.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

// consumerTimedOutText is RabbitMQ's reply text for a consumer timeout on channel id with a
// timeout of ms milliseconds.
func consumerTimedOutText(id, ms int) string {
	return fmt.Sprintf("PRECONDITION_FAILED - delivery acknowledgement on channel %d timed out. Timeout value used: %d ms. "+
		"This timeout value can be configured, see consumers doc guide to learn more", id, ms)
}

// wantExactClose waits for a server-initiated close of the channel with code and exactly text.
func wantExactClose(t *testing.T, closes <-chan *amqp.Error, code int, text string) {
	t.Helper()
	e := recv(t, closes, "channel close")
	if e == nil || e.Code != code || e.Reason != text || !e.Server {
		t.Fatalf("channel closed with %+v, want server close %d %q", e, code, text)
	}
}

// consumeManual consumes q with manual acks on ch.
func consumeManual(t *testing.T, ch *amqp.Channel, q string) <-chan amqp.Delivery {
	t.Helper()
	return consume(t, ch, q, "", false)
}

// The broker's consumer timeout (here 300 ms) closes the channel of a delivery left
// unacknowledged with RabbitMQ's 406 and text; its messages go back to the queue, redelivered,
// and the connection and its other channels carry on, including one whose delivery came first
// but was acknowledged.
func TestConsumerTimeoutBrokerSetting(t *testing.T) {
	warrenOnly(t, "needs a broker consumer timeout short enough to wait for")
	url := startWarren(t, server.Config{Logger: harnessLogger(), ConsumerTimeout: 300 * time.Millisecond})
	conn := dialConfig(t, url, amqp.Config{})
	admin := channel(t, conn)
	q, err := admin.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, conn)

	prompt := channel(t, conn)
	pub.toQueue(q.Name, "acked")
	d := get(t, prompt, q.Name, false)
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}

	late := channel(t, conn)
	closed := notifyClose(late)
	deliveries := consumeManual(t, late, q.Name)
	pub.toQueue(q.Name, "m1", "m2")
	equalStrings(t, "delivered", recvBodies(t, deliveries, 2), []string{"m1", "m2"})
	// late is the connection's fourth channel (admin, the publisher's, prompt, late).
	wantExactClose(t, closed, 406, consumerTimedOutText(4, 300))

	for _, body := range []string{"m1", "m2"} {
		d := get(t, prompt, q.Name, false)
		if string(d.Body) != body || !d.Redelivered {
			t.Errorf("after the timeout got %q redelivered=%v, want %q redelivered", d.Body, d.Redelivered, body)
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if conn.IsClosed() {
		t.Fatal("the consumer timeout closed the connection, want only the channel closed")
	}
}

// The real binary takes consumer-timeout from its file, and --consumer-timeout over it: a
// delivery left unacknowledged closes its channel with RabbitMQ's text naming the timeout in
// force, and the broker logs a warning with the queue and the timeout. (Run by TestConfigFiles.)
func testConfigConsumerTimeout(t *testing.T, bin string) {
	dir := t.TempDir()
	addr := freeAddr(t)
	writeCfgFile(t, dir, "warren.yaml", simpleConfig(addr)+"consumer-timeout: 300ms\n")
	writeCfgFile(t, dir, "defs.yaml", "queues:\n  - {name: ct.q}\n")
	for _, run := range []struct {
		args []string
		ms   int
	}{{nil, 300}, {[]string{"--consumer-timeout", "400ms"}, 400}} {
		b := startCfgBrokerIn(t, bin, dir, addr, run.args...)
		mark := b.log.mark()
		conn := b.dial("guest", "guest", "/")
		ch := channel(t, conn) // channel 1
		closed := notifyClose(ch)
		newPublisher(t, conn).toQueue("ct.q", "m")
		get(t, ch, "ct.q", false)
		wantExactClose(t, closed, 406, consumerTimedOutText(1, run.ms))
		want := fmt.Sprintf("timeout_ms=%d", run.ms)
		if line, ok := b.log.waitFor(mark, timeout, func(s string) bool {
			return strings.Contains(s, "consumer timed out waiting for a delivery acknowledgement") && strings.Contains(s, "queue=ct.q")
		}); !ok || !strings.Contains(line, want) {
			t.Errorf("args %v: log line %q, want a warning about queue ct.q with %s", run.args, line, want)
		}
		b.terminate()
	}
}

// basic.get deliveries count too, as in RabbitMQ (its channel keeps both in one list); a
// queue's x-consumer-timeout (RabbitMQ 3.12) overrides the broker's 30 minutes.
func TestConsumerTimeoutQueueArgument(t *testing.T) {
	warrenOnly(t, "x-consumer-timeout is RabbitMQ 3.12's, and 3.10 ignores it")
	t.Parallel()
	for _, tc := range []struct {
		name string
		take func(t *testing.T, ch *amqp.Channel, q string)
	}{
		{"basic.consume", func(t *testing.T, ch *amqp.Channel, q string) { recv(t, consumeManual(t, ch, q), "delivery") }},
		{"basic.get", func(t *testing.T, ch *amqp.Channel, q string) { get(t, ch, q, false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn := dial(t)
			ch := channel(t, conn)
			q := declareQueue(t, ch, amqp.Table{"x-consumer-timeout": int32(200)})
			newPublisher(t, conn).toQueue(q, "m")
			closed := notifyClose(ch)
			tc.take(t, ch, q)
			wantExactClose(t, closed, 406, consumerTimedOutText(1, 200))
			d := get(t, channel(t, conn), q, true)
			if string(d.Body) != "m" || !d.Redelivered {
				t.Errorf("after the timeout got %q redelivered=%v, want %q redelivered", d.Body, d.Redelivered, "m")
			}
		})
	}
}

// A valid x-consumer-timeout is accepted by both brokers (RabbitMQ 3.10 keeps it as an unknown
// argument, 3.12 acts on it) and is not compared on redeclare: a different value is accepted
// too (and the first stays); deliveries acknowledged in time leave the channel open.
func TestConsumerTimeoutArgumentAccepted(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ch := channel(t, conn)
	args := amqp.Table{"x-consumer-timeout": int32(60000)}
	q := declareQueue(t, ch, args)
	for _, v := range []any{int32(60000), int32(1000), nil} {
		redeclare := amqp.Table{"x-consumer-timeout": v}
		if v == nil {
			redeclare = nil
		}
		if _, err := ch.QueueDeclare(q, false, false, false, false, redeclare); err != nil {
			t.Fatalf("redeclare with arguments %v: %v", redeclare, err)
		}
	}
	newPublisher(t, conn).toQueue(q, "m")
	if err := get(t, ch, q, false).Ack(false); err != nil {
		t.Fatal(err)
	}
	wantMessages(t, ch, q, 0)
}

// The timeout arguments are checked as RabbitMQ checks its integer arguments, with its 406.
func TestAckTimeoutArgumentsChecked(t *testing.T) {
	warrenOnly(t, "RabbitMQ 3.10 ignores these arguments")
	t.Parallel()
	for _, tc := range []struct {
		key  string
		val  any
		text string
	}{
		{"x-consumer-timeout", int32(-1), "{value_negative,-1}"},
		{"x-consumer-timeout", "soon", `"expected integer, got longstr"`},
		{"x-delivery-timeout", int32(0), "{value_zero,0}"},
		{"x-delivery-timeout-action", "drop", "invalid_delivery_timeout_action"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			_, ch := connChannel(t)
			name := uniqueName(t, "q")
			closed := notifyClose(ch)
			_, err := ch.QueueDeclare(name, false, true, false, false, amqp.Table{tc.key: tc.val})
			want := fmt.Sprintf("PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '/': %s", tc.key, name, tc.text)
			wantError(t, err, 406, want)
			wantExactClose(t, closed, 406, want)
		})
	}
}

// Warren's delivery timeout arguments are compared on redeclare, with RabbitMQ's 406 for an
// inequivalent argument.
func TestDeliveryTimeoutRedeclare(t *testing.T) {
	warrenOnly(t, "x-delivery-timeout is Warren's")
	t.Parallel()
	_, ch := connChannel(t)
	q := declareQueue(t, ch, amqp.Table{"x-delivery-timeout": int32(1000)})
	closed := notifyClose(ch)
	_, err := ch.QueueDeclare(q, false, false, false, false, amqp.Table{"x-delivery-timeout": int32(2000)})
	want := fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'x-delivery-timeout' for queue '%s' in vhost '/': received '2000' but current is '1000'", q)
	wantError(t, err, 406, want)
	wantExactClose(t, closed, 406, want)
}

// A consumer-timeout policy key (RabbitMQ 3.12) applies to the queues it matches.
func TestConsumerTimeoutPolicy(t *testing.T) {
	warrenOnly(t, "RabbitMQ 3.10 has no consumer-timeout policy key")
	a := mgmtAPI(t)
	conn := dial(t)
	ch := channel(t, conn)
	q := declareQueue(t, ch, nil)
	path := "/api/policies/%2F/" + esc(uniqueName(t, "policy"))
	t.Cleanup(func() { a.do(http.MethodDelete, path, nil) })
	a.json(http.MethodPut, path, map[string]any{"pattern": "^" + regexpQuote(q) + "$", "apply-to": "queues",
		"definition": map[string]any{"consumer-timeout": 250}}, http.StatusCreated, nil)

	newPublisher(t, conn).toQueue(q, "m")
	closed := notifyClose(ch)
	recv(t, consumeManual(t, ch, q), "delivery")
	wantExactClose(t, closed, 406, consumerTimedOutText(1, 250))
}

// x-delivery-timeout takes back only the late delivery: it is redelivered (to the same
// consumer, the only one), while the channel stays open and the consumer's delivery from
// another queue on it can still be acknowledged. An ack of the late delivery's old tag is
// ignored and counted, not refused with 406 unknown delivery tag.
func TestDeliveryTimeoutRequeues(t *testing.T) {
	warrenOnly(t, "x-delivery-timeout is Warren's")
	url := startWarren(t, server.Config{Logger: harnessLogger()})
	srv := inProcessServer(t, url)
	conn := dialConfig(t, url, amqp.Config{})
	ch := channel(t, conn)
	closed := notifyClose(ch)
	timed, err := ch.QueueDeclare("", false, false, true, false, amqp.Table{"x-delivery-timeout": int32(200)})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, conn)
	pub.toQueue(plain.Name, "kept")
	pub.toQueue(timed.Name, "late")
	kept := recv(t, consumeManual(t, ch, plain.Name), "delivery from the plain queue")
	lateC := consumeManual(t, ch, timed.Name)
	first := recv(t, lateC, "first delivery")
	again := recv(t, lateC, "redelivery after the delivery timeout")
	if string(again.Body) != "late" || !again.Redelivered || again.DeliveryTag == first.DeliveryTag {
		t.Errorf("redelivery %q redelivered=%v tag %d, want %q redelivered with a new tag (first was %d)",
			again.Body, again.Redelivered, again.DeliveryTag, "late", first.DeliveryTag)
	}
	for _, d := range []amqp.Delivery{first, kept, again} {
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	// A round trip after the acks: had one been refused, the channel would be closed by now.
	if _, err := ch.QueueDeclarePassive(plain.Name, false, true, true, false, nil); err != nil {
		t.Fatalf("channel after acking the late delivery's old tag: %v", err)
	}
	select {
	case e := <-closed:
		t.Fatalf("channel closed: %v", e)
	default:
	}
	if st := srv.Stats(); st.DeliveryTimeouts != 1 || st.LateAcks != 1 {
		t.Errorf("DeliveryTimeouts = %d, LateAcks = %d; want 1 and 1", st.DeliveryTimeouts, st.LateAcks)
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	check := channel(t, conn)
	for _, q := range []string{plain.Name, timed.Name} {
		if n, _ := queueCounts(t, check, q); n != 0 {
			t.Errorf("queue %s has %d messages after the acks, want 0", q, n)
		}
	}
}

// With x-delivery-timeout-action dead-letter, the late delivery is dead-lettered with reason
// delivery_timeout in x-death; the channel stays open and a multiple ack covering the late tag
// settles the deliveries before it.
func TestDeliveryTimeoutDeadLetters(t *testing.T) {
	warrenOnly(t, "x-delivery-timeout is Warren's")
	t.Parallel()
	conn := dial(t)
	ch := channel(t, conn)
	closed := notifyClose(ch)
	dlx, _, sunk := deadLetterSink(t, conn)
	plain := declareLabeledQueue(t, ch, "plain", nil)
	q := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": dlx, "x-delivery-timeout": int32(200),
		"x-delivery-timeout-action": "dead-letter"})
	pub := newPublisher(t, conn)
	pub.toQueue(plain, "kept")
	since := time.Now()
	pub.toQueue(q, "late")
	kept := recv(t, consumeManual(t, ch, plain), "delivery from the plain queue")
	late := recv(t, consumeManual(t, ch, q), "delivery")
	d := recv(t, sunk, "dead-lettered delivery")
	ev := dlEvent{q, "delivery_timeout", ""}
	checkDeaths(t, d, since, ev, ev, death{queue: q, reason: "delivery_timeout", exchange: "", count: 1, keys: []string{q}})
	if late.DeliveryTag <= kept.DeliveryTag {
		t.Fatalf("tags %d then %d, want ascending", kept.DeliveryTag, late.DeliveryTag)
	}
	if err := late.Ack(true); err != nil { // covers kept's tag too
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive(plain, false, false, false, false, nil); err != nil {
		t.Fatalf("channel after the multiple ack: %v", err)
	}
	select {
	case e := <-closed:
		t.Fatalf("channel closed: %v", e)
	default:
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	check := channel(t, conn)
	for _, name := range []string{plain, q} {
		if n, _ := queueCounts(t, check, name); n != 0 {
			t.Errorf("queue %s has %d messages, want 0 (kept acked, late dead-lettered)", name, n)
		}
	}
}

// The delivery-timeout and delivery-timeout-action policy keys apply to the queues they match.
func TestDeliveryTimeoutPolicy(t *testing.T) {
	warrenOnly(t, "delivery-timeout is Warren's")
	a := mgmtAPI(t)
	conn := dial(t)
	ch := channel(t, conn)
	dlx, _, sunk := deadLetterSink(t, conn)
	q := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": dlx})
	path := "/api/policies/%2F/" + esc(uniqueName(t, "policy"))
	t.Cleanup(func() { a.do(http.MethodDelete, path, nil) })
	a.json(http.MethodPut, path, map[string]any{"pattern": "^" + regexpQuote(q) + "$", "apply-to": "queues",
		"definition": map[string]any{"delivery-timeout": 200, "delivery-timeout-action": "dead-letter"}}, http.StatusCreated, nil)

	newPublisher(t, conn).toQueue(q, "m")
	recv(t, consumeManual(t, ch, q), "delivery")
	d := recv(t, sunk, "dead-lettered delivery")
	if r := d.Headers["x-first-death-reason"]; r != "delivery_timeout" {
		t.Errorf("x-first-death-reason = %v, want delivery_timeout", r)
	}
}

// inProcessServer is the in-process broker serving url.
func inProcessServer(t *testing.T, url string) *server.Server {
	t.Helper()
	inProcessMu.Lock()
	defer inProcessMu.Unlock()
	w := inProcess[url]
	if w == nil {
		t.Fatalf("no in-process broker at %s", url)
	}
	return w.srv
}

// A delivery timeout is a requeue like any other: with x-delivery-limit, a message that keeps
// timing out is dead-lettered with reason delivery_limit once it has been returned too often.
func TestDeliveryTimeoutCountsTowardDeliveryLimit(t *testing.T) {
	warrenOnly(t, "x-delivery-timeout is Warren's")
	t.Parallel()
	conn := dial(t)
	ch := channel(t, conn)
	dlx, _, sunk := deadLetterSink(t, conn)
	q := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": dlx, "x-delivery-timeout": int32(100), "x-delivery-limit": int32(1)})
	newPublisher(t, conn).toQueue(q, "stuck")
	ds := consumeManual(t, ch, q)
	first, second := recv(t, ds, "first delivery"), recv(t, ds, "second delivery")
	if first.Redelivered || !second.Redelivered {
		t.Errorf("redelivered flags %v, %v; want false, true", first.Redelivered, second.Redelivered)
	}
	d := recv(t, sunk, "dead-lettered delivery")
	if r := d.Headers["x-first-death-reason"]; r != "delivery_limit" {
		t.Errorf("x-first-death-reason = %v, want delivery_limit", r)
	}
}

// A message dead-lettered by a delivery timeout may come back to the queue it timed out in
// (through a TTL queue: a delayed retry), where cycle detection would drop one that only
// expired: like a rejection, a delivery timeout involves a consumer.
func TestDeliveryTimeoutRetryLoop(t *testing.T) {
	warrenOnly(t, "x-delivery-timeout is Warren's")
	t.Parallel()
	conn := dial(t)
	ch := channel(t, conn)
	work, retry := uniqueName(t, "work"), uniqueName(t, "retry")
	for _, d := range []struct {
		name string
		args amqp.Table
	}{
		{work, amqp.Table{"x-delivery-timeout": int32(100), "x-delivery-timeout-action": "dead-letter",
			"x-dead-letter-exchange": "", "x-dead-letter-routing-key": retry}},
		{retry, amqp.Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": work}},
	} {
		if _, err := ch.QueueDeclare(d.name, false, false, false, false, d.args); err != nil {
			t.Fatal(err)
		}
		deleteQueueLater(t, d.name)
	}
	newPublisher(t, conn).toQueue(work, "job")
	ds := consumeManual(t, ch, work)
	recv(t, ds, "first delivery")
	back := recv(t, ds, "delivery after the retry")
	if string(back.Body) != "job" || back.Headers["x-first-death-reason"] != "delivery_timeout" {
		t.Errorf("got %q with x-first-death-reason %v, want %q with delivery_timeout", back.Body, back.Headers["x-first-death-reason"], "job")
	}
	if err := back.Ack(false); err != nil {
		t.Fatal(err)
	}
}
