package conformance

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/store"
)

// TestDiskFullNacksPersistentPublishes runs Warren on a store whose free-space reserve can never
// be met, as if the disk were full: declares still work, a persistent message for a durable
// queue is refused with basic.nack (never acked and then lost) and is never delivered, and a
// transient message, which
// needs no disk, is still accepted and delivered.
func TestDiskFullNacksPersistentPublishes(t *testing.T) {
	warrenOnly(t, "needs a broker whose disk is full")
	st, err := store.Open(store.Options{Dir: t.TempDir(), DiskReserve: 1 << 62, Logger: harnessLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() }) // runs after the broker's own cleanup
	url := startWarren(t, server.Config{Store: st, Logger: harnessLogger()})

	conn := dialConfig(t, url, amqp.Config{})
	ch := channel(t, conn)
	q, err := ch.QueueDeclare(uniqueName(t, "q"), true, false, false, false, nil)
	if err != nil {
		t.Fatalf("declaring a durable queue with the disk full: %v", err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	publish := func(mode uint8, body string) bool {
		t.Helper()
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q.Name, false, false,
			amqp.Publishing{DeliveryMode: mode, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		acked, err := dc.WaitContext(ctx)
		if err != nil {
			t.Fatalf("no confirm for %q: %v", body, err)
		}
		return acked
	}
	if publish(amqp.Persistent, "persistent") {
		t.Error("persistent message acked although the store could not write it")
	}
	if !publish(amqp.Transient, "transient") {
		t.Error("transient message nacked: it needs no disk")
	}
	// The nacked message was enqueued nowhere; the transient one must be there.
	seen := map[string]bool{}
	for {
		d, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		seen[string(d.Body)] = true
	}
	if !seen["transient"] {
		t.Errorf("transient message not delivered; got %v", seen)
	}
	if seen["persistent"] {
		t.Error("the persistent message was nacked to its publisher and then delivered")
	}
}
