package conformance

import (
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestDefaultExchange(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	p := newPublisher(t, conn)
	p.body("", q, "by name")
	p.publish("", uniqueName(t, "nobody"), true, amqp.Publishing{Body: []byte("lost")})
	if r, ok := p.returned(); !ok || r.ReplyCode != amqp.NoRoute {
		t.Errorf("mandatory publish to a missing queue name: return %+v %v, want 312", r, ok)
	}
	d := get(t, ch, q, true)
	if string(d.Body) != "by name" || d.Exchange != "" || d.RoutingKey != q {
		t.Errorf("got %q via %q/%q, want %q via the default exchange with key %q", d.Body, d.Exchange, d.RoutingKey, "by name", q)
	}
	wantEmpty(t, ch, q)
}

// TestReservedExchanges: the default exchange cannot be declared, deleted or bound, and new
// amq.* names cannot be declared. An equivalent redeclare of a predeclared amq.* exchange is fine.
func TestReservedExchanges(t *testing.T) {
	t.Parallel()
	const defaultRefused = "ACCESS_REFUSED - operation not permitted on the default exchange"
	cases := []struct {
		name   string
		do     func(t *testing.T, ch *amqp.Channel) error
		prefix string
	}{
		{"declare amq.new", func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeDeclare("amq.conformance-"+uniqueName(t, "x"), "direct", false, true, false, false, nil)
		}, "ACCESS_REFUSED - exchange name 'amq.conformance-"},
		{"declare default", func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeDeclare("", "direct", true, false, false, false, nil)
		}, defaultRefused},
		{"passive declare default", func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeDeclarePassive("", "direct", true, false, false, false, nil)
		}, defaultRefused},
		{"delete default", func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeDelete("", false, false)
		}, defaultRefused},
		{"delete amq.direct", func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeDelete("amq.direct", false, false)
		}, "ACCESS_REFUSED - "},
		{"delete amq.topic", func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeDelete("amq.topic", false, false)
		}, "ACCESS_REFUSED - "},
		{"bind queue to default", func(t *testing.T, ch *amqp.Channel) error {
			return ch.QueueBind(declareQueue(t, ch, nil), "k", "", false, nil)
		}, defaultRefused},
		{"unbind queue from default", func(t *testing.T, ch *amqp.Channel) error {
			q := declareQueue(t, ch, nil)
			return ch.QueueUnbind(q, q, "", nil)
		}, defaultRefused},
		{"exchange bind to default", func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeBind("", "k", "amq.direct", false, nil)
		}, defaultRefused},
		{"exchange bind from default", func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeBind("amq.fanout", "k", "", false, nil)
		}, defaultRefused},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, ch := connChannel(t)
			closes := notifyClose(ch)
			wantError(t, c.do(t, ch), amqp.AccessRefused, c.prefix)
			wantClosed(t, closes, amqp.AccessRefused, c.prefix)
		})
	}
	t.Run("redeclare amq.direct", func(t *testing.T) {
		t.Parallel()
		_, ch := connChannel(t)
		if err := ch.ExchangeDeclare("amq.direct", "direct", true, false, false, false, nil); err != nil {
			t.Errorf("equivalent redeclare of amq.direct: %v", err)
		}
		err := ch.ExchangeDeclare("amq.direct", "fanout", true, false, false, false, nil)
		wantError(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in vhost '/': received 'fanout' but current is 'direct'")
	})
}

