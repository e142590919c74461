package conformance

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server"
)

func TestServerProperties(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	if conn.Major != 0 || conn.Minor != 9 {
		t.Errorf("connection.start version = %d-%d, want 0-9", conn.Major, conn.Minor)
	}
	if !slices.Contains(conn.Locales, "en_US") {
		t.Errorf("locales = %q, want en_US among them", conn.Locales)
	}
	for _, key := range []string{"product", "version", "platform", "copyright", "information"} {
		v, ok := conn.Properties[key].(string)
		if !ok || v == "" {
			t.Errorf("server property %q = %#v, want a non-empty string", key, conn.Properties[key])
		}
	}
	caps, ok := conn.Properties["capabilities"].(amqp.Table)
	if !ok {
		t.Fatalf("server property capabilities = %#v, want a table", conn.Properties["capabilities"])
	}
	for _, c := range []string{
		"publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify",
		"connection.blocked", "per_consumer_qos", "authentication_failure_close", "consumer_priorities",
	} {
		if v, ok := caps[c].(bool); !ok || !v {
			t.Errorf("capability %q = %#v, want true", c, caps[c])
		}
	}
	for k, v := range caps {
		if _, ok := v.(bool); !ok {
			t.Errorf("capability %q = %#v (%T), want a boolean", k, v, v)
		}
	}
}

// TestStartMechanisms reads connection.start off the wire: the mechanisms field is a
// space-separated list that offers PLAIN and AMQPLAIN.
func TestStartMechanisms(t *testing.T) {
	t.Parallel()
	rc := rawDial(t)
	start := rc.start(handshake{})
	args := start.args
	if args[0] != 0 || args[1] != 9 {
		t.Errorf("version %d-%d, want 0-9", args[0], args[1])
	}
	args = args[2:]
	n := binary.BigEndian.Uint32(args)
	args = args[4+n:] // server-properties
	n = binary.BigEndian.Uint32(args)
	mechanisms := strings.Fields(string(args[4 : 4+n]))
	for _, want := range []string{"PLAIN", "AMQPLAIN"} {
		if !slices.Contains(mechanisms, want) {
			t.Errorf("mechanisms %q, want %s among them", mechanisms, want)
		}
	}
	args = args[4+n:]
	n = binary.BigEndian.Uint32(args)
	if locales := strings.Fields(string(args[4 : 4+n])); !slices.Contains(locales, "en_US") {
		t.Errorf("locales %q, want en_US among them", locales)
	}
}

