package conformance

import (
	"context"
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The exchange types of RabbitMQ's rabbitmq_consistent_hash_exchange and
// rabbitmq_random_exchange plugins (enabled on the reference node), and RabbitMQ 4.0's
// x-local-random. Which queue a given key lands on is not compared: Warren's hash is not
// Erlang's phash2. What clients can rely on is: one queue per message, the same queue for the
// same key, shares proportional to the weights, and RabbitMQ's errors.

// publishAll publishes the messages in confirm mode and waits for every confirm at the end,
// so that 10 000 messages do not take 10 000 round trips.
func publishAll(t *testing.T, conn *amqp.Connection, exchange string, msgs []amqp.Publishing, keys []string) {
	t.Helper()
	ch := channel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	dcs := make([]*amqp.DeferredConfirmation, len(msgs))
	for i, m := range msgs {
		dc, err := ch.PublishWithDeferredConfirm(exchange, keys[i], false, false, m)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		dcs[i] = dc
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*timeout)
	defer cancel()
	for i, dc := range dcs {
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			t.Fatalf("confirm of message %d: %v, %v", i, ok, err)
		}
	}
	_ = ch.Close()
}

// hashExchange declares an x-consistent-hash exchange with args and binds a new queue per
// weight; it returns the exchange and the queues.
func hashExchange(t *testing.T, ch *amqp.Channel, args amqp.Table, weights ...string) (string, []string) {
	t.Helper()
	x := declareExchange(t, ch, "x-consistent-hash", args)
	var qs []string
	for i, w := range weights {
		q := declareLabeledQueue(t, ch, fmt.Sprint("w", w, "-", i), nil)
		bind(t, ch, q, w, x, nil)
		qs = append(qs, q)
	}
	return x, qs
}

func counts(t *testing.T, ch *amqp.Channel, qs []string) []int {
	t.Helper()
	out := make([]int, len(qs))
	for i, q := range qs {
		out[i], _ = queueCounts(t, ch, q)
	}
	return out
}

// The binding key of a consistent-hash exchange is a weight: anything but a positive integer is
// refused with RabbitMQ's 406 and its text.
func TestConsistentHashBindingKeyIsAWeight(t *testing.T) {
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, "x-consistent-hash", nil)
	q := declareQueue(t, ch, nil)
	for key, want := range map[string]string{
		"abc": `PRECONDITION_FAILED - The binding key must be an integer: <<"abc">>`,
		"":    `PRECONDITION_FAILED - The binding key must be an integer: <<>>`,
		"0":   "PRECONDITION_FAILED - The binding key must be greater than 0",
		"-2":  "PRECONDITION_FAILED - The binding key must be greater than 0",
	} {
		c := channel(t, conn)
		err := c.QueueBind(q, key, x, false, nil)
		wantError(t, err, 406, want)
	}
	bind(t, channel(t, conn), q, "+3", x, nil) // list_to_integer takes a sign
}

// hash-property takes three properties only, and not together with hash-header.
func TestConsistentHashExchangeArguments(t *testing.T) {
	conn := dial(t)
	for _, tc := range []struct {
		args amqp.Table
		want string
	}{
		{amqp.Table{"hash-property": "app_id"}, "PRECONDITION_FAILED - Unsupported property: app_id"},
		{amqp.Table{"hash-property": "message_id", "hash-header": "h"}, "PRECONDITION_FAILED - hash-header and hash-property are mutually exclusive"},
	} {
		ch := channel(t, conn)
		name := uniqueName(t, "x")
		err := ch.ExchangeDeclare(name, "x-consistent-hash", false, true, false, false, tc.args)
		wantError(t, err, 406, tc.want)
	}
}

// Weights 1 and 3, 10 000 messages with fixed distinct routing keys: the second queue gets about
// three quarters, and every message reaches exactly one queue. The wide tolerance absorbs the
// difference between the two brokers' hash functions; for a fixed set of keys the result does
// not vary between runs.
func TestConsistentHashWeights(t *testing.T) {
	conn, ch := connChannel(t)
	x, qs := hashExchange(t, ch, nil, "1", "3")
	const n = 10_000
	msgs := make([]amqp.Publishing, n)
	keys := make([]string, n)
	for i := range msgs {
		keys[i] = fmt.Sprintf("order-%d", i)
	}
	publishAll(t, conn, x, msgs, keys)
	c := counts(t, ch, qs)
	if c[0]+c[1] != n {
		t.Fatalf("queues hold %v, %d messages in all, want %d", c, c[0]+c[1], n)
	}
	if c[1] < 7_000 || c[1] > 8_000 {
		t.Errorf("weight 3 got %d of %d (weight 1: %d), want about 7500", c[1], n, c[0])
	}
}

// The same routing key always reaches the same queue.
func TestConsistentHashSameKeySameQueue(t *testing.T) {
	conn, ch := connChannel(t)
	x, qs := hashExchange(t, ch, nil, "1", "1", "1", "1")
	p := newPublisher(t, conn)
	for k := range 5 {
		before := counts(t, ch, qs)
		for range 10 {
			p.body(x, fmt.Sprint("customer-", k), "m")
		}
		after := counts(t, ch, qs)
		grew := 0
		for i := range qs {
			switch d := after[i] - before[i]; d {
			case 0:
			case 10:
				grew++
			default:
				t.Fatalf("key %d: queue %d got %d of the 10 messages", k, i, d)
			}
		}
		if grew != 1 {
			t.Fatalf("key %d: %d queues got its messages, want 1", k, grew)
		}
	}
}

