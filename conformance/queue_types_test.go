package conformance

import (
	"fmt"
	"net/http"
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