func TestProtocolHeaderMismatch(t *testing.T) {
	t.Parallel()
	for name, header := range map[string]string{
		"AMQP 0-10":  "AMQP\x01\x01\x00\x0a",
		"AMQP 1.0":   "AMQP\x00\x01\x00\x00",
		"AMQP 0-9-0": "AMQP\x00\x00\x09\x00",
		"HTTP":       "GET / HTTP/1.1\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rc := rawDial(t)
			rc.write([]byte(header))
			_ = rc.c.SetReadDeadline(time.Now().Add(timeout))
			got := make([]byte, len(protocolHeader))
			if _, err := io.ReadFull(rc.r, got); err != nil {
				t.Fatalf("reading the broker's protocol header: %v", err)
			}
			if string(got) != protocolHeader {
				t.Errorf("broker answered %q, want %q", got, protocolHeader)
			}
			rc.expectEOF()
		})
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	uri, err := amqp.ParseURI(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("PLAIN", func(t *testing.T) {
		t.Parallel()
		conn := dialConfig(t, brokerURL, amqp.Config{SASL: []amqp.Authentication{
			&amqp.PlainAuth{Username: uri.Username, Password: uri.Password},
		}})
		if m := conn.Config.SASL[0].Mechanism(); m != "PLAIN" {
			t.Errorf("mechanism %q, want PLAIN", m)
		}
		channel(t, conn)
	})
	t.Run("AMQPLAIN", func(t *testing.T) {
		t.Parallel()
		conn := dialConfig(t, brokerURL, amqp.Config{SASL: []amqp.Authentication{
			&amqp.AMQPlainAuth{Username: uri.Username, Password: uri.Password},
		}})
		if m := conn.Config.SASL[0].Mechanism(); m != "AMQPLAIN" {
			t.Errorf("mechanism %q, want AMQPLAIN", m)
		}
		channel(t, conn)
	})
	// amqp091-go does not advertise authentication_failure_close, so a broker may drop the
	// socket (the library then reports ErrCredentials, 403) or close with 403: either way, 403.
	for name, auth := range map[string]amqp.Authentication{
		"bad PLAIN password":    &amqp.PlainAuth{Username: uri.Username, Password: "wrong-" + uri.Password},
		"bad AMQPLAIN password": &amqp.AMQPlainAuth{Username: uri.Username, Password: "wrong-" + uri.Password},
		"unknown user":          &amqp.PlainAuth{Username: "no-such-user-conformance", Password: "x"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conn, err := amqp.DialConfig(brokerURL, amqp.Config{SASL: []amqp.Authentication{auth}, Dial: amqp.DefaultDial(timeout)})
			if err == nil {
				conn.Close()
				t.Fatal("handshake succeeded, want 403")
			}
			var aerr *amqp.Error
			if !errors.As(err, &aerr) || aerr.Code != amqp.AccessRefused {
				t.Errorf("error = %v, want *amqp.Error 403", err)
			}
		})
	}
	t.Run("authentication_failure_close", func(t *testing.T) {
		t.Parallel()
		rc := rawDial(t)
		rc.start(handshake{user: uri.Username, password: "wrong", capabilities: []any{"authentication_failure_close", true}})
		rc.expectConnectionClose(403, "ACCESS_REFUSED")
	})
}

func TestUnknownVhost(t *testing.T) {
	t.Parallel()
	conn, err := amqp.DialConfig(brokerURL, amqp.Config{Vhost: "conformance-no-such-vhost", Dial: amqp.DefaultDial(timeout)})
	if err == nil {
		conn.Close()
		t.Fatal("connection.open to an unknown vhost succeeded")
	}
	wantError(t, err, amqp.NotAllowed, "NOT_ALLOWED - ")
	if !strings.Contains(err.Error(), "conformance-no-such-vhost") {
		t.Errorf("reply %v does not name the vhost", err)
	}
}