// hash-header and hash-property hash the named header or property instead of the routing key.
// A message without it still reaches one queue (always the same one), as RabbitMQ 3.10.8 does:
// it is not dropped.
func TestConsistentHashOnHeaderOrProperty(t *testing.T) {
	for _, tc := range []struct {
		name string
		args amqp.Table
		with func(v string) amqp.Publishing
	}{
		{"header", amqp.Table{"hash-header": "tenant"}, func(v string) amqp.Publishing {
			return amqp.Publishing{Headers: amqp.Table{"tenant": v}}
		}},
		{"message_id", amqp.Table{"hash-property": "message_id"}, func(v string) amqp.Publishing {
			return amqp.Publishing{MessageId: v}
		}},
		{"correlation_id", amqp.Table{"hash-property": "correlation_id"}, func(v string) amqp.Publishing {
			return amqp.Publishing{CorrelationId: v}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, ch := connChannel(t)
			x, qs := hashExchange(t, ch, tc.args, "1", "1", "1", "1")
			// Each value with ten different routing keys: one queue gets all ten.
			var msgs []amqp.Publishing
			var keys []string
			for v := range 40 {
				for k := range 10 {
					msgs = append(msgs, tc.with(fmt.Sprint("value-", v)))
					keys = append(keys, fmt.Sprint("rk-", v, "-", k))
				}
			}
			publishAll(t, conn, x, msgs, keys)
			c := counts(t, ch, qs)
			reached := 0
			for _, n := range c {
				if n%10 != 0 {
					t.Fatalf("queues hold %v: the ten messages of a value were split", c)
				}
				if n > 0 {
					reached++
				}
			}
			if reached < 2 {
				t.Errorf("40 values reached %d of 4 queues (%v): not hashed on the %s", reached, c, tc.name)
			}
			// Without the header or property: 20 routing keys, one queue.
			msgs, keys = make([]amqp.Publishing, 20), seq("nokey-", 20)
			publishAll(t, conn, x, msgs, keys)
			after := counts(t, ch, qs)
			got := 0
			for i := range qs {
				switch d := after[i] - c[i]; d {
				case 0:
				case 20:
					got++
				default:
					t.Fatalf("messages without the %s: queue %d got %d of 20 (%v then %v)", tc.name, i, d, c, after)
				}
			}
			if got != 1 {
				t.Fatalf("messages without the %s reached %d queues, want all 20 in one (%v then %v)", tc.name, got, c, after)
			}
		})
	}
}

// x-random ignores the routing key and sends each message to exactly one bound queue, chosen
// at random: over 300 messages every queue gets some.
func TestRandomExchange(t *testing.T) {
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, "x-random", nil)
	var qs []string
	for i, key := range []string{"", "a.key", "#"} {
		q := declareLabeledQueue(t, ch, fmt.Sprint("r", i), nil)
		bind(t, ch, q, key, x, nil)
		qs = append(qs, q)
	}
	const n = 300
	publishAll(t, conn, x, make([]amqp.Publishing, n), seq("unrelated-", n))
	c := counts(t, ch, qs)
	if c[0]+c[1]+c[2] != n {
		t.Fatalf("queues hold %v, want %d messages in all: one queue per message", c, n)
	}
	for i, got := range c {
		// Each is picked with probability 1/3; none picked 300 times in a row is (2/3)^300.
		if got == 0 {
			t.Errorf("queue %d (bound with %q) got no message of %d: %v", i, []string{"", "a.key", "#"}[i], n, c)
		}
	}
}

// x-local-random is RabbitMQ 4.0's: one random local queue per message. On one node every
// queue is local, so it is x-random with 4.0's binding rules: an empty key, a classic queue.
func TestLocalRandomExchange(t *testing.T) {
	warrenOnly(t, "RabbitMQ 3.10 has no x-local-random (unknown exchange type)")
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, "x-local-random", nil)
	a := declareLabeledQueue(t, ch, "a", nil)
	b := declareLabeledQueue(t, ch, "b", nil)
	wantError(t, channel(t, conn).QueueBind(a, "k", x, false, nil), 406,
		"PRECONDITION_FAILED - Non empty binding 'k' key not permitted")
	qq := uniqueName(t, "quorum")
	if _, err := ch.QueueDeclare(qq, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	deleteQueueLater(t, qq)
	wantError(t, channel(t, conn).QueueBind(qq, "", x, false, nil), 406,
		"PRECONDITION_FAILED - Queue type rabbit_quorum_queue not valid for this exchange type")
	other := declareExchange(t, ch, "fanout", nil)
	wantError(t, channel(t, conn).ExchangeBind(other, "", x, false, nil), 406,
		"PRECONDITION_FAILED - Destination not found")
	bind(t, ch, a, "", x, nil)
	bind(t, ch, b, "", x, nil)
	publishAll(t, conn, x, make([]amqp.Publishing, 200), seq("k", 200))
	c := counts(t, ch, []string{a, b})
	if c[0]+c[1] != 200 || c[0] == 0 || c[1] == 0 {
		t.Errorf("queues hold %v, want 200 in all, some in each", c)
	}
}
