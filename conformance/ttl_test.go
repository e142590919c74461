package conformance

// Message TTL (the expiration property and x-message-ttl) and queue expiry (x-expires), as in
// https://www.rabbitmq.com/docs/ttl. TTLs are short (50–300 ms); the tests wait on the
// dead-lettered delivery, or on the mandatory return that shows a queue is gone, never on a sleep
// followed by an assertion. The waits that remain are bounded waits for something that must not
// happen, or waits for a deadline to pass when the assertion is that an expired message is not
// handed out.

import (
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ttlGranularity is how early a broker may expire a message: TTLs are whole milliseconds, and a
// broker that keeps deadlines in milliseconds (Warren) may be up to one early; RabbitMQ keeps them
// in microseconds and is never early.
const ttlGranularity = time.Millisecond

// wantExpiredAfter asserts that d was dead-lettered from q for expiry no sooner than ttl after
// published (less ttlGranularity).
func wantExpiredAfter(t *testing.T, d amqp.Delivery, published time.Time, ttl time.Duration, q, origExpiration string) {
	t.Helper()
	if el := time.Since(published); el < ttl-ttlGranularity {
		t.Errorf("%q dead-lettered %v after it was published, before its TTL of %v", d.Body, el, ttl)
	}
	if d.Expiration != "" {
		t.Errorf("%q: expiration = %q after dead-lettering, want it removed", d.Body, d.Expiration)
	}
	ev := dlEvent{q, "expired", ""}
	checkDeaths(t, d, published, ev, ev, death{queue: q, reason: "expired", exchange: "", count: 1, keys: []string{q}, expiration: origExpiration})
}

// sleepUntil waits for a deadline to pass: for tests whose assertion is that a message that has
// expired by then is not handed out.
func sleepUntil(deadline time.Time) { time.Sleep(time.Until(deadline)) }

func TestPerMessageTTL(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	dlx, _, sunk := deadLetterSink(t, conn)
	q := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": dlx})
	published := time.Now()
	newPublisher(t, conn).publish("", q, false, amqp.Publishing{Expiration: "100", Headers: amqp.Table{"h": "v"}, Body: []byte("short-lived")})
	d := recv(t, sunk, "the expired message")
	wantExpiredAfter(t, d, published, 100*time.Millisecond, q, "100")
	if h := appHeaders(d); !reflect.DeepEqual(h, amqp.Table{"h": "v"}) {
		t.Errorf("headers besides the dead-letter ones = %v, want h", h)
	}
	wantEmpty(t, ch, q)
}

func TestQueueMessageTTL(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	dlx, _, sunk := deadLetterSink(t, conn)
	q := declareQueue(t, ch, amqp.Table{"x-message-ttl": int32(100), "x-dead-letter-exchange": dlx})
	published := time.Now()
	newPublisher(t, conn).toQueue(q, "m0", "m1")
	for _, want := range []string{"m0", "m1"} {
		d := recv(t, sunk, "expired "+want)
		if string(d.Body) != want {
			t.Errorf("dead-lettered %q, want %q", d.Body, want)
		}
		wantExpiredAfter(t, d, published, 100*time.Millisecond, q, "") // no original-expiration
	}
	wantEmpty(t, ch, q)
}

// The lower of the queue's TTL and the message's own applies.
func TestTTLLowerWins(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name               string
		queueTTL           int32
		expiration         string
		effective          time.Duration
		wantOrigExpiration string
	}{
		{"queue TTL below the message's", 100, "60000", 100 * time.Millisecond, "60000"},
		{"message TTL below the queue's", 60000, "100", 100 * time.Millisecond, "100"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			dlx, _, sunk := deadLetterSink(t, conn)
			q := declareQueue(t, ch, amqp.Table{"x-message-ttl": c.queueTTL, "x-dead-letter-exchange": dlx})
			published := time.Now()
			newPublisher(t, conn).publish("", q, false, amqp.Publishing{Expiration: c.expiration, Body: []byte("m")})
			// recv gives up after 5 s: long before the higher TTL of 60 s.
			wantExpiredAfter(t, recv(t, sunk, "the expired message"), published, c.effective, q, c.wantOrigExpiration)
		})
	}
}