// TestTune checks the broker's connection.tune offer (RabbitMQ's defaults: 2047 channels,
// 128 KiB frames, 60 s heartbeat) and how amqp091-go negotiates against it.
func TestTune(t *testing.T) {
	t.Parallel()
	t.Run("offer", func(t *testing.T) {
		t.Parallel()
		rc := rawDial(t)
		rc.start(handshake{})
		offered, _ := rc.tune(handshake{})
		if offered != (tune{channelMax: 2047, frameMax: 131072, heartbeat: 60}) {
			t.Errorf("connection.tune %+v, want channel-max 2047, frame-max 131072, heartbeat 60", offered)
		}
		rc.open()
		rc.openChannel(1)
		rc.openChannel(2047)
	})
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		conn := dial(t)
		if conn.Config.ChannelMax != 2047 || conn.Config.FrameSize != 131072 {
			t.Errorf("negotiated channel-max %d, frame-max %d, want 2047, 131072", conn.Config.ChannelMax, conn.Config.FrameSize)
		}
	})
	t.Run("client lower", func(t *testing.T) {
		t.Parallel()
		conn := dialConfig(t, brokerURL, amqp.Config{ChannelMax: 3, FrameSize: 4096, Heartbeat: 5 * time.Second})
		if conn.Config.ChannelMax != 3 || conn.Config.FrameSize != 4096 || conn.Config.Heartbeat != 5*time.Second {
			t.Errorf("negotiated %d/%d/%v, want 3/4096/5s", conn.Config.ChannelMax, conn.Config.FrameSize, conn.Config.Heartbeat)
		}
		for i := 0; i < 3; i++ {
			channel(t, conn)
		}
		if _, err := conn.Channel(); !errors.Is(err, amqp.ErrChannelMax) {
			t.Errorf("fourth channel: %v, want ErrChannelMax", err)
		}
	})
	t.Run("client higher", func(t *testing.T) {
		t.Parallel()
		conn := dialConfig(t, brokerURL, amqp.Config{FrameSize: 1 << 20, Heartbeat: 600 * time.Second})
		if conn.Config.FrameSize != 131072 || conn.Config.Heartbeat != 60*time.Second {
			t.Errorf("negotiated frame-max %d heartbeat %v, want the offer 131072, 60s", conn.Config.FrameSize, conn.Config.Heartbeat)
		}
	})
	// A tune-ok outside the offer is a hard error. RabbitMQ closes the socket without a
	// negotiated close, or closes with 530/501 first: both end the connection.
	for name, bad := range map[string]func(tune) tune{
		"frame-max above offer":   func(o tune) tune { o.frameMax *= 2; return o },
		"frame-max below 4096":    func(o tune) tune { o.frameMax = 1024; return o },
		"channel-max above offer": func(o tune) tune { o.channelMax++; return o },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rc := rawDial(t)
			rc.start(handshake{})
			rc.tune(handshake{tuneOK: bad})
			uri, _ := amqp.ParseURI(brokerURL)
			rc.writeMethod(0, amqpwire.ClassConnection, amqpwire.MethodConnectionOpen, shortstr(uri.Vhost), shortstr(""), []byte{0})
			for _, m := range rc.expectEOF() {
				t.Logf("before closing the socket the broker sent %v", m)
				if m.is(amqpwire.ClassConnection, amqpwire.MethodConnectionOpenOk) {
					t.Errorf("connection.open-ok after an out-of-range tune-ok")
				}
			}
		})
	}
}

// TestHeartbeat: a peer that agreed to heartbeats and then stays silent is disconnected after
// about two intervals; a client that keeps sending them stays connected.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	t.Run("silent peer is disconnected", func(t *testing.T) {
		t.Parallel()
		rc := rawDial(t)
		rc.start(handshake{})
		rc.tune(handshake{tuneOK: func(o tune) tune { o.heartbeat = 1; return o }})
		rc.open()
		silentUntilDisconnected(t, rc)
	})
	t.Run("live client stays connected", func(t *testing.T) {
		t.Parallel()
		conn := dialConfig(t, brokerURL, amqp.Config{Heartbeat: time.Second})
		if conn.Config.Heartbeat != time.Second {
			t.Fatalf("negotiated heartbeat %v, want 1s", conn.Config.Heartbeat)
		}
		closes := notifyConnClose(conn)
		// Three intervals without traffic besides heartbeats: a broker that ignored them, or
		// sent none (the client gives up after two silent intervals), would close by now.
		select {
		case err := <-closes:
			t.Fatalf("connection closed: %v", err)
		case <-time.After(3 * time.Second):
		}
		ch := channel(t, conn)
		if err := ch.ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil); err != nil {
			t.Errorf("after 3 heartbeat intervals: %v", err)
		}
	})
	t.Run("server-configured interval", func(t *testing.T) {
		warrenOnly(t, "sets the broker's own heartbeat to 1s")
		t.Parallel()
		url := startWarren(t, server.Config{Logger: harnessLogger(), Heartbeat: time.Second})
		conn := dialConfig(t, url, amqp.Config{})
		if conn.Config.Heartbeat != time.Second {
			t.Errorf("amqp091-go negotiated %v against a 1s offer, want 1s", conn.Config.Heartbeat)
		}
		rc := rawDialURL(t, url)
		rc.start(handshake{})
		offered, _ := rc.tune(handshake{})
		if offered.heartbeat != 1 {
			t.Errorf("connection.tune heartbeat %d, want 1", offered.heartbeat)
		}
		rc.open()
		silentUntilDisconnected(t, rc)
	})
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		rc := rawDial(t)
		rc.start(handshake{})
		rc.tune(handshake{tuneOK: func(o tune) tune { o.heartbeat = 0; return o }})
		rc.open()
		rc.openChannel(1)
	})
}

