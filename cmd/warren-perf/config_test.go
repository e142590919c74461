package main

import (
	"io"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := parseConfig(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Producers != 1 || c.Consumers != 1 || c.Queues != 1 || c.Size != 1024 || !c.Durable || c.MultiAck != 0 {
		t.Fatalf("defaults: %+v", c)
	}
	if got := c.queueName(0); got != "warren-perf-1" {
		t.Fatalf("queue name %q", got)
	}
}

func TestParseConfigValid(t *testing.T) {
	c, err := parseConfig(strings.Fields("--producers 4 --consumers 2 --queues 3 --queue-pattern perf-%d --exchange ex --exchange-type topic --routing-key a.{word}.{word} --persistent --confirm 64 --prefetch 1000 --multi-ack 100 --queue-args x-queue-mode=lazy,x-max-length=10"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.BindingKey != "a.*.*" {
		t.Fatalf("binding key %q", c.BindingKey)
	}
	if c.queueName(2) != "perf-3" {
		t.Fatalf("queue name %q", c.queueName(2))
	}
	if c.QueueArgs["x-queue-mode"] != "lazy" || c.QueueArgs["x-max-length"] != int64(10) {
		t.Fatalf("queue args %v", c.QueueArgs)
	}
	c, err = parseConfig(strings.Fields("--exchange h --exchange-type headers"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Headers["warren-perf"] != "1" || c.RoutingKey != "warren-perf" {
		t.Fatalf("headers defaults: %v %q", c.Headers, c.RoutingKey)
	}
}

func TestParseConfigInvalid(t *testing.T) {
	for _, args := range []string{
		"--url http://x/",
		"--url amqp://",
		"--producers -1",
		"--producers 0 --consumers 0",
		"--size -1",
		"--confirm -2",
		"--rate -1",
		"--pmessages -1",
		"--prefetch 70000",
		"--multi-ack -1",
		"--autoack --multi-ack 10",
		"--prefetch 10 --multi-ack 100",
		"--queues 2 --queue-pattern fixed",
		"--queue-pattern q-%s",
		"--queues 0",
		"--exchange-type x-delayed --exchange e",
		"--routing-key k",
		"--exchange e --routing-key a.{word}",
		"--queue-args novalue",
		"--duration -1s",
		"extra",
	} {
		if _, err := parseConfig(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestParseTable(t *testing.T) {
	tb, err := parseTable("a=1,b=true,c=x,d=")
	if err != nil {
		t.Fatal(err)
	}
	want := amqp.Table{"a": int64(1), "b": true, "c": "x", "d": ""}
	for k, v := range want {
		if tb[k] != v {
			t.Errorf("%s = %#v, want %#v", k, tb[k], v)
		}
	}
}

func TestRoutingKeys(t *testing.T) {
	if k := routingKeys("plain", 1024, 1); len(k) != 1 || k[0] != "plain" {
		t.Fatalf("%v", k)
	}
	keys := routingKeys("s.{word}.{word}", 1024, 42)
	if len(keys) != 1024 {
		t.Fatal(len(keys))
	}
	distinct := map[string]bool{}
	for _, k := range keys {
		p := strings.Split(k, ".")
		if len(p) != 3 || p[0] != "s" || p[1] == "" || p[2] == "" || strings.Contains(k, "{") {
			t.Fatalf("key %q", k)
		}
		distinct[k] = true
	}
	if len(distinct) < 100 {
		t.Fatalf("only %d distinct keys", len(distinct))
	}
}

func TestParseConfigExchangeAndIdleDefaults(t *testing.T) {
	// A fanout or topic run without --exchange gets an exchange of its own: the default
	// exchange would route to one queue by name.
	c, err := parseConfig(strings.Fields("--exchange-type fanout --queues 8 --consumers 8"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Exchange != "warren-perf-fanout" {
		t.Fatalf("exchange %q", c.Exchange)
	}
	c, err = parseConfig(strings.Fields("--exchange-type topic --topic-bindings 10000"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Exchange != "warren-perf-topic" || c.TopicBindings != 10000 {
		t.Fatalf("topic: %q %d", c.Exchange, c.TopicBindings)
	}
	// --idle-connections alone opens no producers or consumers; given explicitly they stay.
	c, err = parseConfig(strings.Fields("--idle-connections 10"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Producers != 0 || c.Consumers != 0 || c.IdleConnections != 10 || c.IdleConcurrency != 64 {
		t.Fatalf("idle defaults: %+v", c)
	}
	c, err = parseConfig(strings.Fields("--idle-connections 10 --producers 2"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Producers != 2 || c.Consumers != 0 {
		t.Fatalf("idle with producers: %d/%d", c.Producers, c.Consumers)
	}
}

func TestParseConfigInvalidNewFlags(t *testing.T) {
	for _, args := range []string{
		"--topic-bindings 10",                                         // not a topic exchange
		"--exchange-type fanout --topic-bindings 10",                  // nor this
		"--exchange-type topic --topic-bindings 10 --routing-key a.b", // it sets the keys itself
		"--exchange-type topic --topic-bindings -1",
		"--idle-connections -1",
		"--idle-connections 5 --idle-concurrency 0",
		"--reset-hwm",
	} {
		if _, err := parseConfig(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestTopicKeys(t *testing.T) {
	if topicBindingKey(7) != "stock.7.*" || topicRoutingKey(7) != "stock.7.tick" {
		t.Fatalf("%q %q", topicBindingKey(7), topicRoutingKey(7))
	}
}
