package conformance

import (
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

// TestBacklogPastTheWindowKeepsOrder: a queue that keeps 20 messages in memory takes 140,
// persistent and transient mixed, while basic.get takes some between the publishes, so that
// messages wait in the window, on disk, and in memory behind the ones on disk. Every message
// comes back once and in order, the queue counts all of them, and a requeued one comes back
// first.
func TestBacklogPastTheWindowKeepsOrder(t *testing.T) {
	warrenOnly(t, "sets the queue memory window to 20 messages")
	t.Parallel()
	url := startWarren(t, server.Config{Logger: harnessLogger(), QueueMemory: server.QueueMemory{Messages: 20, Bytes: 1 << 20}})
	conn := dialConfig(t, url, amqp.Config{})
	ch := channel(t, conn)
	q, err := ch.QueueDeclare(uniqueName(t, "q"), true, false, false, false, nil)
	if err != nil {
		t.Fatalf("queue.declare: %v", err)
	}
	p := newPublisher(t, conn)
	next, want := 0, 0
	publish := func(n int) {
		t.Helper()
		for range n {
			mode := amqp.Transient
			if next%3 == 0 {
				mode = amqp.Persistent
			}
			p.publish("", q.Name, false, amqp.Publishing{Body: []byte(fmt.Sprint(next)), DeliveryMode: mode})
			next++
		}
	}
	take := func(n int) {
		t.Helper()
		for range n {
			d := get(t, ch, q.Name, true)
			if string(d.Body) != fmt.Sprint(want) {
				t.Fatalf("basic.get returned %s, want %d", d.Body, want)
			}
			want++
		}
	}

	publish(60) // 20 in the window, 40 on disk
	take(10)
	publish(30) // behind the disk: 10 fit the window, the rest go out oldest first
	take(25)
	publish(50)
	wantMessages(t, ch, q.Name, next-want)

	d := get(t, ch, q.Name, false)
	if string(d.Body) != fmt.Sprint(want) {
		t.Fatalf("basic.get returned %s, want %d", d.Body, want)
	}
	if err := d.Nack(false, true); err != nil {
		t.Fatalf("basic.nack: %v", err)
	}
	d = get(t, ch, q.Name, true)
	if string(d.Body) != fmt.Sprint(want) || !d.Redelivered {
		t.Fatalf("after the requeue basic.get returned %s (redelivered %v), want %d redelivered", d.Body, d.Redelivered, want)
	}
	want++
	take(next - want)
	wantEmpty(t, ch, q.Name)
}
