package conformance

// Crossing channel closes: the broker closes a channel (here with 404, a publish to a missing
// exchange) while the client is closing the same channel. Both sides then answer the other's
// close with close-ok; RabbitMQ finishes both closes, keeps the connection, and frees the channel
// number once the client's close-ok for the broker's close has arrived (rabbit_channel's closing
// state, rabbit_reader's channel_cleanup on close-ok).

import (
	"errors"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqpwire"
)

// closeChannelArgs are the arguments of a client channel.close with 200.
func closeChannelArgs() [][]byte {
	return [][]byte{u16(200), shortstr("client closing"), u16(0), u16(0)}
}

// TestCrossingChannelCloses, with raw frames so that the crossing is certain: the client's
// channel.close reaches the broker after the broker sent its own, the broker answers it with
// close-ok, and the client's close-ok for the broker's close then finishes the channel. The
// connection stays open and the number can be opened again.
func TestCrossingChannelCloses(t *testing.T) {
	t.Parallel()
	rc := rawOpen(t)
	rc.openChannel(1)
	missing := uniqueName(t, "missing")
	rc.publish(1, missing, "k", []byte("x"))
	rc.writeMethod(1, amqpwire.ClassChannel, amqpwire.MethodChannelClose, closeChannelArgs()...) // crosses the broker's close

	m := rc.expect(amqpwire.ClassChannel, amqpwire.MethodChannelClose)
	if m.channel != 1 || m.replyCode != 404 || m.replyText != "NOT_FOUND - no exchange '"+missing+"' in vhost '/'" {
		t.Errorf("broker's close: %v on channel %d, want 404 NOT_FOUND for the exchange on channel 1", m, m.channel)
	}
	if ok := rc.expect(amqpwire.ClassChannel, amqpwire.MethodChannelCloseOk); ok.channel != 1 {
		t.Errorf("close-ok for the client's close on channel %d, want 1", ok.channel)
	}
	rc.writeMethod(1, amqpwire.ClassChannel, amqpwire.MethodChannelCloseOk) // the client's close-ok for the broker's close

	// The number is free again, and the connection works.
	rc.openChannel(1)
	rc.writeMethod(1, amqpwire.ClassBasic, amqpwire.MethodBasicQos, u32(0), u16(5), []byte{0}) // basic.qos
	if ok := rc.expect(amqpwire.ClassBasic, amqpwire.MethodBasicQosOk); ok.channel != 1 {
		t.Errorf("basic.qos-ok on channel %d, want 1", ok.channel)
	}
	rc.writeMethod(1, amqpwire.ClassChannel, amqpwire.MethodChannelClose, closeChannelArgs()...)
	rc.expect(amqpwire.ClassChannel, amqpwire.MethodChannelCloseOk)
	rc.writeMethod(0, amqpwire.ClassConnection, amqpwire.MethodConnectionClose, u16(200), shortstr(""), u16(0), u16(0))
	rc.expect(amqpwire.ClassConnection, amqpwire.MethodConnectionCloseOk)
}

// TestReopenBeforeCloseOk: until the client's close-ok for the broker's channel.close arrives,
// the channel is still the broker's (closing), so a channel.open on its number is a second
// channel.open, a connection error, as in RabbitMQ. The crossing close changes nothing: the
// broker's close-ok to it does not free the number either.
func TestReopenBeforeCloseOk(t *testing.T) {
	t.Parallel()
	for _, crossing := range []bool{false, true} {
		name := "after the broker's close"
		if crossing {
			name = "after crossing closes"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rc := rawOpen(t)
			rc.openChannel(1)
			rc.publish(1, uniqueName(t, "missing"), "k", []byte("x"))
			if crossing {
				rc.writeMethod(1, amqpwire.ClassChannel, amqpwire.MethodChannelClose, closeChannelArgs()...)
			}
			if m := rc.expect(amqpwire.ClassChannel, amqpwire.MethodChannelClose); m.replyCode != 404 {
				t.Errorf("broker's close %v, want 404", m)
			}
			if crossing {
				rc.expect(amqpwire.ClassChannel, amqpwire.MethodChannelCloseOk)
			}
			// Frames for the closing channel other than close and close-ok are discarded.
			rc.writeMethod(1, amqpwire.ClassBasic, amqpwire.MethodBasicQos, u32(0), u16(5), []byte{0}) // basic.qos
			rc.writeMethod(1, amqpwire.ClassChannel, amqpwire.MethodChannelOpen, shortstr(""))         // channel.open, no close-ok sent
			m, err := rc.readMethod()
			if err != nil {
				t.Fatalf("waiting for connection.close 504: %v", err)
			}
			if !m.is(amqpwire.ClassConnection, amqpwire.MethodConnectionClose) || m.replyCode != 504 || m.replyText != "CHANNEL_ERROR - second 'channel.open' seen" {
				t.Fatalf("got %v, want connection.close 504 CHANNEL_ERROR - second 'channel.open' seen and nothing before it", m)
			}
			rc.writeMethod(0, amqpwire.ClassConnection, amqpwire.MethodConnectionCloseOk)
			rc.expectEOF()
		})
	}
}

// TestCrossingChannelClosesClient provokes the crossing with amqp091-go: Publish to a missing
// exchange and Close right away, so the client's channel.close is usually on the wire before the
// broker's 404 close arrives. Whichever way each race goes, the connection must survive it.
func TestCrossingChannelClosesClient(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	connCloses := notifyConnClose(conn)
	crossed := 0
	for i := 0; i < 50 && crossed < 5; i++ {
		ch := channel(t, conn)
		if err := ch.Publish(uniqueName(t, "missing"), "k", false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		// nil, or amqp091-go's ErrClosed (504 "channel/connection is not open") when the
		// client had already handled the broker's close (it then sends no close: a slow
		// machine gets there first); the 404 when its close crossed the broker's.
		err := ch.Close()
		var ae *amqp.Error
		switch {
		case err == nil, errors.Is(err, amqp.ErrClosed):
		case errors.As(err, &ae) && ae.Code == amqp.NotFound:
			crossed++
		default:
			t.Fatalf("channel.close %d: %v, want nil or the 404", i, err)
		}
	}
	t.Logf("%d of the closes crossed the broker's", crossed)
	if crossed == 0 {
		t.Fatal("no channel.close crossed the broker's: the race was never provoked")
	}
	// A round trip on a new channel: a connection.close sent for any of the crossings would have
	// arrived before its answer.
	ch := channel(t, conn)
	if err := ch.ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil); err != nil {
		t.Fatalf("new channel after %d crossing closes: %v", crossed, err)
	}
	select {
	case err := <-connCloses:
		t.Fatalf("connection closed after %d crossing channel closes: %v", crossed, err)
	default:
	}
	if conn.IsClosed() {
		t.Fatal("connection closed")
	}
}
