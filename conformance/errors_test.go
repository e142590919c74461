package conformance

import (
	"errors"
	"net"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqpwire"
)

// TestChannelErrorIsolated: a channel error closes that channel only; the connection and its
// other channels keep working, and the failed channel's id can be opened again.
func TestChannelErrorIsolated(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	bad, good := channel(t, conn), channel(t, conn)
	q := declareQueue(t, good, nil)
	deliveries := consume(t, good, q, "survivor", true)
	badCloses, goodCloses, connCloses := notifyClose(bad), notifyClose(good), notifyConnClose(conn)

	missing := uniqueName(t, "missing")
	_, err := bad.QueueDeclarePassive(missing, false, false, false, false, nil)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue '"+missing+"'")
	wantClosed(t, badCloses, amqp.NotFound, "NOT_FOUND")

	if err := good.Publish("", q, false, false, amqp.Publishing{Body: []byte("still here")}); err != nil {
		t.Fatal(err)
	}
	if d := recv(t, deliveries, "delivery after another channel's error"); string(d.Body) != "still here" {
		t.Errorf("got %q", d.Body)
	}
	wantMessages(t, good, q, 0)
	for i := 0; i < 3; i++ { // new channels, likely reusing the closed one's id
		if err := channel(t, conn).ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil); err != nil {
			t.Errorf("new channel after a channel error: %v", err)
		}
	}
	select {
	case err := <-goodCloses:
		t.Errorf("the other channel closed: %v", err)
	case err := <-connCloses:
		t.Errorf("the connection closed: %v", err)
	default:
	}
}

// TestConnectionErrorClosesAll: a connection error closes the connection and every channel on
// it; the broker keeps serving everyone else.
func TestConnectionErrorClosesAll(t *testing.T) {
	t.Parallel()
	bystander, bch := connChannel(t)
	q := declareQueue(t, bch, nil)

	conn := dial(t)
	ch, other := channel(t, conn), channel(t, conn)
	connCloses, otherCloses := notifyConnClose(conn), notifyClose(other)
	consume(t, ch, q, "dup", false)
	_, err := ch.Consume(q, "dup", false, false, false, false, nil)
	text := "NOT_ALLOWED - attempt to reuse consumer tag 'dup'"
	wantError(t, err, amqp.NotAllowed, text)
	wantClosed(t, connCloses, amqp.NotAllowed, text)
	wantClosed(t, otherCloses, amqp.NotAllowed, text)
	if !conn.IsClosed() {
		t.Error("connection not closed after a connection error")
	}
	// Its consumer went with it.
	wantConsumers(t, bch, q, 0)

	if bystander.IsClosed() {
		t.Fatal("an unrelated connection was closed")
	}
	p := newPublisher(t, bystander)
	p.toQueue(q, "after")
	if d := get(t, bch, q, true); string(d.Body) != "after" {
		t.Errorf("got %q", d.Body)
	}
	_, fresh := connChannel(t)
	wantMessages(t, fresh, q, 0)
}

func TestFrameErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		send   func(rc *rawConn)
		code   uint16
		prefix string
	}{
		{"bad frame end", func(rc *rawConn) {
			rc.writeFrameEnd(frameMethod, 1, publishMethod("", "q"), 0x00)
		}, 501, "FRAME_ERROR"},
		{"frame larger than frame-max", func(rc *rawConn) {
			rc.writeFrame(frameMethod, 1, publishMethod("", "q"))
			rc.writeFrame(frameHeader, 1, contentHeader(300000))
			rc.writeFrame(frameBody, 1, make([]byte, 200000))
		}, 501, "FRAME_ERROR"},
		{"method on an unopened channel", func(rc *rawConn) {
			rc.writeMethod(5, amqpwire.ClassQueue, amqpwire.MethodQueueDeclare, u16(0), shortstr("q"), []byte{1}, table()) // queue.declare passive
		}, 504, "CHANNEL_ERROR - expected 'channel.open'"},
		{"second channel.open", func(rc *rawConn) {
			rc.writeMethod(1, amqpwire.ClassChannel, amqpwire.MethodChannelOpen, shortstr(""))
		}, 504, "CHANNEL_ERROR - second 'channel.open' seen"},
		{"content header without a method", func(rc *rawConn) {
			rc.writeFrame(frameHeader, 1, contentHeader(1))
		}, 505, "UNEXPECTED_FRAME"},
		{"body without a header", func(rc *rawConn) {
			rc.writeFrame(frameMethod, 1, publishMethod("", "q"))
			rc.writeFrame(frameBody, 1, []byte("x"))
		}, 505, "UNEXPECTED_FRAME"},
		{"method while expecting content", func(rc *rawConn) {
			rc.writeFrame(frameMethod, 1, publishMethod("", "q"))
			rc.writeFrame(frameMethod, 1, publishMethod("", "q"))
		}, 505, "UNEXPECTED_FRAME"},
		{"unknown frame type", func(rc *rawConn) {
			rc.writeFrame(9, 1, []byte("x"))
		}, 501, "FRAME_ERROR"},
		{"heartbeat on a channel", func(rc *rawConn) {
			rc.writeFrame(frameHeartbeat, 1, nil)
		}, 505, "UNEXPECTED_FRAME"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rc := rawOpen(t)
			rc.openChannel(1)
			c.send(rc)
			rc.expectConnectionClose(c.code, c.prefix)
		})
	}
}

// TestUnknownMethod: a method the broker does not know ends the connection. The spec and
// COMPATIBILITY.md call for connection.close 540 NOT_IMPLEMENTED; RabbitMQ 3.10 drops the
// socket instead. Either is accepted; a close with another code is not.
func TestUnknownMethod(t *testing.T) {
	t.Parallel()
	for name, ids := range map[string][3]uint16{
		"unknown basic method":      {1, amqpwire.ClassBasic, 255},
		"unknown class":             {1, 99, 1},
		"unknown connection method": {0, amqpwire.ClassConnection, 99},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rc := rawOpen(t)
			rc.openChannel(1)
			rc.writeMethod(ids[0], ids[1], ids[2])
			m, err := rc.readMethod()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("no answer within %v to an unknown method", timeout)
			}
			if err != nil {
				return // dropped
			}
			if !m.is(amqpwire.ClassConnection, amqpwire.MethodConnectionClose) || m.replyCode != 540 || !strings.HasPrefix(m.replyText, "NOT_IMPLEMENTED") {
				t.Fatalf("got %v, want connection.close 540 NOT_IMPLEMENTED or a dropped socket", m)
			}
			rc.writeMethod(0, amqpwire.ClassConnection, amqpwire.MethodConnectionCloseOk)
			rc.expectEOF()
		})
	}
}
