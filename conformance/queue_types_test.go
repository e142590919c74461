package conformance

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Queue types (x-queue-type): classic and quorum, with RabbitMQ 3.10.8's declare rules and
// texts. Warren's quorum queues are single-node; what differs from a classic queue is what a
// client can see: the declare rules, the delivery limit and x-delivery-count, where returned
// messages go, and that global QoS is refused.

var quorum = amqp.Table{"x-queue-type": "quorum"}

// withQuorum returns quorum's arguments plus kv (key, value, ...).
func withQuorum(kv ...any) amqp.Table {
	t := amqp.Table{"x-queue-type": "quorum"}
	for i := 0; i < len(kv); i += 2 {
		t[kv[i].(string)] = kv[i+1]
	}
	return t
}

// declareQuorum declares a durable quorum queue with args and deletes it when the test ends.
func declareQuorum(t *testing.T, ch *amqp.Channel, args amqp.Table) string {
	t.Helper()
	name := uniqueName(t, "qq")
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		t.Fatalf("declare quorum queue %s: %v", name, err)
	}
	deleteQueueLater(t, name)
	return name
}

// A quorum queue must be durable, not exclusive, not auto-delete and named by the client; the
// arguments of other queue types are refused. Each refusal is RabbitMQ's 406 and text, and
// leaves no queue behind.
func TestQuorumQueueDeclareRules(t *testing.T) {
	conn := dial(t)
	for _, tc := range []struct {
		what                           string
		name                           string // "" asks for a server-named queue
		durable, autoDelete, exclusive bool
		args                           amqp.Table
		want                           string
	}{
		{"non-durable", "q", false, false, false, quorum, "invalid property 'non-durable' for queue '%s' in vhost '/'"},
		{"exclusive", "q", true, false, true, quorum, "invalid property 'exclusive-owner' for queue '%s' in vhost '/'"},
		{"auto-delete", "q", true, true, false, quorum, "invalid property 'auto-delete' for queue '%s' in vhost '/'"},
		{"auto-delete first", "q", false, true, true, quorum, "invalid property 'auto-delete' for queue '%s' in vhost '/'"},
		{"server-named", "", true, false, false, quorum, "Cannot declare a server-named queue for type rabbit_quorum_queue"},
		{"x-max-priority", "q", true, false, false, withQuorum("x-max-priority", int32(5)),
			"invalid arg 'x-max-priority' for queue '%s' in vhost '/' of queue type rabbit_quorum_queue"},
		{"arguments before properties", "q", false, false, false, withQuorum("x-max-priority", int32(5)),
			"invalid arg 'x-max-priority' for queue '%s' in vhost '/' of queue type rabbit_quorum_queue"},
		{"x-queue-mode", "q", true, false, false, withQuorum("x-queue-mode", "lazy"),
			"invalid arg 'x-queue-mode' for queue '%s' in vhost '/' of queue type rabbit_quorum_queue"},
		{"x-queue-master-locator", "q", true, false, false, withQuorum("x-queue-master-locator", "min-masters"),
			"invalid arg 'x-queue-master-locator' for queue '%s' in vhost '/' of queue type rabbit_quorum_queue"},
		{"x-max-age", "q", true, false, false, withQuorum("x-max-age", "1D"),
			"invalid arg 'x-max-age' for queue '%s' in vhost '/' of queue type rabbit_quorum_queue"},
		{"x-dead-letter-strategy", "q", true, false, false, withQuorum("x-dead-letter-strategy", "sometimes"),
			"invalid arg 'x-dead-letter-strategy' for queue '%s' in vhost '/': invalid_dlx_strategy"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			name := ""
			if tc.name != "" {
				name = uniqueName(t, "qq")
			}
			ch := channel(t, conn)
			_, err := ch.QueueDeclare(name, tc.durable, tc.autoDelete, tc.exclusive, false, tc.args)
			want := tc.want
			if name != "" {
				want = fmt.Sprintf(tc.want, name)
			}
			wantError(t, err, 406, "PRECONDITION_FAILED - "+want)
			if name != "" {
				_, err := channel(t, conn).QueueDeclarePassive(name, false, false, false, false, nil)
				wantError(t, err, 404, "NOT_FOUND - no queue")
			}
		})
	}
}