func TestPredeclaredExchanges(t *testing.T) {
	t.Parallel()
	_, ch := connChannel(t)
	for name, kind := range map[string]string{
		"amq.direct":  "direct",
		"amq.fanout":  "fanout",
		"amq.topic":   "topic",
		"amq.headers": "headers",
		"amq.match":   "headers",
	} {
		if err := ch.ExchangeDeclarePassive(name, kind, true, false, false, false, nil); err != nil {
			t.Fatalf("passive declare %s: %v", name, err)
		}
		// They are durable: an equivalent full declare succeeds.
		if err := ch.ExchangeDeclare(name, kind, true, false, false, false, nil); err != nil {
			t.Fatalf("declare %s %s durable: %v", kind, name, err)
		}
	}
	// Predeclared exchanges route like any other, and bindings to them can be removed.
	conn := dial(t)
	q := declareQueue(t, ch, nil)
	bindings := []struct {
		exchange, key string
		args          amqp.Table
	}{
		{"amq.direct", "pre.key", nil},
		{"amq.topic", "pre.*", nil},
		{"amq.fanout", "", nil},
		{"amq.headers", "", amqp.Table{"x-match": "any", "pre": "h"}},
		{"amq.match", "", amqp.Table{"pre": "m"}},
	}
	for _, b := range bindings {
		bind(t, ch, q, b.key, b.exchange, b.args)
	}
	p := newPublisher(t, conn)
	p.body("amq.direct", "pre.key", "direct")
	p.body("amq.topic", "pre.topic", "topic")
	p.body("amq.fanout", "ignored", "fanout")
	p.publish("amq.headers", "", false, amqp.Publishing{Headers: amqp.Table{"pre": "h"}, Body: []byte("headers")})
	p.publish("amq.match", "", false, amqp.Publishing{Headers: amqp.Table{"pre": "m"}, Body: []byte("match")})
	equalStrings(t, "bodies", getBodies(t, ch, q), []string{"direct", "topic", "fanout", "headers", "match"})
	for _, b := range bindings {
		if err := ch.QueueUnbind(q, b.key, b.exchange, b.args); err != nil {
			t.Errorf("unbind from %s: %v", b.exchange, err)
		}
	}
	p.body("amq.fanout", "", "after unbind")
	wantMessages(t, ch, q, 0)
}

func TestExchangeDeclare(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"direct", "fanout", "topic", "headers"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			_, ch := connChannel(t)
			name := declareExchange(t, ch, kind, nil)
			if err := ch.ExchangeDeclare(name, kind, false, false, false, false, nil); err != nil {
				t.Errorf("equivalent redeclare: %v", err)
			}
			if err := ch.ExchangeDeclarePassive(name, kind, false, false, false, false, nil); err != nil {
				t.Errorf("passive declare: %v", err)
			}
			// A passive declare ignores every field but the name.
			if err := ch.ExchangeDeclarePassive(name, "fanout", true, true, true, false, amqp.Table{"x": 1}); err != nil {
				t.Errorf("passive declare with other fields: %v", err)
			}
			durable := uniqueName(t, "durable")
			if err := ch.ExchangeDeclare(durable, kind, true, false, false, false, nil); err != nil {
				t.Fatalf("declare durable: %v", err)
			}
			deleteExchangeLater(t, durable)
			if err := ch.ExchangeDeclare(durable, kind, true, false, false, true, nil); err != nil {
				t.Errorf("no-wait redeclare: %v", err)
			}
			if err := ch.ExchangeDeclarePassive(durable, kind, true, false, false, false, nil); err != nil {
				t.Errorf("passive after no-wait: %v", err)
			}
		})
	}
}