// silentUntilDisconnected reads from a connection that negotiated a 1 s heartbeat without ever
// writing: the broker must send heartbeats, then close the socket.
func silentUntilDisconnected(t *testing.T, rc *rawConn) {
	t.Helper()
	heartbeats := 0
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f, err := rc.readFrame(time.Until(deadline))
		if err != nil {
			if heartbeats == 0 {
				t.Errorf("disconnected (%v) without a heartbeat from the broker first", err)
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("still connected after 10s of silence with a 1s heartbeat")
			}
			return
		}
		switch {
		case f.typ == frameHeartbeat:
			heartbeats++
			if f.channel != 0 || len(f.payload) != 0 {
				t.Errorf("heartbeat on channel %d with %d bytes, want channel 0 and none", f.channel, len(f.payload))
			}
		case f.typ == frameMethod && binary.BigEndian.Uint32(f.payload) == 10<<16|50:
			// connection.close before the drop is acceptable too.
		default:
			t.Errorf("unexpected frame type %d while silent", f.typ)
		}
	}
	t.Fatalf("still connected after 10s of silence with a 1s heartbeat")
}

func TestClientClose(t *testing.T) {
	t.Parallel()
	conn := dialConfig(t, brokerURL, amqp.Config{})
	ch := channel(t, conn)
	chCloses := notifyClose(ch)
	connCloses := notifyConnClose(conn)
	if err := conn.Close(); err != nil {
		t.Fatalf("connection.close: %v", err)
	}
	if err, ok := <-connCloses; ok || err != nil {
		t.Errorf("connection close notification %v, want a plain close", err)
	}
	if err, ok := <-chCloses; ok || err != nil {
		t.Errorf("channel close notification %v, want a plain close", err)
	}
	if !conn.IsClosed() || !ch.IsClosed() {
		t.Error("connection or channel not marked closed")
	}
	if _, err := conn.Channel(); !errors.Is(err, amqp.ErrClosed) {
		t.Errorf("channel on a closed connection: %v, want ErrClosed", err)
	}

	// The same by hand: connection.close from the client is answered with close-ok.
	rc := rawOpen(t)
	rc.writeMethod(0, amqpwire.ClassConnection, amqpwire.MethodConnectionClose, u16(200), shortstr("bye"), u16(0), u16(0))
	rc.expect(amqpwire.ClassConnection, amqpwire.MethodConnectionCloseOk) // the client, having received close-ok, closes the socket
}

func TestChannelOpenClose(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	for i := 0; i < 50; i++ { // ids are handed back and reused
		ch := channel(t, conn)
		if err := ch.Close(); err != nil {
			t.Fatalf("channel.close %d: %v", i, err)
		}
	}
	ch := channel(t, conn)
	closes := notifyClose(ch)
	if err := ch.Close(); err != nil {
		t.Fatalf("channel.close: %v", err)
	}
	if err, ok := <-closes; ok || err != nil {
		t.Errorf("close notification %v, want a plain close", err)
	}
	if err := ch.ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil); !errors.Is(err, amqp.ErrClosed) {
		t.Errorf("method on a closed channel: %v, want ErrClosed", err)
	}
	// The connection is still usable.
	ch = channel(t, conn)
	if err := ch.ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil); err != nil {
		t.Errorf("new channel after closes: %v", err)
	}

	// Raw: channel.close from the client is answered with close-ok; the id can be reopened.
	rc := rawOpen(t)
	rc.openChannel(7)
	rc.writeMethod(7, amqpwire.ClassChannel, amqpwire.MethodChannelClose, u16(200), shortstr(""), u16(0), u16(0))
	rc.expect(amqpwire.ClassChannel, amqpwire.MethodChannelCloseOk)
	rc.openChannel(7)
}