// What a quorum queue accepts: the arguments it shares with classic queues and its own.
func TestQuorumQueueAcceptedArguments(t *testing.T) {
	_, ch := connChannel(t)
	declareQuorum(t, ch, withQuorum("x-message-ttl", int32(60_000), "x-max-length", int32(100),
		"x-overflow", "reject-publish", "x-dead-letter-exchange", "", "x-single-active-consumer", true,
		"x-delivery-limit", int32(3), "x-quorum-initial-group-size", int32(3),
		"x-dead-letter-strategy", "at-most-once", "x-expires", int32(600_000)))
	declareQuorum(t, ch, amqp.Table{"x-queue-type": "classic"}) // durable classic, named explicitly
}

// An unknown or unsupported queue type is refused with a 406 naming it, never silently made a
// classic queue. (RabbitMQ 3.10 has streams, so "stream" is tested against Warren only, below.)
func TestUnknownQueueType(t *testing.T) {
	conn := dial(t)
	for _, typ := range []any{"foo", "Quorum", ""} {
		name := uniqueName(t, "q")
		_, err := channel(t, conn).QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": typ})
		wantError(t, err, 406, fmt.Sprintf(`PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '%s' in vhost '/': "unsupported queue type '%s'"`, name, typ))
	}
	name := uniqueName(t, "q")
	_, err := channel(t, conn).QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": int32(1)})
	wantError(t, err, 406, fmt.Sprintf(`PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '%s' in vhost '/': {unacceptable_type,signedint}`, name))
}

func TestStreamQueueTypeRefused(t *testing.T) {
	warrenOnly(t, "RabbitMQ 3.10 has stream queues; Warren does not yet, and says so")
	name := uniqueName(t, "stream")
	_, err := channel(t, dial(t)).QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": "stream"})
	wantError(t, err, 406, fmt.Sprintf(`PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '%s' in vhost '/': "unsupported queue type 'stream'"`, name))
}

