package conformance

import (
	"context"
	"encoding/binary"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqpwire"
)

func TestPublisherConfirms(t *testing.T) {
	t.Parallel()
	_, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 20))
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil { // selecting twice is fine
		t.Errorf("second confirm.select: %v", err)
	}
	const n = 10
	for i := 0; i < n; i++ {
		if got := ch.GetNextPublishSeqNo(); got != uint64(i+1) {
			t.Errorf("next publish sequence number %d, want %d", got, i+1)
		}
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= n; i++ {
		c := recv(t, confirms, "confirm")
		if c.DeliveryTag != uint64(i) || !c.Ack {
			t.Errorf("confirm %+v, want ack of tag %d", c, i)
		}
	}
	wantMessages(t, ch, q, n)

	// Unroutable messages and messages to an exchange with no bindings are acked too.
	if err := ch.Publish("amq.direct", uniqueName(t, "nobody"), false, false, amqp.Publishing{}); err != nil {
		t.Fatal(err)
	}
	if c := recv(t, confirms, "confirm of an unroutable message"); c.DeliveryTag != n+1 || !c.Ack {
		t.Errorf("confirm %+v, want ack of tag %d", c, n+1)
	}
}

func TestDeferredConfirms(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	pub := channel(t, conn)
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var pending []*amqp.DeferredConfirmation
	for i := 0; i < 5; i++ {
		dc, err := pub.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if dc.DeliveryTag != uint64(i+1) {
			t.Errorf("deferred confirm tag %d, want %d", dc.DeliveryTag, i+1)
		}
		pending = append(pending, dc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, dc := range pending {
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			t.Errorf("confirm of tag %d: ack=%v err=%v", dc.DeliveryTag, ok, err)
		}
	}
	// Tags are per channel: another confirming channel starts at 1.
	other := channel(t, conn)
	if err := other.Confirm(false); err != nil {
		t.Fatal(err)
	}
	dc, err := other.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{})
	if err != nil || dc.DeliveryTag != 1 {
		t.Errorf("first tag on another channel: %v %v, want 1", dc, err)
	}
}

// TestConfirmNoWait: confirm.select with no-wait gets no select-ok, and publishes are still
// confirmed. Raw frames: amqp091-go 1.16.0 waits for a select-ok even with noWait=true.
func TestConfirmNoWait(t *testing.T) {
	t.Parallel()
	_, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	rc := rawOpen(t)
	rc.openChannel(1)
	rc.writeMethod(1, amqpwire.ClassConfirm, amqpwire.MethodConfirmSelect, []byte{1}) // confirm.select no-wait
	rc.publish(1, "", q, []byte("x"))
	ack := rc.expect(amqpwire.ClassBasic, amqpwire.MethodBasicAck) // basic.ack, and no confirm.select-ok before it
	if tag := binary.BigEndian.Uint64(ack.args); tag != 1 {
		t.Errorf("basic.ack delivery tag %d, want 1", tag)
	}
	wantMessages(t, ch, q, 1)
}

// TestConfirmAfterReturn: a mandatory unroutable message in confirm mode gets its basic.return
// before its basic.ack.
func TestConfirmAfterReturn(t *testing.T) {
	t.Parallel()
	_, ch := connChannel(t)
	// Unbuffered: amqp091-go's reader hands each over in the order the frames arrived.
	returns := ch.NotifyReturn(make(chan amqp.Return))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation))
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	q := declareQueue(t, ch, nil)
	if err := ch.Publish("", uniqueName(t, "nobody"), true, false, amqp.Publishing{Body: []byte("back")}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", q, true, false, amqp.Publishing{Body: []byte("routed")}); err != nil {
		t.Fatal(err)
	}
	var events []string
	for len(events) < 3 {
		select {
		case r := <-returns:
			events = append(events, "return "+string(r.Body))
		case c := <-confirms:
			if !c.Ack {
				t.Errorf("nack of tag %d", c.DeliveryTag)
			}
			events = append(events, "ack "+string(rune('0'+c.DeliveryTag)))
		case <-timeoutAfter():
			t.Fatalf("events so far %q", events)
		}
	}
	equalStrings(t, "events", events, []string{"return back", "ack 1", "ack 2"})
}

func TestTransactions(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	tx := channel(t, conn)
	if err := tx.Tx(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Tx(); err != nil {
		t.Errorf("second tx.select: %v", err)
	}

	t.Run("commit publishes", func(t *testing.T) {
		for _, b := range []string{"a", "b"} {
			must(t, tx.Publish("", q, false, false, amqp.Publishing{Body: []byte(b)}))
		}
		// A synchronous method on the same channel is ordered after the publishes.
		wantMessages(t, tx, q, 0)
		must(t, tx.TxCommit())
		wantMessages(t, ch, q, 2)
	})
	t.Run("rollback discards", func(t *testing.T) {
		must(t, tx.Publish("", q, false, false, amqp.Publishing{Body: []byte("c")}))
		wantMessages(t, tx, q, 2)
		must(t, tx.TxRollback())
		must(t, tx.TxCommit()) // an empty transaction
		wantMessages(t, ch, q, 2)
	})
	t.Run("acks are transactional", func(t *testing.T) {
		d := get(t, tx, q, false) // a
		must(t, d.Ack(false))
		must(t, tx.TxRollback()) // the ack is forgotten; a is still unacked
		must(t, tx.Ack(d.DeliveryTag, false))
		must(t, tx.TxCommit())
		e := get(t, tx, q, false) // b
		must(t, e.Ack(false))
		// Not committed: closing the channel requeues b.
		must(t, tx.Close())
		d2 := get(t, ch, q, true)
		if string(d2.Body) != "b" || !d2.Redelivered {
			t.Errorf("got %q redelivered=%v, want b redelivered", d2.Body, d2.Redelivered)
		}
		wantEmpty(t, ch, q)
	})
}

// TestTransactionMandatoryReturn: in a transaction an unroutable mandatory message is returned
// (RabbitMQ returns it at publish time, before the commit).
func TestTransactionMandatoryReturn(t *testing.T) {
	t.Parallel()
	_, ch := connChannel(t)
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	must(t, ch.Tx())
	must(t, ch.Publish("", uniqueName(t, "nobody"), true, false, amqp.Publishing{Body: []byte("tx")}))
	must(t, ch.TxCommit())
	if r := recv(t, returns, "basic.return"); r.ReplyCode != amqp.NoRoute || string(r.Body) != "tx" {
		t.Errorf("return %+v, want 312 with body tx", r)
	}
}

func TestTransactionErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		do   func(ch *amqp.Channel) error
		text string
	}{
		{"commit without select", func(ch *amqp.Channel) error { return ch.TxCommit() }, "PRECONDITION_FAILED - channel is not transactional"},
		{"rollback without select", func(ch *amqp.Channel) error { return ch.TxRollback() }, "PRECONDITION_FAILED - channel is not transactional"},
		{"confirm on a tx channel", func(ch *amqp.Channel) error {
			if err := ch.Tx(); err != nil {
				return err
			}
			return ch.Confirm(false)
		}, "PRECONDITION_FAILED - cannot switch from tx to confirm mode"},
		{"tx on a confirm channel", func(ch *amqp.Channel) error {
			if err := ch.Confirm(false); err != nil {
				return err
			}
			return ch.Tx()
		}, "PRECONDITION_FAILED - cannot switch from confirm to tx mode"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, ch := connChannel(t)
			closes := notifyClose(ch)
			wantError(t, c.do(ch), amqp.PreconditionFailed, c.text)
			wantClosed(t, closes, amqp.PreconditionFailed, c.text)
		})
	}
}