// A TTL of 0 delivers a message at once to a consumer that can take it, and expires it otherwise.
func TestZeroTTL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		queueArgs  amqp.Table
		expiration string
	}{
		{"expiration 0", nil, "0"},
		{"x-message-ttl 0", amqp.Table{"x-message-ttl": int32(0)}, ""},
	} {
		args := func(dlx string) amqp.Table {
			a := amqp.Table{"x-dead-letter-exchange": dlx}
			for k, v := range c.queueArgs {
				a[k] = v
			}
			return a
		}
		t.Run(c.name+" to a waiting consumer", func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			dlx, _, sunk := deadLetterSink(t, conn)
			q := declareQueue(t, ch, args(dlx))
			in := consume(t, channel(t, conn), q, "", true)
			newPublisher(t, conn).publish("", q, false, amqp.Publishing{Expiration: c.expiration, Body: []byte("now")})
			d := recv(t, in, "the message with TTL 0")
			if string(d.Body) != "now" || d.Expiration != c.expiration {
				t.Errorf("delivered %q with expiration %q, want now with %q", d.Body, d.Expiration, c.expiration)
			}
			wantNoDelivery(t, sunk, 100*time.Millisecond, "dead-lettered as well")
		})
		t.Run(c.name+" without a consumer", func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			dlx, _, sunk := deadLetterSink(t, conn)
			q := declareQueue(t, ch, args(dlx))
			published := time.Now()
			newPublisher(t, conn).publish("", q, false, amqp.Publishing{Expiration: c.expiration, Body: []byte("never")})
			wantEmpty(t, ch, q) // right after the confirm: gone at once, not at the next tick
			wantExpiredAfter(t, recv(t, sunk, "the message with TTL 0"), published, 0, q, c.expiration)
		})
		t.Run(c.name+" without a consumer or a DLX", func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			q := declareQueue(t, ch, c.queueArgs)
			p := newPublisher(t, conn)
			for i := 0; i < 3; i++ {
				p.publish("", q, false, amqp.Publishing{Expiration: c.expiration, Body: []byte("never")})
				wantEmpty(t, ch, q)
			}
		})
		t.Run(c.name+" requeued", func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			dlx, _, sunk := deadLetterSink(t, conn)
			q := declareQueue(t, ch, args(dlx))
			in := consume(t, channel(t, conn), q, "", false)
			published := time.Now()
			newPublisher(t, conn).publish("", q, false, amqp.Publishing{Expiration: c.expiration, Body: []byte("once")})
			d := recv(t, in, "the message with TTL 0")
			if err := d.Nack(false, true); err != nil {
				t.Fatal(err)
			}
			// Its deadline had passed when it came back: dead-lettered, not redelivered.
			wantExpiredAfter(t, recv(t, sunk, "the requeued message with TTL 0"), published, 0, q, c.expiration)
			wantEmpty(t, ch, q)
			wantNoDelivery(t, in, 100*time.Millisecond, "redelivered after the requeue")
		})
		t.Run(c.name+" to a consumer without credit", func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			dlx, _, sunk := deadLetterSink(t, conn)
			q := declareQueue(t, ch, args(dlx))
			sub := channel(t, conn)
			if err := sub.Qos(1, 0, false); err != nil {
				t.Fatal(err)
			}
			in := consume(t, sub, q, "", false)
			p := newPublisher(t, conn)
			p.publish("", q, false, amqp.Publishing{Expiration: "60000", Body: []byte("held")})
			held := recv(t, in, "the message that uses the consumer's credit")
			published := time.Now()
			p.publish("", q, false, amqp.Publishing{Expiration: c.expiration, Body: []byte("blocked")})
			wantExpiredAfter(t, recv(t, sunk, "the message with TTL 0"), published, 0, q, c.expiration)
			if err := held.Ack(false); err != nil {
				t.Fatal(err)
			}
			wantNoDelivery(t, in, 100*time.Millisecond, "delivered once the consumer had credit")
		})
	}
}

// basic.get never hands out a message whose TTL has passed.
func TestGetSkipsExpired(t *testing.T) {
	t.Parallel()
	t.Run("per-message", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		q := declareQueue(t, ch, nil)
		p := newPublisher(t, conn)
		p.publish("", q, false, amqp.Publishing{Expiration: "50", Body: []byte("stale")})
		deadline := time.Now().Add(60 * time.Millisecond) // the confirm came after the enqueue
		p.publish("", q, false, amqp.Publishing{Body: []byte("fresh")})
		sleepUntil(deadline)
		equalStrings(t, "basic.get after the first message's TTL", getBodies(t, ch, q), []string{"fresh"})
	})
	t.Run("per-queue", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		q := declareQueue(t, ch, amqp.Table{"x-message-ttl": int32(50)})
		p := newPublisher(t, conn)
		p.toQueue(q, "stale")
		sleepUntil(time.Now().Add(60 * time.Millisecond))
		wantEmpty(t, ch, q)
		p.toQueue(q, "fresh")
		equalStrings(t, "basic.get right after publishing", getBodies(t, ch, q), []string{"fresh"})
	})
}

