package conformance

import (
	"fmt"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestQueueDeclare(t *testing.T) {
	t.Parallel()
	_, ch := connChannel(t)

	t.Run("server-named", func(t *testing.T) {
		q1, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		q2, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []amqp.Queue{q1, q2} {
			if !strings.HasPrefix(q.Name, "amq.gen-") || len(q.Name) <= len("amq.gen-") {
				t.Errorf("server-generated name %q, want the amq.gen- prefix", q.Name)
			}
			if q.Messages != 0 || q.Consumers != 0 {
				t.Errorf("declare-ok %+v, want no messages and no consumers", q)
			}
		}
		if q1.Name == q2.Name {
			t.Errorf("two server-named queues share the name %q", q1.Name)
		}
		if _, err := ch.QueueDeclarePassive(q1.Name, false, true, true, false, nil); err != nil {
			t.Errorf("passive declare of the generated name: %v", err)
		}
	})

	t.Run("named", func(t *testing.T) {
		name := declareQueue(t, ch, nil)
		q, err := ch.QueueDeclare(name, false, false, false, false, nil)
		if err != nil || q.Name != name {
			t.Errorf("equivalent redeclare: %+v, %v", q, err)
		}
		// A passive declare ignores every field but the name.
		if _, err := ch.QueueDeclarePassive(name, true, true, false, false, amqp.Table{"x-max-length": int32(1)}); err != nil {
			t.Errorf("passive declare with other fields: %v", err)
		}
	})

	t.Run("durable", func(t *testing.T) {
		name := uniqueName(t, "durable")
		if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		deleteQueueLater(t, name)
		if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
			t.Errorf("redeclare durable: %v", err)
		}
	})

	t.Run("argument equivalence across integer widths", func(t *testing.T) {
		name := declareQueue(t, ch, amqp.Table{"x-max-length": int32(5)})
		if _, err := ch.QueueDeclare(name, false, false, false, false, amqp.Table{"x-max-length": int64(5)}); err != nil {
			t.Errorf("redeclare with x-max-length as int64: %v", err)
		}
	})

	t.Run("no-wait", func(t *testing.T) {
		name := uniqueName(t, "nowait")
		if _, err := ch.QueueDeclare(name, false, false, false, true, nil); err != nil {
			t.Fatal(err)
		}
		deleteQueueLater(t, name)
		if _, err := ch.QueueDeclarePassive(name, false, false, false, false, nil); err != nil {
			t.Errorf("passive declare after a no-wait declare: %v", err)
		}
	})
}

func TestQueueDeclareErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		do     func(t *testing.T, ch *amqp.Channel) (queue string, err error)
		code   int
		prefix string // %s is the queue name
	}{
		{"passive missing", func(t *testing.T, ch *amqp.Channel) (string, error) {
			n := uniqueName(t, "missing")
			_, err := ch.QueueDeclarePassive(n, false, false, false, false, nil)
			return n, err
		}, amqp.NotFound, "NOT_FOUND - no queue '%s' in vhost '/'"},
		{"reserved prefix", func(t *testing.T, ch *amqp.Channel) (string, error) {
			n := "amq." + uniqueName(t, "q")
			_, err := ch.QueueDeclare(n, false, true, false, false, nil)
			return n, err
		}, amqp.AccessRefused, "ACCESS_REFUSED - queue name '%s' contains reserved prefix 'amq.*'"},
		{"durable mismatch", func(t *testing.T, ch *amqp.Channel) (string, error) {
			n := declareQueue(t, ch, nil)
			_, err := ch.QueueDeclare(n, true, false, false, false, nil)
			return n, err
		}, amqp.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/': received 'true' but current is 'false'"},
		{"auto-delete mismatch", func(t *testing.T, ch *amqp.Channel) (string, error) {
			n := declareQueue(t, ch, nil)
			_, err := ch.QueueDeclare(n, false, true, false, false, nil)
			return n, err
		}, amqp.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '%s' in vhost '/': received 'true' but current is 'false'"},
		{"argument mismatch", func(t *testing.T, ch *amqp.Channel) (string, error) {
			n := declareQueue(t, ch, amqp.Table{"x-max-length": int32(5)})
			_, err := ch.QueueDeclare(n, false, false, false, false, amqp.Table{"x-max-length": int32(6)})
			return n, err
		}, amqp.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '%s' in vhost '/': received '6' but current is '5'"},
		{"exclusive mismatch", func(t *testing.T, ch *amqp.Channel) (string, error) {
			n := declareQueue(t, ch, nil)
			_, err := ch.QueueDeclare(n, false, false, true, false, nil)
			return n, err
		}, amqp.ResourceLocked, "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, ch := connChannel(t)
			closes := notifyClose(ch)
			q, err := c.do(t, ch)
			text := fmt.Sprintf(c.prefix, q)
			wantError(t, err, c.code, text)
			wantClosed(t, closes, c.code, text)
		})
	}
}

func TestExclusiveQueue(t *testing.T) {
	t.Parallel()
	owner := dial(t)
	och := channel(t, owner)
	name := uniqueName(t, "exclusive")
	if _, err := och.QueueDeclare(name, false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	deleteQueueLater(t, name)

	// Another channel of the owning connection may use it; closing a channel does not delete it.
	other := channel(t, owner)
	if _, err := other.QueueDeclare(name, false, false, true, false, nil); err != nil {
		t.Errorf("redeclare on another channel of the owner: %v", err)
	}
	if err := other.Publish("", name, false, false, amqp.Publishing{Body: []byte("mine")}); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if d := get(t, och, name, true); string(d.Body) != "mine" {
		t.Errorf("got %q, want mine", d.Body)
	}

	locked := "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + name + "' in vhost '/'"
	stranger := dial(t)
	for op, do := range map[string]func(ch *amqp.Channel) error{
		"passive declare": func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(name, false, false, true, false, nil)
			return err
		},
		"declare": func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(name, false, false, true, false, nil)
			return err
		},
		"consume": func(ch *amqp.Channel) error {
			_, err := ch.Consume(name, "", false, false, false, false, nil)
			return err
		},
		"get": func(ch *amqp.Channel) error {
			_, _, err := ch.Get(name, true)
			return err
		},
		"purge": func(ch *amqp.Channel) error {
			_, err := ch.QueuePurge(name, false)
			return err
		},
		"bind": func(ch *amqp.Channel) error { return ch.QueueBind(name, "k", "amq.direct", false, nil) },
		"delete": func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(name, false, false, false)
			return err
		},
	} {
		ch := channel(t, stranger)
		closes := notifyClose(ch)
		err := do(ch)
		if err == nil {
			t.Errorf("%s from another connection succeeded", op)
			continue
		}
		wantError(t, err, amqp.ResourceLocked, locked)
		wantClosed(t, closes, amqp.ResourceLocked, "RESOURCE_LOCKED")
	}

	// Closing the owner deletes the queue.
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	ch := channel(t, stranger)
	_, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue '"+name+"'")
}

