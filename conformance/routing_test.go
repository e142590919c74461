package conformance

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// routeTable publishes every key once (body = key) through a confirming publisher, then checks
// that each queue received exactly the keys listed for it, in publish order.
func routeTable(t *testing.T, ch *amqp.Channel, p *publisher, exchange string, keys []string, queues map[string][]string) {
	t.Helper()
	for _, k := range keys {
		p.body(exchange, k, k)
	}
	for q, want := range queues {
		equalStrings(t, "messages in "+q, getBodies(t, ch, q), want)
	}
}

func TestDirectRouting(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, "direct", nil)
	qa, qb, qa2, qEmpty := declareQueue(t, ch, nil), declareQueue(t, ch, nil), declareQueue(t, ch, nil), declareQueue(t, ch, nil)
	bind(t, ch, qa, "a", x, nil)
	bind(t, ch, qb, "b", x, nil)
	bind(t, ch, qb, "B", x, nil)
	bind(t, ch, qa2, "a", x, nil)
	bind(t, ch, qEmpty, "", x, nil)
	p := newPublisher(t, conn)
	routeTable(t, ch, p, x, []string{"a", "b", "B", "", "a.b", "A", "c"}, map[string][]string{
		qa:     {"a"},
		qa2:    {"a"},
		qb:     {"b", "B"},
		qEmpty: {""},
	})
	p.publish(x, "c", true, amqp.Publishing{Body: []byte("c")})
	if r, ok := p.returned(); !ok || r.ReplyCode != amqp.NoRoute || r.RoutingKey != "c" {
		t.Errorf("unmatched key: return %+v %v, want 312 NO_ROUTE", r, ok)
	}
}

func TestFanoutRouting(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, "fanout", nil)
	q1, q2, q3 := declareQueue(t, ch, nil), declareQueue(t, ch, nil), declareQueue(t, ch, nil)
	bind(t, ch, q1, "", x, nil)
	bind(t, ch, q2, "some.key", x, nil)
	bind(t, ch, q3, "#", x, nil)
	p := newPublisher(t, conn)
	keys := []string{"", "some.key", "other", "#"}
	routeTable(t, ch, p, x, keys, map[string][]string{q1: keys, q2: keys, q3: keys})

	// With nothing bound, a mandatory message comes back.
	empty := declareExchange(t, ch, "fanout", nil)
	p.publish(empty, "k", true, amqp.Publishing{Body: []byte("lost")})
	if _, ok := p.returned(); !ok {
		t.Error("mandatory publish to an unbound fanout exchange was not returned")
	}
}

func TestTopicRouting(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, "topic", nil)
	// The empty key has no words at all, while "a." has two, the second one empty.
	keys := []string{"", "a", "b", "a.b", "a.b.c", "a.b.c.d", "a.c", "b.a", "ab", "a.", ".", "a..b", "a.x.y.b", "x.a.y", "c", "A"}
	want := map[string][]string{}
	for _, c := range []struct {
		pattern string
		matches []string
	}{
		{"a.b.c", []string{"a.b.c"}},
		{"*.b.*", []string{"a.b.c"}},
		{"a.#", []string{"a", "a.b", "a.b.c", "a.b.c.d", "a.c", "a.", "a..b", "a.x.y.b"}},
		{"#", keys},
		{"#.#", keys},
		{"*.#", keys[1:]},
		{"#.c", []string{"a.b.c", "a.c", "c"}},
		{"a.*.#", []string{"a.b", "a.b.c", "a.b.c.d", "a.c", "a.", "a..b", "a.x.y.b"}},
		{"*", []string{"a", "b", "ab", "c", "A"}},
		{"a.*", []string{"a.b", "a.c", "a."}},
		{"a.#.b", []string{"a.b", "a..b", "a.x.y.b"}},
		{"#.a.#", []string{"a", "a.b", "a.b.c", "a.b.c.d", "a.c", "b.a", "a.", "a..b", "a.x.y.b", "x.a.y"}},
		{"", []string{""}},
		{"*.*", []string{"a.b", "a.c", "b.a", "a.", "."}},
		{"a..b", []string{"a..b"}},
		{"a.*.b", []string{"a..b"}},
		{"A", []string{"A"}},
		{"*.*.*.*.*", nil},
	} {
		q := declareLabeledQueue(t, ch, "pattern["+c.pattern+"]", nil)
		bind(t, ch, q, c.pattern, x, nil)
		want[q] = c.matches
	}
	routeTable(t, ch, newPublisher(t, conn), x, keys, want)
}

