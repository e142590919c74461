//go:build interop

package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRabbitmqadminListsReadSide: `rabbitmqadmin list exchanges|bindings|channels|consumers|
// nodes|overview` read Warren's listings as they read RabbitMQ's.
func TestRabbitmqadminListsReadSide(t *testing.T) {
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, "direct", nil)
	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "rk", x, nil)
	tag := uniqueName(t, "ctag")
	if _, err := ch.Consume(q, tag, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().String() + " "

	var xs []map[string]any
	rabbitmqadminJSON(t, &xs, "list", "exchanges", "name", "type")
	if !hasItem(xs, x) || !hasItem(xs, "amq.topic") {
		t.Errorf("list exchanges lacks %s or amq.topic", x)
	}
	var bs []map[string]any
	rabbitmqadminJSON(t, &bs, "list", "bindings", "source", "destination", "routing_key")
	var found bool
	for _, b := range bs {
		found = found || (b["source"] == x && b["destination"] == q && b["routing_key"] == "rk")
	}
	if !found {
		t.Errorf("list bindings lacks %s -> %s (rk)", x, q)
	}
	// RabbitMQ lists channels and consumers after its stats emit.
	deadline := time.Now().Add(3 * timeout)
	for {
		var chans, cons []map[string]any
		rabbitmqadminJSON(t, &chans, "list", "channels", "name", "user")
		rabbitmqadminJSON(t, &cons, "list", "consumers")
		var chanOK, consOK bool
		for _, c := range chans {
			chanOK = chanOK || (strings.HasPrefix(fmt.Sprint(c["name"]), local) && c["user"] == "guest")
		}
		for _, c := range cons {
			consOK = consOK || c["consumer_tag"] == tag
		}
		if chanOK && consOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rabbitmqadmin: channel of %s listed %v, consumer %s listed %v", local, chanOK, tag, consOK)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var nodes []map[string]any
	rabbitmqadminJSON(t, &nodes, "list", "nodes", "name", "type", "mem_used")
	// One node, or each node of a cluster, with its own figures.
	for _, n := range nodes {
		if n["type"] != "disc" || n["mem_used"] == nil {
			t.Errorf("list nodes: %v", nodes)
		}
	}
	if len(nodes) == 0 {
		t.Error("list nodes: none")
	}
	if out := rabbitmqadmin(t, "show", "overview"); !strings.Contains(out, "rabbitmq_version") && !strings.Contains(out, "cluster_name") {
		t.Errorf("show overview: %s", out)
	}
}
