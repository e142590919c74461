package conformance

import (
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// testConfigPrune removes queues from the definitions and reloads. Without prune, a removed
// queue that holds messages is kept with its messages, an empty one is deleted, and a queue
// a client declared (never in the file) is left alone. With prune: true, the removed queue is
// deleted whatever it holds. A restart does not bring deleted queues back.
func testConfigPrune(t *testing.T, bin string) {
	b := startCfgBroker(t, bin, dedent(`
		queues:
		  - {name: pr.full, durable: true}
		  - {name: pr.full2, durable: true}
		  - {name: pr.empty, durable: true}
		  - {name: pr.stays, durable: true}
	`))
	conn := b.dial("guest", "guest", "/")
	ch := channel(t, conn)
	if _, err := ch.QueueDeclare("pr.client", true, false, false, false, nil); err != nil {
		t.Fatalf("declare pr.client: %v", err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"pr.full", "pr.full2"} {
		for i := range 3 {
			confirmPublish(t, ch, "", q, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: fmt.Appendf(nil, "m%d", i)})
		}
	}

	wantQueues := func(when string, want map[string]bool) {
		t.Helper()
		for q, exists := range want {
			if _, ok := passiveQueue(t, conn, q); ok != exists {
				t.Errorf("%s: queue %s exists = %v, want %v", when, q, ok, exists)
			}
		}
	}
	b.writeDefs("queues:\n  - {name: pr.full2, durable: true}\n  - {name: pr.stays, durable: true}\n")
	b.mustReload()
	wantQueues("after removing pr.full and pr.empty from the file", map[string]bool{
		"pr.full": true, "pr.empty": false, "pr.full2": true, "pr.stays": true, "pr.client": true})
	if n, _ := passiveQueue(t, conn, "pr.full"); n != 3 {
		t.Errorf("pr.full holds %d messages after the reload, want its 3", n)
	}

	// Keep the client's queue out of the pruning question.
	if _, err := ch.QueueDelete("pr.client", false, false, false); err != nil {
		t.Fatal(err)
	}
	// pr.full2 leaves the file now; pr.full left it at the last reload, which kept it and
	// logged that prune: true would delete it.
	b.writeDefs("prune: true\nqueues:\n  - {name: pr.stays, durable: true}\n")
	b.mustReload()
	wantQueues("after reloading with prune: true", map[string]bool{"pr.full2": false, "pr.full": false, "pr.empty": false, "pr.stays": true})

	b.writeDefs("queues:\n  - {name: pr.stays, durable: true}\n")
	b.terminate()
	b = startCfgBrokerIn(t, bin, b.dir, b.addr)
	conn = b.dial("guest", "guest", "/")
	wantQueues("after a restart", map[string]bool{"pr.full2": false, "pr.full": false, "pr.empty": false, "pr.stays": true})
}