func TestExchangeDeclareErrors(t *testing.T) {
	t.Parallel()
	t.Run("passive missing", func(t *testing.T) {
		t.Parallel()
		_, ch := connChannel(t)
		name := uniqueName(t, "missing")
		closes := notifyClose(ch)
		err := ch.ExchangeDeclarePassive(name, "direct", false, false, false, false, nil)
		wantError(t, err, amqp.NotFound, "NOT_FOUND - no exchange '"+name+"' in vhost '/'")
		wantClosed(t, closes, amqp.NotFound, "NOT_FOUND - no exchange")
	})
	for _, c := range []struct {
		name         string
		first, again func(ch *amqp.Channel, name string) error
		text         string
	}{
		{"type", func(ch *amqp.Channel, n string) error {
			return ch.ExchangeDeclare(n, "direct", false, false, false, false, nil)
		}, func(ch *amqp.Channel, n string) error {
			return ch.ExchangeDeclare(n, "topic", false, false, false, false, nil)
		}, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' in vhost '/': received 'topic' but current is 'direct'"},
		{"durable", func(ch *amqp.Channel, n string) error {
			return ch.ExchangeDeclare(n, "direct", false, false, false, false, nil)
		}, func(ch *amqp.Channel, n string) error {
			return ch.ExchangeDeclare(n, "direct", true, false, false, false, nil)
		}, "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '%s' in vhost '/': received 'true' but current is 'false'"},
		{"auto_delete", func(ch *amqp.Channel, n string) error {
			return ch.ExchangeDeclare(n, "fanout", false, false, false, false, nil)
		}, func(ch *amqp.Channel, n string) error {
			return ch.ExchangeDeclare(n, "fanout", false, true, false, false, nil)
		}, "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for exchange '%s' in vhost '/': received 'true' but current is 'false'"},
		{"internal", func(ch *amqp.Channel, n string) error {
			return ch.ExchangeDeclare(n, "topic", false, false, false, false, nil)
		}, func(ch *amqp.Channel, n string) error {
			return ch.ExchangeDeclare(n, "topic", false, false, true, false, nil)
		}, "PRECONDITION_FAILED - inequivalent arg 'internal' for exchange '%s' in vhost '/': received 'true' but current is 'false'"},
		{"alternate-exchange", func(ch *amqp.Channel, n string) error {
			return ch.ExchangeDeclare(n, "direct", false, false, false, false, amqp.Table{"alternate-exchange": "a"})
		}, func(ch *amqp.Channel, n string) error {
			return ch.ExchangeDeclare(n, "direct", false, false, false, false, amqp.Table{"alternate-exchange": "b"})
		}, "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '%s' in vhost '/': received 'b' but current is 'a'"},
	} {
		t.Run("redeclare "+c.name, func(t *testing.T) {
			t.Parallel()
			_, ch := connChannel(t)
			name := uniqueName(t, "x")
			if err := c.first(ch, name); err != nil {
				t.Fatalf("first declare: %v", err)
			}
			deleteExchangeLater(t, name)
			closes := notifyClose(ch)
			text := fmt.Sprintf(c.text, name)
			wantError(t, c.again(ch, name), amqp.PreconditionFailed, text)
			wantClosed(t, closes, amqp.PreconditionFailed, text)
		})
	}
	t.Run("unknown type", func(t *testing.T) {
		t.Parallel()
		conn, ch := connChannel(t)
		other := channel(t, conn)
		closes := notifyConnClose(conn)
		otherCloses := notifyClose(other)
		err := ch.ExchangeDeclare(uniqueName(t, "x"), "no-such-type", false, true, false, false, nil)
		wantError(t, err, amqp.CommandInvalid, "COMMAND_INVALID - unknown exchange type 'no-such-type'")
		wantClosed(t, closes, amqp.CommandInvalid, "COMMAND_INVALID - unknown exchange type 'no-such-type'")
		wantClosed(t, otherCloses, amqp.CommandInvalid, "COMMAND_INVALID")
	})
}

func TestExchangeDelete(t *testing.T) {
	t.Parallel()
	_, ch := connChannel(t)
	x := declareExchange(t, ch, "direct", nil)
	if err := ch.ExchangeDelete(x, false, false); err != nil {
		t.Fatalf("delete: %v", err)
	}
	closes := notifyClose(ch)
	err := ch.ExchangeDeclarePassive(x, "direct", false, false, false, false, nil)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no exchange '"+x+"'")
	wantClosed(t, closes, amqp.NotFound, "NOT_FOUND")

	// Deleting a missing exchange succeeds, with or without if-unused.
	ch = channel(t, dial(t))
	if err := ch.ExchangeDelete(uniqueName(t, "missing"), false, false); err != nil {
		t.Errorf("delete missing exchange: %v", err)
	}
	if err := ch.ExchangeDelete(uniqueName(t, "missing"), true, false); err != nil {
		t.Errorf("delete missing exchange if-unused: %v", err)
	}

	// Deleting an exchange removes its bindings: a new exchange of the same name routes nowhere.
	x = declareExchange(t, ch, "fanout", nil)
	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "", x, nil)
	if err := ch.ExchangeDelete(x, false, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(x, "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, dial(t))
	p.publish(x, "", true, amqp.Publishing{Body: []byte("after")})
	if _, ok := p.returned(); !ok {
		t.Error("an exchange recreated after delete kept the old bindings")
	}
	wantMessages(t, ch, q, 0)
}

func TestExchangeDeleteIfUnused(t *testing.T) {
	t.Parallel()
	_, ch := connChannel(t)
	x := declareExchange(t, ch, "direct", nil)
	if err := ch.ExchangeDelete(x, true, false); err != nil {
		t.Fatalf("delete if-unused without bindings: %v", err)
	}

	for name, bindIt := range map[string]func(ch *amqp.Channel, x string){
		"queue bound": func(ch *amqp.Channel, x string) { bind(t, ch, declareQueue(t, ch, nil), "k", x, nil) },
		// Being the source of an exchange-to-exchange binding counts as use.
		"exchange bound": func(ch *amqp.Channel, x string) {
			if err := ch.ExchangeBind(declareExchange(t, ch, "fanout", nil), "k", x, false, nil); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, ch := connChannel(t)
			x := declareExchange(t, ch, "direct", nil)
			bindIt(ch, x)
			closes := notifyClose(ch)
			text := "PRECONDITION_FAILED - exchange '" + x + "' in vhost '/' in use"
			wantError(t, ch.ExchangeDelete(x, true, false), amqp.PreconditionFailed, text)
			wantClosed(t, closes, amqp.PreconditionFailed, text)
			ch = channel(t, dial(t))
			if err := ch.ExchangeDeclarePassive(x, "direct", false, false, false, false, nil); err != nil {
				t.Errorf("the exchange is gone after a refused delete: %v", err)
			}
		})
	}
}

func TestAutoDeleteExchange(t *testing.T) {
	t.Parallel()
	_, ch := connChannel(t)
	x := uniqueName(t, "ad")
	if err := ch.ExchangeDeclare(x, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	deleteExchangeLater(t, x)
	q1, q2 := declareQueue(t, ch, nil), declareQueue(t, ch, nil)
	bind(t, ch, q1, "a", x, nil)
	bind(t, ch, q2, "b", x, nil)
	if err := ch.QueueUnbind(q1, "a", x, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclarePassive(x, "direct", false, true, false, false, nil); err != nil {
		t.Fatalf("auto-delete exchange gone while still bound: %v", err)
	}
	if err := ch.QueueUnbind(q2, "b", x, nil); err != nil {
		t.Fatal(err)
	}
	closes := notifyClose(ch)
	err := ch.ExchangeDeclarePassive(x, "direct", false, true, false, false, nil)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no exchange '"+x+"'")
	wantClosed(t, closes, amqp.NotFound, "NOT_FOUND")
}

func TestInternalExchange(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	internal := uniqueName(t, "internal")
	if err := ch.ExchangeDeclare(internal, "fanout", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	deleteExchangeLater(t, internal)
	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "", internal, nil)

	// Reachable through an exchange-to-exchange binding…
	front := declareExchange(t, ch, "fanout", nil)
	if err := ch.ExchangeBind(internal, "", front, false, nil); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, conn)
	p.body(front, "", "via front")
	equalStrings(t, "bodies", getBodies(t, ch, q), []string{"via front"})

	// …but not directly.
	pub := channel(t, conn)
	closes := notifyClose(pub)
	if err := pub.Publish(internal, "", false, false, amqp.Publishing{Body: []byte("direct")}); err != nil {
		t.Fatal(err)
	}
	text := "ACCESS_REFUSED - cannot publish to internal exchange '" + internal + "' in vhost '/'"
	wantClosed(t, closes, amqp.AccessRefused, text)
	wantMessages(t, ch, q, 0)
}

func TestExchangeToExchange(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	p := newPublisher(t, conn)

	t.Run("bind and unbind", func(t *testing.T) {
		src := declareExchange(t, ch, "direct", nil)
		dst := declareExchange(t, ch, "fanout", nil)
		q := declareQueue(t, ch, nil)
		bind(t, ch, q, "", dst, nil)
		if err := ch.ExchangeBind(dst, "k", src, false, nil); err != nil {
			t.Fatal(err)
		}
		p.body(src, "k", "bound")
		p.body(src, "other", "wrong key")
		if err := ch.ExchangeUnbind(dst, "k", src, false, nil); err != nil {
			t.Fatal(err)
		}
		p.body(src, "k", "unbound")
		equalStrings(t, "bodies", getBodies(t, ch, q), []string{"bound"})
		// Unbinding again, or a binding that never was, succeeds.
		if err := ch.ExchangeUnbind(dst, "k", src, false, nil); err != nil {
			t.Errorf("unbind of a missing exchange binding: %v", err)
		}
	})

	t.Run("chain", func(t *testing.T) {
		a := declareExchange(t, ch, "topic", nil)
		b := declareExchange(t, ch, "direct", nil)
		c := declareExchange(t, ch, "fanout", nil)
		qa, qc := declareQueue(t, ch, nil), declareQueue(t, ch, nil)
		bind(t, ch, qa, "#", a, nil)
		bind(t, ch, qc, "", c, nil)
		if err := ch.ExchangeBind(b, "*.x", a, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.ExchangeBind(c, "k.x", b, false, nil); err != nil {
			t.Fatal(err)
		}
		p.body(a, "k.x", "through") // a → b (matches *.x) → c (exact k.x)
		p.body(a, "j.x", "stops at b")
		p.body(a, "k.y", "stops at a")
		equalStrings(t, "first queue", getBodies(t, ch, qa), []string{"through", "stops at b", "stops at a"})
		equalStrings(t, "end of chain", getBodies(t, ch, qc), []string{"through"})
	})

	t.Run("cycle", func(t *testing.T) {
		a := declareExchange(t, ch, "fanout", nil)
		b := declareExchange(t, ch, "fanout", nil)
		qa, qb := declareQueue(t, ch, nil), declareQueue(t, ch, nil)
		bind(t, ch, qa, "", a, nil)
		bind(t, ch, qb, "", b, nil)
		for _, e := range [][2]string{{b, a}, {a, b}, {a, a}} {
			if err := ch.ExchangeBind(e[0], "", e[1], false, nil); err != nil {
				t.Fatal(err)
			}
		}
		p.body(a, "", "once")
		p.body(b, "", "twice")
		equalStrings(t, "queue on a", getBodies(t, ch, qa), []string{"once", "twice"})
		equalStrings(t, "queue on b", getBodies(t, ch, qb), []string{"once", "twice"})
	})

	for name, ends := range map[string]func(x, missing string) (dst, src string){
		"missing source":      func(x, missing string) (string, string) { return x, missing },
		"missing destination": func(x, missing string) (string, string) { return missing, x },
	} {
		t.Run(name, func(t *testing.T) {
			_, ch := connChannel(t)
			missing := uniqueName(t, "missing")
			dst, src := ends(declareExchange(t, ch, "direct", nil), missing)
			closes := notifyClose(ch)
			text := "NOT_FOUND - no exchange '" + missing + "' in vhost '/'"
			wantError(t, ch.ExchangeBind(dst, "k", src, false, nil), amqp.NotFound, text)
			wantClosed(t, closes, amqp.NotFound, text)
		})
	}
}

func TestAlternateExchange(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	ae := declareExchange(t, ch, "fanout", nil)
	unrouted := declareQueue(t, ch, nil)
	bind(t, ch, unrouted, "", ae, nil)
	x := declareExchange(t, ch, "direct", amqp.Table{"alternate-exchange": ae})
	routed := declareQueue(t, ch, nil)
	bind(t, ch, routed, "known", x, nil)

	p := newPublisher(t, conn)
	p.publish(x, "known", true, amqp.Publishing{Body: []byte("routed")})
	p.publish(x, "unknown", true, amqp.Publishing{Body: []byte("to ae")})
	if r, ok := p.returned(); ok {
		t.Errorf("mandatory message taken by the alternate exchange was returned: %+v", r)
	}
	equalStrings(t, "routed queue", getBodies(t, ch, routed), []string{"routed"})
	d := get(t, ch, unrouted, true)
	if string(d.Body) != "to ae" || d.Exchange != x || d.RoutingKey != "unknown" {
		t.Errorf("via the alternate exchange got %q from %q/%q, want %q from %q/%q", d.Body, d.Exchange, d.RoutingKey, "to ae", x, "unknown")
	}

	// An alternate exchange that routes nowhere: the message is returned after all.
	empty := declareExchange(t, ch, "fanout", nil)
	y := declareExchange(t, ch, "direct", amqp.Table{"alternate-exchange": empty})
	p.publish(y, "k", true, amqp.Publishing{Body: []byte("nowhere")})
	if r, ok := p.returned(); !ok || r.ReplyCode != amqp.NoRoute || string(r.Body) != "nowhere" || r.Exchange != y {
		t.Errorf("return %+v %v, want 312 NO_ROUTE from %s", r, ok, y)
	}

	// A missing alternate exchange is as good as none.
	z := declareExchange(t, ch, "direct", amqp.Table{"alternate-exchange": uniqueName(t, "missing")})
	p.publish(z, "k", true, amqp.Publishing{Body: []byte("missing ae")})
	if r, ok := p.returned(); !ok || r.ReplyCode != amqp.NoRoute {
		t.Errorf("return %+v %v, want 312 NO_ROUTE", r, ok)
	}
}
