package vhost

import (
	"testing"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
)

func deaths(t *testing.T, p amqpwire.Properties) []map[string]any {
	t.Helper()
	v, ok, err := p.Headers.Get("x-death")
	if err != nil || !ok {
		t.Fatalf("no x-death: %v", err)
	}
	var out []map[string]any
	for _, d := range v.([]any) {
		m, err := d.(amqpwire.Table).Map()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestDeathPropertiesMergeAndOrder(t *testing.T) {
	h, _ := amqpwire.NewTable(map[string]any{"CC": []any{"cc1"}, "app": "x"})
	m := &queue.Message{Exchange: "orders", RoutingKey: "new", Properties: amqpwire.Properties{
		Flags: amqpwire.FlagHeaders | amqpwire.FlagExpiration, Headers: h, Expiration: "500"}}

	p, err := deathProperties(m, "work", queue.Expired, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Flags&amqpwire.FlagExpiration != 0 {
		t.Error("expiration kept on the dead copy")
	}
	d := deaths(t, p)
	if len(d) != 1 || d[0]["queue"] != "work" || d[0]["reason"] != "expired" || d[0]["count"] != int64(1) ||
		d[0]["exchange"] != "orders" || d[0]["original-expiration"] != "500" {
		t.Fatalf("first death %v", d)
	}
	if keys := d[0]["routing-keys"].([]any); len(keys) != 2 || keys[0] != "new" || keys[1] != "cc1" {
		t.Errorf("routing-keys %v, want [new cc1]", keys)
	}

	// Dead again from another queue, then from the first one for the same reason.
	m2 := &queue.Message{Exchange: "dlx", RoutingKey: "new", Properties: p}
	p2, _ := deathProperties(m2, "retry", queue.Rejected, true)
	m3 := &queue.Message{Exchange: "dlx", RoutingKey: "new", Properties: p2}
	p3, _ := deathProperties(m3, "work", queue.Expired, false)
	d = deaths(t, p3)
	if len(d) != 2 || d[0]["queue"] != "work" || d[0]["count"] != int64(2) || d[0]["exchange"] != "orders" || d[1]["queue"] != "retry" {
		t.Fatalf("after cycling: %v; want work×2 (first exchange kept) then retry", d)
	}
	first, _, _ := p3.Headers.Get("x-first-death-queue")
	last, _, _ := p3.Headers.Get("x-last-death-reason")
	if first != "work" || last != "expired" {
		t.Errorf("x-first-death-queue %v, x-last-death-reason %v", first, last)
	}
	if _, hasCC, _ := p2.Headers.Get("CC"); hasCC {
		t.Error("CC kept although the dead-letter routing key replaced the key")
	}
}

func TestIsCycle(t *testing.T) {
	ev := func(q, r string) any {
		tb, _ := amqpwire.NewTable(map[string]any{"queue": q, "reason": r})
		return tb
	}
	for _, tc := range []struct {
		name   string
		deaths []any
		queue  string
		want   bool
	}{
		{"never there", []any{ev("a", "expired")}, "b", false},
		{"expired loop", []any{ev("a", "expired")}, "a", true},
		{"loop through another queue", []any{ev("b", "maxlen"), ev("a", "expired")}, "a", true},
		{"a rejection breaks it", []any{ev("b", "rejected"), ev("a", "expired")}, "a", false},
		{"rejected in the queue itself", []any{ev("a", "rejected")}, "a", false},
	} {
		if got := isCycle(tc.queue, tc.deaths); got != tc.want {
			t.Errorf("%s: isCycle = %v, want %v", tc.name, got, tc.want)
		}
	}
}
