package conformance

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// policyDefs are the policy test's definitions, with lim's max-length as given.
func policyDefs(limMax int) string {
	return dedent(fmt.Sprintf(`
		exchanges:
		  - {name: dead.x, type: fanout}
		queues:
		  - {name: dead.q}
		bindings:
		  - {source: dead.x, destination: dead.q, destination-type: queue, routing-key: ""}
		policies:
		  - {name: lim, pattern: "lim.*", apply-to: queues, priority: 0, definition: {max-length: %d}}
		  - {name: lim-hi, pattern: "lim.hi*", apply-to: queues, priority: 5, definition: {max-length: 3}}
		  - {name: ttl, pattern: "ttl.*", apply-to: queues, definition: {message-ttl: 100}}
		  - {name: dl, pattern: "dl.*", apply-to: queues, definition: {dead-letter-exchange: dead.x}}
	`, limMax))
}

// testConfigPolicies checks policies from the definitions on queues that clients declare:
// max-length (the highest-priority matching policy applies; a lower x-max-length of the
// queue's own wins; a reload changes the limit of the live queue, and lowering it drops the
// oldest messages at once), message-ttl and dead-letter-exchange.
func testConfigPolicies(t *testing.T, bin string) {
	b := startCfgBroker(t, bin, policyDefs(2))
	conn := b.dial("guest", "guest", "/")
	ch := channel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	declare := func(name string, args amqp.Table) {
		t.Helper()
		if _, err := ch.QueueDeclare(name, false, false, false, false, args); err != nil {
			t.Fatalf("declare %s: %v", name, err)
		}
	}
	publish := func(queue string, bodies ...string) {
		t.Helper()
		for _, body := range bodies {
			confirmPublish(t, ch, "", queue, amqp.Publishing{Body: []byte(body)})
		}
	}

	declare("lim.q", nil)
	declare("lim.hi", nil)
	declare("lim.own", amqp.Table{"x-max-length": int32(1)})
	declare("other.q", nil)
	publish("lim.q", seq("m", 5)...)
	equalStrings(t, "lim.q under max-length 2", getBodies(t, ch, "lim.q"), []string{"m3", "m4"})
	publish("lim.hi", seq("h", 5)...)
	equalStrings(t, "lim.hi under the priority-5 policy's max-length 3", getBodies(t, ch, "lim.hi"), []string{"h2", "h3", "h4"})
	publish("lim.own", seq("o", 5)...)
	equalStrings(t, "lim.own with x-max-length 1 under max-length 2", getBodies(t, ch, "lim.own"), []string{"o4"})
	publish("other.q", seq("x", 5)...)
	wantMessages(t, ch, "other.q", 5)

	// A reload raises lim's limit on the live queue…
	b.writeDefs(policyDefs(4))
	b.mustReload()
	publish("lim.q", seq("n", 6)...)
	equalStrings(t, "lim.q after a reload to max-length 4", getBodies(t, ch, "lim.q"), []string{"n2", "n3", "n4", "n5"})
	// … and lowering it trims the queue at once.
	publish("lim.q", seq("p", 4)...)
	b.writeDefs(policyDefs(1))
	b.mustReload()
	equalStrings(t, "lim.q holding 4 after a reload to max-length 1", getBodies(t, ch, "lim.q"), []string{"p3"})

	// message-ttl: ttl.q empties by itself, other.q (no policy) keeps its messages.
	declare("ttl.q", nil)
	publish("ttl.q", "t0", "t1", "t2")
	deadline := time.Now().Add(timeout)
	for {
		n, _ := queueCounts(t, ch, "ttl.q")
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ttl.q still holds %d messages %v after they were published under message-ttl 100", n, timeout)
		}
		<-time.After(20 * time.Millisecond)
	}
	wantEmpty(t, ch, "ttl.q")
	wantMessages(t, ch, "other.q", 5)

	// dead-letter-exchange: a rejected message goes to dead.x, and so to dead.q.
	declare("dl.q", nil)
	publish("dl.q", "bad")
	d := get(t, ch, "dl.q", false)
	if err := d.Reject(false); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(timeout)
	for {
		d, ok, err := ch.Get("dead.q", true)
		if err != nil {
			t.Fatalf("basic.get dead.q: %v", err)
		}
		if ok {
			if string(d.Body) != "bad" {
				t.Errorf("dead.q got %q, want the rejected message", d.Body)
			}
			deaths, _ := d.Headers["x-death"].([]any)
			if len(deaths) == 0 {
				t.Fatalf("the dead-lettered message has no x-death header: %v", d.Headers)
			}
			death, _ := deaths[0].(amqp.Table)
			if death["queue"] != "dl.q" || death["reason"] != "rejected" {
				t.Errorf("x-death[0] = %v, want queue dl.q, reason rejected", death)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing in dead.q %v after a message of dl.q was rejected", timeout)
		}
		<-time.After(20 * time.Millisecond)
	}
	wantEmpty(t, ch, "dl.q")
}
