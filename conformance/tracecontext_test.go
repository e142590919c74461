package conformance

import (
	"net/http"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// W3C trace context (https://www.w3.org/TR/trace-context/) travels in the traceparent and
// tracestate headers, which OpenTelemetry's AMQP instrumentations set on publish. A broker
// must hand them on unchanged wherever a message goes: redelivery after a requeue,
// dead-lettering (whatever the reason), and Warren's redrive of a dead-letter queue. The
// broker parts pass against RabbitMQ 3.10 too; redrive is Warren's own.

const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate  = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

// traced is a message carrying trace context and another header.
func traced(body string) amqp.Publishing {
	return amqp.Publishing{Body: []byte(body), DeliveryMode: amqp.Persistent,
		Headers: amqp.Table{"traceparent": traceparent, "tracestate": tracestate, "app": "kept"}}
}

// wantTraceContext checks that d carries the trace context it was published with.
func wantTraceContext(t *testing.T, what string, d amqp.Delivery) {
	t.Helper()
	if d.Headers["traceparent"] != traceparent || d.Headers["tracestate"] != tracestate || d.Headers["app"] != "kept" {
		t.Errorf("%s: headers %v, want traceparent %q, tracestate %q and app unchanged", what, d.Headers, traceparent, tracestate)
	}
}

func TestTraceContextSurvives(t *testing.T) {
	conn, ch := connChannel(t)
	p := newPublisher(t, conn)

	t.Run("RequeueByNack", func(t *testing.T) {
		q := declareQueue(t, ch, nil)
		p.publish("", q, false, traced("n"))
		wantTraceContext(t, "first delivery", get(t, ch, q, false))
		if err := ch.Nack(0, true, true); err != nil {
			t.Fatal(err)
		}
		d := get(t, ch, q, true)
		if !d.Redelivered {
			t.Error("the requeued message is not marked redelivered")
		}
		wantTraceContext(t, "after basic.nack requeue", d)
	})

	t.Run("RequeueByChannelClose", func(t *testing.T) {
		q := declareQueue(t, ch, nil)
		p.publish("", q, false, traced("c"))
		other := channel(t, conn)
		get(t, other, q, false)
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		wantTraceContext(t, "after the channel holding it closed", get(t, ch, q, true))
	})

	deadLetterQueues := func(t *testing.T, args amqp.Table) (q, dlq string) {
		dlq = declareLabeledQueue(t, ch, "dlq", nil)
		a := amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
		for k, v := range args {
			a[k] = v
		}
		return declareQueue(t, ch, a), dlq
	}

	t.Run("DeadLetterByReject", func(t *testing.T) {
		q, dlq := deadLetterQueues(t, nil)
		p.publish("", q, false, traced("r"))
		d := get(t, ch, q, false)
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
		d = recv(t, consume(t, ch, dlq, "", true), "the dead-lettered message")
		wantTraceContext(t, "dead-lettered by reject", d)
		if _, ok := d.Headers["x-death"]; !ok {
			t.Errorf("dead-lettered message has no x-death: %v", d.Headers)
		}
	})

	t.Run("DeadLetterByExpiry", func(t *testing.T) {
		q, dlq := deadLetterQueues(t, amqp.Table{"x-message-ttl": int32(1)})
		p.publish("", q, false, traced("e"))
		wantTraceContext(t, "dead-lettered by expiry", recv(t, consume(t, ch, dlq, "", true), "the expired message"))
	})

	t.Run("DeadLetterByMaxLength", func(t *testing.T) {
		q, dlq := deadLetterQueues(t, amqp.Table{"x-max-length": int32(1)})
		p.publish("", q, false, traced("first"))
		p.publish("", q, false, traced("second"))
		wantTraceContext(t, "dead-lettered by max-length", recv(t, consume(t, ch, dlq, "", true), "the dropped message"))
	})

	t.Run("RedriveThroughTheManagementAPI", func(t *testing.T) {
		warrenOnly(t, "POST /api/queues/{vhost}/{name}/redrive is Warren's own")
		a := mgmtAPI(t)
		q, dlq := deadLetterQueues(t, nil)
		p.publish("", q, false, traced("d"))
		if err := get(t, ch, q, false).Reject(false); err != nil {
			t.Fatal(err)
		}
		// Wait for the dead-lettered message on a consumer of another channel, then close that
		// channel so the message is ready in the dead-letter queue again.
		other := channel(t, conn)
		recv(t, consume(t, other, dlq, "", false), "the dead-lettered message")
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		var res struct{ Moved int }
		a.json(http.MethodPost, "/api/queues/%2F/"+esc(dlq)+"/redrive", map[string]any{}, http.StatusOK, &res)
		if res.Moved != 1 {
			t.Fatalf("redrive moved %d messages, want 1", res.Moved)
		}
		wantTraceContext(t, "after redrive", get(t, ch, q, true))
	})
}

// A delayed message (the x-delayed-message exchange, Warren's persistent replacement for
// RabbitMQ's delayed-message plugin) keeps its trace context when it is routed at its due
// time. Its own connection: until the exchange type exists, declaring it closes the
// connection with 503.
func TestTraceContextSurvivesDelay(t *testing.T) {
	warrenOnly(t, "RabbitMQ 3.10.8 here has no delayed-message plugin")
	conn, ch := connChannel(t)
	x := uniqueName(t, "delayed")
	if err := ch.ExchangeDeclare(x, "x-delayed-message", false, true, false, false, amqp.Table{"x-delayed-type": "direct"}); err != nil {
		t.Fatalf("declare an x-delayed-message exchange: %v", err)
	}
	deleteExchangeLater(t, x)
	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "k", x, nil)
	msg := traced("delayed")
	msg.Headers["x-delay"] = int32(20)
	newPublisher(t, conn).publish(x, "k", false, msg)
	wantTraceContext(t, "after the delay", recv(t, consume(t, ch, q, "", true), "the delayed message"))
}