// TestHeadersRouting: x-match all (the default) and any ignore binding arguments that start
// with "x-"; all-with-x and any-with-x match them too. A void binding value means "present with
// any value". Values compare as RabbitMQ does: numbers by value whatever their width (and an
// integer equals a float of the same value), a byte array equals a string of the same bytes,
// a boolean equals no number.
func TestHeadersRouting(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, "headers", nil)
	messages := []struct {
		body    string
		headers amqp.Table
	}{
		{"m1", amqp.Table{"a": int32(1), "b": "x"}},
		{"m2", amqp.Table{"a": int32(1)}},
		{"m3", amqp.Table{"b": "x", "c": "z"}},
		{"m4", amqp.Table{"a": "1", "b": "x"}},
		{"m5", amqp.Table{"x-k": "v"}},
		{"m6", nil},
		{"m7", amqp.Table{"a": int64(1), "b": []byte("x")}},
		{"m8", amqp.Table{"a": float64(1), "b": "x"}},
		{"m9", amqp.Table{"a": true, "b": "x"}},
		{"m10", amqp.Table{"a": nil, "b": "x"}},
		{"m11", amqp.Table{"a": int8(1), "b": "x", "extra": "ignored"}},
		{"m12", amqp.Table{"a": int32(2), "b": "x"}},
	}
	all := []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10", "m11", "m12"}
	want := map[string][]string{}
	for _, c := range []struct {
		name    string
		args    amqp.Table
		matches []string
	}{
		{"all", amqp.Table{"x-match": "all", "a": int32(1), "b": "x"}, []string{"m1", "m7", "m8", "m11"}},
		{"default is all", amqp.Table{"a": int32(1), "b": "x"}, []string{"m1", "m7", "m8", "m11"}},
		{"any", amqp.Table{"x-match": "any", "a": int32(1), "b": "x"}, []string{"m1", "m2", "m3", "m4", "m7", "m8", "m9", "m10", "m11", "m12"}},
		{"void means present", amqp.Table{"x-match": "all", "a": nil}, []string{"m1", "m2", "m4", "m7", "m8", "m9", "m10", "m11", "m12"}},
		{"all-with-x", amqp.Table{"x-match": "all-with-x", "x-k": "v"}, []string{"m5"}},
		{"all ignores x-", amqp.Table{"x-match": "all", "x-k": "v"}, all},
		{"any-with-x", amqp.Table{"x-match": "any-with-x", "x-k": "v", "c": "z"}, []string{"m3", "m5"}},
		{"any ignores x-", amqp.Table{"x-match": "any", "x-k": "v"}, nil},
		{"no arguments", nil, all},
		{"string equals bytes", amqp.Table{"b": []byte("x"), "c": "z"}, []string{"m3"}},
		{"bool", amqp.Table{"a": true}, []string{"m9"}},
		{"wider integer", amqp.Table{"a": int64(2)}, []string{"m12"}},
	} {
		q := declareLabeledQueue(t, ch, c.name, nil)
		bind(t, ch, q, "ignored", x, c.args)
		want[q] = c.matches
	}
	p := newPublisher(t, conn)
	for _, m := range messages {
		p.publish(x, "any-key", false, amqp.Publishing{Headers: m.headers, Body: []byte(m.body)})
	}
	for q, w := range want {
		equalStrings(t, "messages in "+q, getBodies(t, ch, q), w)
	}
}