func TestAutoDeleteQueue(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	name := uniqueName(t, "autodelete")
	if _, err := ch.QueueDeclare(name, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	deleteQueueLater(t, name)
	// Never consumed: it stays.
	wantConsumers(t, ch, name, 0)

	c1 := channel(t, conn)
	consume(t, c1, name, "first", false)
	consume(t, ch, name, "second", false)
	wantConsumers(t, ch, name, 2)
	if err := ch.Cancel("second", false); err != nil {
		t.Fatal(err)
	}
	wantConsumers(t, ch, name, 1)
	if err := c1.Cancel("first", false); err != nil {
		t.Fatal(err)
	}
	closes := notifyClose(ch)
	_, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue '"+name+"'")
	wantClosed(t, closes, amqp.NotFound, "NOT_FOUND")

	// Closing the consumer's channel counts as cancelling.
	ch = channel(t, conn)
	name = uniqueName(t, "autodelete-close")
	if _, err := ch.QueueDeclare(name, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	deleteQueueLater(t, name)
	c2 := channel(t, conn)
	consume(t, c2, name, "", false)
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = ch.QueueDeclarePassive(name, false, false, false, false, nil)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue '"+name+"'")
}

func TestDeclareOkCounts(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	name := declareQueue(t, ch, nil)
	p := newPublisher(t, conn)
	p.toQueue(name, "1", "2", "3")
	q, err := ch.QueueDeclare(name, false, false, false, false, nil)
	if err != nil || q.Messages != 3 || q.Consumers != 0 {
		t.Errorf("declare-ok %+v, %v; want 3 messages, 0 consumers", q, err)
	}

	// Unacknowledged messages are not counted; consumers are, on any channel or connection.
	c1 := channel(t, conn)
	if err := c1.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	d1 := consume(t, c1, name, "", false)
	recv(t, d1, "first delivery")
	c2 := channel(t, dial(t))
	if err := c2.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	d2 := consume(t, c2, name, "", false)
	recv(t, d2, "second delivery")
	if got, consumers := queueCounts(t, ch, name); got != 1 || consumers != 2 {
		t.Errorf("passive declare: %d messages, %d consumers; want 1, 2", got, consumers)
	}
}

func TestQueueBindUnbind(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	p := newPublisher(t, conn)
	x := declareExchange(t, ch, "direct", nil)
	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "k", x, nil)
	bind(t, ch, q, "k", x, nil) // binding twice is one binding
	p.body(x, "k", "bound")
	if err := ch.QueueUnbind(q, "k", x, nil); err != nil {
		t.Fatal(err)
	}
	p.body(x, "k", "unbound")
	equalStrings(t, "messages", getBodies(t, ch, q), []string{"bound"})

	for name, unbind := range map[string]func() error{
		"missing binding":  func() error { return ch.QueueUnbind(q, "never", x, nil) },
		"missing queue":    func() error { return ch.QueueUnbind(uniqueName(t, "missing"), "k", x, nil) },
		"missing exchange": func() error { return ch.QueueUnbind(q, "k", uniqueName(t, "missing"), nil) },
		"other arguments":  func() error { return ch.QueueUnbind(q, "k", x, amqp.Table{"a": "b"}) },
	} {
		if err := unbind(); err != nil {
			t.Errorf("unbind with %s: %v", name, err)
		}
	}

	// Bindings with the same key and different arguments are distinct bindings.
	h := declareExchange(t, ch, "headers", nil)
	bind(t, ch, q, "", h, amqp.Table{"v": "1"})
	bind(t, ch, q, "", h, amqp.Table{"v": "2"})
	if err := ch.QueueUnbind(q, "", h, amqp.Table{"v": "1"}); err != nil {
		t.Fatal(err)
	}
	p.publish(h, "", false, amqp.Publishing{Headers: amqp.Table{"v": "1"}, Body: []byte("v1")})
	p.publish(h, "", false, amqp.Publishing{Headers: amqp.Table{"v": "2"}, Body: []byte("v2")})
	equalStrings(t, "headers messages", getBodies(t, ch, q), []string{"v2"})
}

func TestQueueBindErrors(t *testing.T) {
	t.Parallel()
	t.Run("missing queue", func(t *testing.T) {
		t.Parallel()
		_, ch := connChannel(t)
		n := uniqueName(t, "missing")
		closes := notifyClose(ch)
		wantError(t, ch.QueueBind(n, "k", "amq.direct", false, nil), amqp.NotFound, "NOT_FOUND - no queue '"+n+"' in vhost '/'")
		wantClosed(t, closes, amqp.NotFound, "NOT_FOUND")
	})
	t.Run("missing exchange", func(t *testing.T) {
		t.Parallel()
		_, ch := connChannel(t)
		n := uniqueName(t, "missing")
		q := declareQueue(t, ch, nil)
		closes := notifyClose(ch)
		wantError(t, ch.QueueBind(q, "k", n, false, nil), amqp.NotFound, "NOT_FOUND - no exchange '"+n+"' in vhost '/'")
		wantClosed(t, closes, amqp.NotFound, "NOT_FOUND")
	})
}

func TestQueuePurge(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	p := newPublisher(t, conn)
	p.toQueue(q, seq("m", 5)...)
	held := get(t, ch, q, false) // unacknowledged: purge leaves it alone
	n, err := ch.QueuePurge(q, false)
	if err != nil || n != 4 {
		t.Errorf("purge = %d, %v; want 4", n, err)
	}
	wantMessages(t, ch, q, 0)
	if n, err := ch.QueuePurge(q, false); err != nil || n != 0 {
		t.Errorf("purge of an empty queue = %d, %v; want 0", n, err)
	}
	if err := held.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	d := get(t, ch, q, true)
	if string(d.Body) != "m0" || !d.Redelivered {
		t.Errorf("after purge and requeue got %q redelivered=%v, want m0 redelivered", d.Body, d.Redelivered)
	}
	closes := notifyClose(ch)
	missing := uniqueName(t, "missing")
	_, err = ch.QueuePurge(missing, false)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue '"+missing+"'")
	wantClosed(t, closes, amqp.NotFound, "NOT_FOUND")
}

func TestQueueDelete(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	p := newPublisher(t, conn)

	t.Run("returns the message count", func(t *testing.T) {
		q := declareQueue(t, ch, nil)
		p.toQueue(q, "a", "b", "c")
		n, err := ch.QueueDelete(q, false, false, false)
		if err != nil || n != 3 {
			t.Errorf("delete = %d, %v; want 3", n, err)
		}
		p.publish("", q, true, amqp.Publishing{Body: []byte("gone")})
		if _, ok := p.returned(); !ok {
			t.Error("mandatory publish to a deleted queue was not returned")
		}
	})
	t.Run("missing queue", func(t *testing.T) {
		for _, flags := range [][2]bool{{false, false}, {true, true}} {
			if n, err := ch.QueueDelete(uniqueName(t, "missing"), flags[0], flags[1], false); err != nil || n != 0 {
				t.Errorf("delete missing (if-unused %v, if-empty %v) = %d, %v; want 0, nil", flags[0], flags[1], n, err)
			}
		}
	})
	t.Run("if-unused", func(t *testing.T) {
		ch := channel(t, conn)
		q := declareQueue(t, ch, nil)
		consume(t, channel(t, conn), q, "", false)
		closes := notifyClose(ch)
		_, err := ch.QueueDelete(q, true, false, false)
		text := "PRECONDITION_FAILED - queue '" + q + "' in vhost '/' in use"
		wantError(t, err, amqp.PreconditionFailed, text)
		wantClosed(t, closes, amqp.PreconditionFailed, text)
		wantConsumers(t, channel(t, conn), q, 1)
	})
	t.Run("if-empty", func(t *testing.T) {
		ch := channel(t, conn)
		q := declareQueue(t, ch, nil)
		p.toQueue(q, "x")
		closes := notifyClose(ch)
		_, err := ch.QueueDelete(q, false, true, false)
		text := "PRECONDITION_FAILED - queue '" + q + "' in vhost '/' not empty"
		wantError(t, err, amqp.PreconditionFailed, text)
		wantClosed(t, closes, amqp.PreconditionFailed, text)
		wantMessages(t, channel(t, conn), q, 1)
	})
	t.Run("if-unused and if-empty on an idle empty queue", func(t *testing.T) {
		q := declareQueue(t, ch, nil)
		if n, err := ch.QueueDelete(q, true, true, false); err != nil || n != 0 {
			t.Errorf("delete = %d, %v; want 0", n, err)
		}
	})
}

// TestLastDeclaredQueue: an empty queue name in bind, consume, get, purge and delete means the
// last queue declared on the channel.
func TestLastDeclaredQueue(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	p := newPublisher(t, conn)

	t.Run("none declared", func(t *testing.T) {
		_, ch := connChannel(t)
		closes := notifyClose(ch)
		wantError(t, ch.QueueBind("", "k", "amq.direct", false, nil), amqp.NotFound, "NOT_FOUND - no previously declared queue")
		wantClosed(t, closes, amqp.NotFound, "NOT_FOUND")
	})

	declareQueue(t, ch, nil) // an older one, not the last
	q := declareQueue(t, ch, nil)
	x := declareExchange(t, ch, "fanout", nil)
	bind(t, ch, "", "", x, nil)
	p.body(x, "", "one")
	p.body(x, "", "two")
	wantMessages(t, ch, q, 2)
	if d := get(t, ch, "", true); string(d.Body) != "one" {
		t.Errorf("get from \"\" = %q, want one", d.Body)
	}
	if n, err := ch.QueuePurge("", false); err != nil || n != 1 {
		t.Errorf("purge \"\" = %d, %v; want 1", n, err)
	}
	deliveries := consume(t, ch, "", "", true)
	p.body(x, "", "three")
	if d := recv(t, deliveries, "delivery"); string(d.Body) != "three" || d.RoutingKey != "" || d.Exchange != x {
		t.Errorf("consumed %q, want three", d.Body)
	}
	wantConsumers(t, ch, q, 1)
	if err := ch.QueueUnbind("", "", x, nil); err != nil {
		t.Errorf("unbind \"\": %v", err)
	}
	if _, err := ch.QueueDelete("", false, false, false); err != nil {
		t.Errorf("delete \"\": %v", err)
	}
	ch2 := channel(t, conn)
	_, err := ch2.QueueDeclarePassive(q, false, false, false, false, nil)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue '"+q+"'")

	// The name is per channel: another channel has declared nothing.
	ch3 := channel(t, conn)
	_, err = ch3.QueuePurge("", false)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no previously declared queue")

	// A server-named queue counts too.
	ch4 := channel(t, conn)
	gen, err := ch4.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.toQueue(gen.Name, "gen")
	if d := get(t, ch4, "", true); string(d.Body) != "gen" {
		t.Errorf("get from \"\" after a server-named declare = %q, want gen", d.Body)
	}
}