// A delivered message does not expire while it is unacknowledged; requeued, it keeps the deadline
// it was published with instead of getting a new one.
func TestRequeueKeepsDeadline(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		queueTTL   amqp.Table
		expiration string
	}{
		{"per-queue", amqp.Table{"x-message-ttl": int32(200)}, ""},
		{"per-message", nil, "200"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			dlx, _, sunk := deadLetterSink(t, conn)
			args := amqp.Table{"x-dead-letter-exchange": dlx}
			for k, v := range c.queueTTL {
				args[k] = v
			}
			q := declareQueue(t, ch, args)
			published := time.Now()
			newPublisher(t, conn).publish("", q, false, amqp.Publishing{Expiration: c.expiration, Body: []byte("held")})
			d := get(t, ch, q, false)
			wantNoDelivery(t, sunk, time.Until(published.Add(300*time.Millisecond)), "expired while unacknowledged")
			if err := d.Nack(false, true); err != nil {
				t.Fatal(err)
			}
			wantEmpty(t, ch, q) // with a fresh 200 ms it would still be there
			wantExpiredAfter(t, recv(t, sunk, "the requeued message"), published, 200*time.Millisecond, q, c.expiration)
		})
	}
}

// Warren expires a message on time wherever it is in the queue; RabbitMQ's classic queues only
// discard expired messages when they reach the head (the TTL doc, "Caveats").
func TestExpiryBehindLongerTTL(t *testing.T) {
	warrenOnly(t, "RabbitMQ expires messages only at the head of the queue")
	t.Parallel()
	conn, ch := connChannel(t)
	dlx, _, sunk := deadLetterSink(t, conn)
	q := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": dlx})
	p := newPublisher(t, conn)
	p.publish("", q, false, amqp.Publishing{Expiration: "60000", Body: []byte("long")})
	published := time.Now()
	p.publish("", q, false, amqp.Publishing{Expiration: "100", Body: []byte("short")})
	d := recv(t, sunk, "the short-lived message behind the long-lived one")
	if string(d.Body) != "short" {
		t.Fatalf("dead-lettered %q, want short", d.Body)
	}
	wantExpiredAfter(t, d, published, 100*time.Millisecond, q, "100")
	wantMessages(t, ch, q, 1)
	equalStrings(t, "left in the queue", getBodies(t, ch, q), []string{"long"})
}

// queueGone waits until a mandatory publish to q through the default exchange comes back
// unroutable. Publishing does not count as using a queue, so probing does not keep it alive.
func queueGone(t *testing.T, p *publisher, q string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	give := time.After(timeout)
	for {
		if !queueExists(t, p, q) {
			return
		}
		select {
		case <-tick.C:
		case <-give:
			t.Fatalf("queue %s still exists after %v", q, timeout)
		}
	}
}

// queueExists probes q with a mandatory publish, which does not reset its expiry timer.
func queueExists(t *testing.T, p *publisher, q string) bool {
	t.Helper()
	p.publish("", q, true, amqp.Publishing{Body: []byte("probe")})
	_, returned := p.returned()
	return !returned
}

// An unused queue is deleted after x-expires, without dead-lettering its messages.
func TestQueueExpires(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	dlx, _, sunk := deadLetterSink(t, conn)
	declared := time.Now()
	q := declareQueue(t, ch, amqp.Table{"x-expires": int32(200), "x-dead-letter-exchange": dlx})
	p := newPublisher(t, conn)
	p.toQueue(q, "m0", "m1")
	queueGone(t, p, q)
	if el := time.Since(declared); el < 200*time.Millisecond-ttlGranularity {
		t.Errorf("queue deleted %v after it was declared, before x-expires", el)
	}
	_, err := channel(t, conn).QueueDeclarePassive(q, false, false, false, false, nil)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue '"+q+"' in vhost '/'")
	wantNoDelivery(t, sunk, 300*time.Millisecond, "a message of the expired queue dead-lettered")
}

