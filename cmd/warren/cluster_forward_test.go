package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestClusterForwardsBetweenProcesses: on three real brokers, a durable classic queue
// declared on n1 is used through the other two: amqp091-go publishes with confirms through
// n2 (every message acked) and consumes with acks through n3 (every message once, in
// order; a nack with requeue redelivers). kill -9 of n1, the queue's node: publishes through
// n2 are nacked, n3's consumer gets basic.cancel, and a new consume or passive declare
// through n3 gets RabbitMQ's 404 "home node ... is down or inaccessible". Once n1 is back on its data dir,
// publishing through n2 and consuming through n3 work again.
func TestClusterForwardsBetweenProcesses(t *testing.T) {
	nodes, start := procCluster(t, "n1", "n2", "n3")
	agree(t, nodes)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	_, ch1 := n1.dial(t, "guest", "guest")
	if _, err := ch1.QueueDeclare("fwd-q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	n2.waitAPI(t, "/api/queues/%2F/fwd-q", `"durable":true`)
	n3.waitAPI(t, "/api/queues/%2F/fwd-q", `"durable":true`)

	_, pub := n2.dial(t, "guest", "guest")
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	publish := func(body string) *amqp.DeferredConfirmation {
		t.Helper()
		c, err := pub.PublishWithDeferredConfirm("", "fwd-q", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	const n = 30
	var confs []*amqp.DeferredConfirmation
	for i := range n {
		confs = append(confs, publish(fmt.Sprintf("m%d", i)))
	}
	for i, c := range confs {
		if ok, err := c.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("publish m%d through n2: ack %v, %v", i, ok, err)
		}
	}

	_, cons := n3.dial(t, "guest", "guest")
	if err := cons.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	cancels := cons.NotifyCancel(make(chan string, 1))
	ds, err := cons.Consume("fwd-q", "c3", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume through n3: %v", err)
	}
	next := func() amqp.Delivery {
		t.Helper()
		select {
		case d, ok := <-ds:
			if !ok {
				t.Fatal("the consumer through n3 ended")
			}
			return d
		case <-time.After(30 * time.Second):
			t.Fatal("no delivery through n3 in 30 s")
		}
		return amqp.Delivery{}
	}
	d := next()
	if string(d.Body) != "m0" || d.Redelivered {
		t.Fatalf("first delivery %q redelivered=%v", d.Body, d.Redelivered)
	}
	if err := d.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	if d = next(); string(d.Body) != "m0" || !d.Redelivered {
		t.Fatalf("after nack/requeue through n3: %q redelivered=%v, want m0 again", d.Body, d.Redelivered)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		if d = next(); string(d.Body) != fmt.Sprintf("m%d", i) || d.Redelivered {
			t.Fatalf("delivery %d through n3: %q redelivered=%v", i, d.Body, d.Redelivered)
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}

	// kill -9 of the queue's node.
	if err := n1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = n1.cmd.Wait()
	select {
	case tag := <-cancels:
		if tag != "c3" {
			t.Fatalf("basic.cancel for %q, want c3", tag)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer through n3 was not cancelled within 30 s of its queue's node dying")
	}
	for i := range 3 {
		if ok, err := publish(fmt.Sprintf("lost%d", i)).WaitContext(ctx); ok || err != nil {
			t.Fatalf("publish through n2 while the queue's node is down: ack %v, %v; want a nack", ok, err)
		}
	}
	_, again := n3.dial(t, "guest", "guest")
	_, err = again.Consume("fwd-q", "", false, false, false, false, nil)
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.NotFound ||
		aerr.Reason != "NOT_FOUND - home node 'n1' of durable queue 'fwd-q' in vhost '/' is down or inaccessible" {
		t.Fatalf("consume through n3 while n1 is down: %v, want 404 home node 'n1' ... is down or inaccessible", err)
	}
	_, passive := n3.dial(t, "guest", "guest")
	if _, err := passive.QueueDeclarePassive("fwd-q", true, false, false, false, nil); !errors.As(err, &aerr) ||
		aerr.Code != amqp.NotFound || !strings.Contains(aerr.Reason, "home node 'n1'") {
		t.Fatalf("passive declare through n3 while n1 is down: %v, want the same 404", err)
	}

	start(0)
	agree(t, nodes)
	// n2 retries its dial to n1 a second after a failure: publish until acked.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := publish("back").WaitContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("publishes through n2 still nacked 30 s after n1 restarted")
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, after := n3.dial(t, "guest", "guest")
	ds, err = after.Consume("fwd-q", "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume through n3 after n1 restarted: %v", err)
	}
	// Acks n1 took just before it was killed may not have reached its disk (as in RabbitMQ,
	// a crash can bring acked messages back): those may come first. A nacked one never does.
	timeout := time.After(30 * time.Second)
	for back := 0; ; back++ {
		select {
		case d := <-ds:
			switch b := string(d.Body); {
			case b == "back":
				t.Logf("%d acked messages came back after the crash", back)
				return
			case strings.HasPrefix(b, "lost"):
				t.Fatalf("a nacked publish was delivered: %q", b)
			}
		case <-timeout:
			t.Fatal("no delivery of the message published after n1 restarted, through n3")
		}
	}
}