func TestHeadersBindingValidation(t *testing.T) {
	t.Parallel()
	_, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	closes := notifyClose(ch)
	err := ch.QueueBind(q, "", "amq.headers", false, amqp.Table{"x-match": "some"})
	wantError(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - Invalid x-match field value")
	wantClosed(t, closes, amqp.PreconditionFailed, "PRECONDITION_FAILED")
}

// TestDeliveredOnce: a queue that several bindings (or paths) match gets one copy.
func TestDeliveredOnce(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	p := newPublisher(t, conn)

	topic := declareExchange(t, ch, "topic", nil)
	headers := declareExchange(t, ch, "headers", nil)
	fanout := declareExchange(t, ch, "fanout", nil)
	q := declareQueue(t, ch, nil)
	for _, k := range []string{"a.b", "a.*", "#", "*.b"} {
		bind(t, ch, q, k, topic, nil)
	}
	bind(t, ch, q, "", headers, amqp.Table{"x-match": "any", "h": "1"})
	bind(t, ch, q, "", headers, amqp.Table{"x-match": "all", "h": "1", "i": "2"})
	// Two paths from fanout to q: directly and through topic.
	bind(t, ch, q, "", fanout, nil)
	if err := ch.ExchangeBind(topic, "", fanout, false, nil); err != nil {
		t.Fatal(err)
	}

	p.body(topic, "a.b", "topic")
	p.publish(headers, "", false, amqp.Publishing{Headers: amqp.Table{"h": "1", "i": "2"}, Body: []byte("headers")})
	p.body(fanout, "a.b", "fanout")
	equalStrings(t, "copies", getBodies(t, ch, q), []string{"topic", "headers", "fanout"})
}

// TestSenderSelectedDistribution: CC and BCC headers (arrays of strings) add routing keys; the
// broker strips BCC before delivery and keeps CC.
func TestSenderSelectedDistribution(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, "direct", nil)
	q1, q2, q3, q4 := declareQueue(t, ch, nil), declareQueue(t, ch, nil), declareQueue(t, ch, nil), declareQueue(t, ch, nil)
	bind(t, ch, q1, "k1", x, nil)
	bind(t, ch, q2, "k2", x, nil)
	bind(t, ch, q3, "k3", x, nil)
	bind(t, ch, q4, "k4", x, nil)
	p := newPublisher(t, conn)
	p.publish(x, "k1", false, amqp.Publishing{
		Headers: amqp.Table{"CC": []any{"k2", "k1"}, "BCC": []any{"k3"}, "other": "kept"},
		Body:    []byte("ssd"),
	})
	for _, q := range []string{q1, q2, q3} {
		d := get(t, ch, q, true)
		if string(d.Body) != "ssd" || d.RoutingKey != "k1" || d.Exchange != x {
			t.Errorf("%s: got %q via %q/%q, want ssd via %s/k1", q, d.Body, d.Exchange, d.RoutingKey, x)
		}
		if _, ok := d.Headers["BCC"]; ok {
			t.Errorf("%s: BCC header delivered: %v", q, d.Headers)
		}
		cc, ok := d.Headers["CC"].([]any)
		if !ok || len(cc) != 2 || cc[0] != "k2" || cc[1] != "k1" {
			t.Errorf("%s: CC header = %#v, want [k2 k1]", q, d.Headers["CC"])
		}
		if d.Headers["other"] != "kept" {
			t.Errorf("%s: other header = %#v, want kept", q, d.Headers["other"])
		}
		wantEmpty(t, ch, q) // once only, though k1 is both the key and in CC
	}
	wantMessages(t, ch, q4, 0)

	// CC alone makes a mandatory message routable; so does BCC.
	p.publish(x, "nowhere", true, amqp.Publishing{Headers: amqp.Table{"CC": []any{"k4"}}, Body: []byte("cc")})
	p.publish(x, "nowhere", true, amqp.Publishing{Headers: amqp.Table{"BCC": []any{"k4"}}, Body: []byte("bcc")})
	if r, ok := p.returned(); ok {
		t.Errorf("returned %q though CC/BCC routed it", r.Body)
	}
	equalStrings(t, "q4", getBodies(t, ch, q4), []string{"cc", "bcc"})

	// Through the default exchange, CC names queues.
	p.publish("", q1, false, amqp.Publishing{Headers: amqp.Table{"CC": []any{q2}}, Body: []byte("default")})
	equalStrings(t, "q1", getBodies(t, ch, q1), []string{"default"})
	equalStrings(t, "q2", getBodies(t, ch, q2), []string{"default"})
}