// A consumer, basic.get, a redeclare or a passive declare each count as use and keep the queue
// alive; the period starts again once the use stops. (RabbitMQ 3.10 restarts the timer on a
// passive declare as well: it is the same queue.declare.)
func TestQueueExpiresResetByUse(t *testing.T) {
	t.Parallel()
	const expires = 600 * time.Millisecond // 500 ms of slack over the 100 ms between uses
	for _, c := range []struct {
		name string
		use  func(t *testing.T, ch *amqp.Channel, q string) // called every 100 ms for 3 periods
	}{
		{"basic.get", func(t *testing.T, ch *amqp.Channel, q string) {
			if _, _, err := ch.Get(q, true); err != nil {
				t.Fatalf("basic.get: %v", err)
			}
		}},
		{"redeclare", func(t *testing.T, ch *amqp.Channel, q string) {
			d, err := ch.QueueDeclare(q, false, false, false, false, amqp.Table{"x-expires": int32(expires.Milliseconds())})
			if err != nil || d.Messages == 0 { // a recreated queue would be empty
				t.Fatalf("redeclare: %+v, %v; want the existing queue and its message", d, err)
			}
		}},
		{"passive declare", func(t *testing.T, ch *amqp.Channel, q string) {
			if _, err := ch.QueueDeclarePassive(q, false, false, false, false, nil); err != nil {
				t.Fatalf("passive declare: %v", err)
			}
		}},
		{"consumer", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, ch := connChannel(t)
			q := declareQueue(t, ch, amqp.Table{"x-expires": int32(expires.Milliseconds())})
			p := newPublisher(t, conn)
			p.toQueue(q, "keep")
			var lastUse time.Time
			if c.use == nil {
				in := consume(t, ch, q, "holder", false)
				recv(t, in, "the queue's message")
				wantNoDelivery(t, in, 3*expires, "while the consumer holds the queue for 3 periods")
			} else {
				tick := time.NewTicker(100 * time.Millisecond)
				for end := time.Now().Add(3 * expires); time.Now().Before(end); <-tick.C {
					lastUse = time.Now()
					c.use(t, ch, q)
				}
				tick.Stop()
			}
			if !queueExists(t, p, q) {
				t.Fatalf("queue deleted while in use (%s)", c.name)
			}
			if c.use == nil {
				lastUse = time.Now()
				if err := ch.Cancel("holder", false); err != nil {
					t.Fatal(err)
				}
			}
			queueGone(t, p, q)
			if el := time.Since(lastUse); el < expires-ttlGranularity {
				t.Errorf("deleted %v after the last use, want at least x-expires", el)
			}
		})
	}
}

// A durable queue keeps x-message-ttl and its dead-letter exchange across a clean restart: a
// message published before the restart and one published after both expire into the DLX.
func TestTTLSurvivesRestart(t *testing.T) {
	warrenOnly(t, "restarts the warren binary")
	runner := newBrokerRunner(t, buildWarrenBinary(t), t.TempDir())
	p := runner.start()
	conn := dialConfig(t, p.url, amqp.Config{})
	ch := channel(t, conn)
	const dlx, dead, q = "ttl.restart.dlx", "ttl.restart.dead", "ttl.restart.q"
	const ttl = 1000 * time.Millisecond
	args := amqp.Table{"x-message-ttl": int32(ttl.Milliseconds()), "x-dead-letter-exchange": dlx}
	if err := ch.ExchangeDeclare(dlx, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]amqp.Table{dead: nil, q: args} {
		if _, err := ch.QueueDeclare(name, true, false, false, false, a); err != nil {
			t.Fatal(err)
		}
	}
	bind(t, ch, dead, "", dlx, nil)
	published := time.Now()
	newPublisher(t, conn).publish("", q, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("before")})
	p.terminate(t)

	p = runner.start()
	conn = dialConfig(t, p.url, amqp.Config{})
	ch = channel(t, conn)
	if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
		t.Fatalf("redeclare %s with its arguments after the restart: %v", q, err)
	}
	in := consume(t, channel(t, conn), dead, "", true)
	wantExpiredAfter(t, recv(t, in, "the message published before the restart"), published, ttl, q, "")
	published = time.Now()
	newPublisher(t, conn).publish("", q, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("after")})
	d := recv(t, in, "the message published after the restart")
	if string(d.Body) != "after" {
		t.Errorf("dead-lettered %q, want after", d.Body)
	}
	wantExpiredAfter(t, d, published, ttl, q, "")
	p.terminate(t)
}