func TestManyChannels(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	const n = 200
	chans := make([]*amqp.Channel, n)
	for i := range chans {
		chans[i] = channel(t, conn)
	}
	q := declareQueue(t, chans[0], nil)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- ch.Publish("", q, false, false, amqp.Publishing{Body: []byte{byte(i)}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("publish: %v", err)
		}
	}
	// Each channel is its own ordered stream: a passive declare on every channel returns after
	// that channel's publish, so the count is exact.
	for _, ch := range chans {
		if _, err := ch.QueueDeclarePassive(q, false, false, false, false, nil); err != nil {
			t.Fatalf("passive declare: %v", err)
		}
	}
	p := newPublisher(t, conn)
	p.body("", q, "last")
	wantMessages(t, chans[1], q, n+1)
	for _, ch := range chans {
		if err := ch.Close(); err != nil {
			t.Errorf("channel.close: %v", err)
		}
	}
}

func TestChannelFlow(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	if err := ch.Flow(true); err != nil {
		t.Fatalf("channel.flow active=true: %v", err)
	}
	q := declareQueue(t, ch, nil)
	if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	get(t, ch, q, true)

	// RabbitMQ does not implement stopping a channel's deliveries: 540 on the connection.
	closes := notifyConnClose(conn)
	err := channel(t, conn).Flow(false)
	wantError(t, err, amqp.NotImplemented, "NOT_IMPLEMENTED")
	wantClosed(t, closes, amqp.NotImplemented, "NOT_IMPLEMENTED")
}

// TestServerConfiguredLimits: Warren's own frame-max and channel-max settings are what it offers
// in connection.tune, what clients negotiate down to, and (for frames) what it enforces, as
// RabbitMQ enforces its own frame_max (see TestFrameErrors).
func TestServerConfiguredLimits(t *testing.T) {
	warrenOnly(t, "configures the broker's frame-max and channel-max")
	t.Parallel()
	url := startWarren(t, server.Config{Logger: harnessLogger(), FrameMax: 4096, ChannelMax: 8, Heartbeat: 60 * time.Second})

	rc := rawDialURL(t, url)
	rc.start(handshake{})
	offered, _ := rc.tune(handshake{})
	if offered != (tune{channelMax: 8, frameMax: 4096, heartbeat: 60}) {
		t.Errorf("connection.tune %+v, want channel-max 8, frame-max 4096, heartbeat 60", offered)
	}
	rc.open()
	rc.openChannel(1)
	rc.writeFrame(frameMethod, 1, publishMethod("", "q"))
	rc.writeFrame(frameHeader, 1, contentHeader(5000))
	rc.writeFrame(frameBody, 1, make([]byte, 4096-8+1)) // one byte over
	rc.expectConnectionClose(501, "FRAME_ERROR")

	conn := dialConfig(t, url, amqp.Config{})
	if conn.Config.FrameSize != 4096 || conn.Config.ChannelMax != 8 {
		t.Errorf("amqp091-go negotiated frame-max %d, channel-max %d; want 4096, 8", conn.Config.FrameSize, conn.Config.ChannelMax)
	}
	ch := channel(t, conn)
	q := declareQueue(t, ch, nil)
	body := make([]byte, 100<<10)
	for i := range body {
		body[i] = byte(i * 31)
	}
	p := newPublisher(t, conn)
	p.publish("", q, false, amqp.Publishing{Body: body})
	if d := get(t, ch, q, true); !bytes.Equal(d.Body, body) {
		t.Errorf("a %d-byte body in 4 KiB frames arrived as %d bytes (equal: false)", len(body), len(d.Body))
	}
}