// The type is part of the queue: a redeclare must name the same one (RabbitMQ's texts), a
// classic queue may be redeclared with or without x-queue-type classic, and a passive
// declare needs nothing.
func TestQueueTypeRedeclare(t *testing.T) {
	conn, ch := connChannel(t)
	qq := declareQuorum(t, ch, quorum)
	_, err := channel(t, conn).QueueDeclare(qq, true, false, false, false, nil)
	wantError(t, err, 406, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '%s' in vhost '/': received none but current is the value 'quorum' of type 'longstr'", qq))
	_, err = channel(t, conn).QueueDeclare(qq, true, false, false, false, amqp.Table{"x-queue-type": "classic"})
	wantError(t, err, 406, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '%s' in vhost '/': received 'classic' but current is 'quorum'", qq))
	_, err = channel(t, conn).QueueDeclare(qq, false, false, false, false, quorum)
	wantError(t, err, 406, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/': received 'false' but current is 'true'", qq))
	ch = channel(t, conn)
	if _, err := ch.QueueDeclarePassive(qq, false, false, false, false, nil); err != nil {
		t.Errorf("passive declare of a quorum queue: %v", err)
	}
	if _, err := ch.QueueDeclare(qq, true, false, false, false, quorum); err != nil {
		t.Errorf("redeclare of a quorum queue as it is: %v", err)
	}
	cq := declareQueue(t, ch, nil)
	if _, err := ch.QueueDeclare(cq, false, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		t.Errorf("redeclare of a classic queue with x-queue-type classic: %v", err)
	}
}

// The management API lists a quorum queue with type quorum, a classic one with type classic.
func TestQueueTypeInManagementAPI(t *testing.T) {
	_, ch := connChannel(t)
	qq := declareQuorum(t, ch, quorum)
	cq := declareQueue(t, ch, nil)
	a := mgmtAPI(t)
	for name, want := range map[string]string{qq: "quorum", cq: "classic"} {
		var q struct {
			Type string `json:"type"`
		}
		// RabbitMQ lists a new queue once its stats reach the management database.
		deadline := time.Now().Add(4 * timeout)
		for {
			code, _ := a.do(http.MethodGet, "/api/queues/%2F/"+esc(name), nil)
			if code == http.StatusOK || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		a.json(http.MethodGet, "/api/queues/%2F/"+esc(name), nil, http.StatusOK, &q)
		if q.Type != want {
			t.Errorf("GET /api/queues/%%2F/%s: type %q, want %q", name, q.Type, want)
		}
	}
}

// getOne gets a message that must be there, without auto-ack.
func getOne(t *testing.T, ch *amqp.Channel, q string) amqp.Delivery {
	t.Helper()
	d, ok, err := ch.Get(q, false)
	if err != nil || !ok {
		t.Fatalf("basic.get %s: ok=%v err=%v", q, ok, err)
	}
	return d
}

// deliveryCount is a delivery's x-delivery-count header, -1 when absent.
func deliveryCount(d amqp.Delivery) int64 {
	switch n := d.Headers["x-delivery-count"].(type) {
	case int64:
		return n
	case int32:
		return int64(n)
	}
	return -1
}

// Every return counts toward x-delivery-count and the delivery limit: a nack, a reject and a
// closed channel alike. A limit of 2 allows 3 deliveries; the third return dead-letters the
// message with reason delivery_limit.
func TestQuorumDeliveryCountAndLimit(t *testing.T) {
	conn, ch := connChannel(t)
	dlq := declareQueue(t, ch, nil)
	q := declareQuorum(t, ch, withQuorum("x-delivery-limit", int32(2),
		"x-dead-letter-exchange", "", "x-dead-letter-routing-key", dlq))
	p := newPublisher(t, conn)
	p.publish("", q, false, amqp.Publishing{Body: []byte("poison"), Headers: amqp.Table{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})

	c := channel(t, conn)
	d := getOne(t, c, q)
	if err := d.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	d = getOne(t, c, q)
	if !d.Redelivered || deliveryCount(d) != 1 {
		t.Errorf("after a nack: redelivered=%v x-delivery-count=%v, want true 1", d.Redelivered, d.Headers["x-delivery-count"])
	}
	if err := d.Reject(true); err != nil {
		t.Fatal(err)
	}
	c2 := channel(t, conn)
	d = getOne(t, c2, q)
	if deliveryCount(d) != 2 {
		t.Errorf("after a reject: x-delivery-count=%v, want 2", d.Headers["x-delivery-count"])
	}
	if d.Headers["traceparent"] != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Errorf("traceparent changed on redelivery: %v", d.Headers)
	}
	// The third return: the channel closes with the message unacked.
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	dead := recv(t, consume(t, ch, dlq, "", true), "the dead-lettered message")
	if string(dead.Body) != "poison" {
		t.Fatalf("dead-lettered %q", dead.Body)
	}
	deaths, _ := dead.Headers["x-death"].([]any)
	if len(deaths) == 0 {
		t.Fatalf("no x-death: %v", dead.Headers)
	}
	if first, _ := deaths[0].(amqp.Table); first["reason"] != "delivery_limit" || first["queue"] != q {
		t.Errorf("x-death[0] = %v, want reason delivery_limit from %s", first, q)
	}
	wantMessages(t, ch, q, 0)
}

// With a delivery limit, a quorum queue delivers returned messages before the others, in the
// order they came back (RabbitMQ 3.10.8): get 0 and 1, nack 1 then 0, and the order is 1, 0, 2, 3.
func TestQuorumReturnsFirstWithALimit(t *testing.T) {
	conn, ch := connChannel(t)
	q := declareQuorum(t, ch, withQuorum("x-delivery-limit", int32(5)))
	newPublisher(t, conn).toQueue(q, "0", "1", "2", "3")
	c := channel(t, conn)
	d0, d1 := getOne(t, c, q), getOne(t, c, q)
	if err := d1.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	if err := d0.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 4 {
		d := getOne(t, c, q)
		got = append(got, string(d.Body))
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	equalStrings(t, "order after nacking 1 then 0", got, []string{"1", "0", "2", "3"})
}

// A quorum consumer on a channel with a global prefetch limit: RabbitMQ 3.10.8 closes the
// connection with 540. basic.get is fine.
func TestQuorumGlobalQosRefused(t *testing.T) {
	conn, ch := connChannel(t)
	q := declareQuorum(t, ch, quorum)
	c := channel(t, dial(t))
	if err := c.Qos(10, 0, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(q, false); err != nil {
		t.Fatalf("basic.get under a global limit: %v", err)
	}
	c2conn := dial(t)
	closed := notifyConnClose(c2conn)
	c2 := channel(t, c2conn)
	if err := c2.Qos(10, 0, true); err != nil {
		t.Fatal(err)
	}
	_, err := c2.Consume(q, "", false, false, false, false, nil)
	msg := fmt.Sprintf("NOT_IMPLEMENTED - queue '%s' in vhost '/' does not support global qos", q)
	wantError(t, err, 540, msg)
	wantClosed(t, closed, 540, msg)
	// A per-consumer limit is fine.
	c3 := channel(t, conn)
	if err := c3.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	consume(t, c3, q, "", false)
}

// Warren's quorum queues have RabbitMQ 4.x's default delivery limit of 20: the 21st return
// dead-letters the message. RabbitMQ 3.10 has no default.
func TestQuorumDefaultDeliveryLimit(t *testing.T) {
	warrenOnly(t, "RabbitMQ 3.10 has no default delivery limit (4.x has 20, as Warren)")
	conn, ch := connChannel(t)
	dlq := declareQueue(t, ch, nil)
	q := declareQuorum(t, ch, withQuorum("x-dead-letter-exchange", "", "x-dead-letter-routing-key", dlq))
	newPublisher(t, conn).toQueue(q, "m")
	c := channel(t, conn)
	deliveries := 0
	for {
		d, ok, err := c.Get(q, false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		deliveries++
		if err := d.Nack(false, true); err != nil {
			t.Fatal(err)
		}
		if deliveries > 30 {
			t.Fatal("still delivered after 30 returns: no default limit")
		}
	}
	if deliveries != 21 {
		t.Errorf("%d deliveries before dead-lettering, want 21 (limit 20)", deliveries)
	}
	wantMessages(t, ch, dlq, 1)
}

// Without a delivery limit a quorum queue puts returned messages at the back, in the order
// they came back, ahead of messages published later (RabbitMQ 3.10.8): get 0 and 1, nack 1
// then 0, publish 4, and the order is 2, 3, 1, 0, 4. Each redelivery still carries
// x-delivery-count. RabbitMQ 3.10 has no limit unless one is given (and takes -1 as a limit
// that every return passes); Warren has 4.x's default of 20, which -1 turns off, as in 4.x.
func TestQuorumReturnsLastWithoutALimit(t *testing.T) {
	conn, ch := connChannel(t)
	args := quorum
	if !external {
		args = withQuorum("x-delivery-limit", int32(-1))
	}
	q := declareQuorum(t, ch, args)
	p := newPublisher(t, conn)
	p.toQueue(q, "0", "1", "2", "3")
	c := channel(t, conn)
	d0, d1 := getOne(t, c, q), getOne(t, c, q)
	if err := d1.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	if err := d0.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	p.toQueue(q, "4")
	var got []string
	for range 5 {
		d := getOne(t, c, q)
		got = append(got, fmt.Sprintf("%s:%d", d.Body, deliveryCount(d)))
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	// The first delivery of a message through basic.get has x-delivery-count 0 on RabbitMQ
	// 3.10.8 and none on Warren: compare the bodies, and the counts of redeliveries.
	var bodies []string
	for i, g := range got {
		var body string
		var n int
		fmt.Sscanf(strings.Replace(g, ":", " ", 1), "%s %d", &body, &n)
		bodies = append(bodies, body)
		if (body == "1" || body == "0") && n != 1 {
			t.Errorf("delivery %d (%s): x-delivery-count %d, want 1", i, body, n)
		}
	}
	equalStrings(t, "order after nacking 1 then 0 and publishing 4", bodies, []string{"2", "3", "1", "0", "4"})
}
