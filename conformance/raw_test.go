package conformance

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqpwire"
)

// A raw AMQP client for the cases a well-behaved client library cannot produce: wrong protocol
// headers, malformed frames, silent peers, methods on unopened channels, handshake choices the
// library makes for the caller.

const (
	frameMethod    = 1
	frameHeader    = 2
	frameBody      = 3
	frameHeartbeat = 8
	frameEnd       = 0xCE
)

// protocolHeader is the AMQP 0-9-1 protocol header, which a broker also sends back on a mismatch.
const protocolHeader = "AMQP\x00\x00\x09\x01"

type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// frame is one frame read off the wire.
type frame struct {
	typ     byte
	channel uint16
	payload []byte
}

// method is a decoded method frame: its ids and its undecoded arguments.
type method struct {
	channel   uint16
	class, id uint16
	args      []byte
	// For connection.close and channel.close: the reply and the method that failed.
	replyCode                 uint16
	replyText                 string
	failedClass, failedMethod uint16
}

func (m method) is(class, id uint16) bool { return m.class == class && m.id == id }

func (m method) String() string {
	if m.is(amqpwire.ClassConnection, amqpwire.MethodConnectionClose) || m.is(amqpwire.ClassChannel, amqpwire.MethodChannelClose) {
		return fmt.Sprintf("%d.%d close %d %q", m.class, m.id, m.replyCode, m.replyText)
	}
	return fmt.Sprintf("method %d.%d on channel %d", m.class, m.id, m.channel)
}

// rawDialURL opens a TCP connection to the broker at url.
func rawDialURL(t testing.TB, url string) *rawConn {
	t.Helper()
	uri, err := amqp.ParseURI(url)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)), timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func rawDial(t testing.TB) *rawConn { return rawDialURL(t, brokerURL) }

func (rc *rawConn) write(b []byte) {
	rc.t.Helper()
	_ = rc.c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// writeFrame writes one frame with the given end octet (frameEnd unless testing a bad one).
func (rc *rawConn) writeFrameEnd(typ byte, channel uint16, payload []byte, end byte) {
	rc.t.Helper()
	b := make([]byte, 0, 8+len(payload))
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, channel)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	b = append(b, end)
	rc.write(b)
}

func (rc *rawConn) writeFrame(typ byte, channel uint16, payload []byte) {
	rc.t.Helper()
	rc.writeFrameEnd(typ, channel, payload, frameEnd)
}

func (rc *rawConn) writeMethod(channel, class, id uint16, args ...[]byte) {
	rc.t.Helper()
	p := binary.BigEndian.AppendUint16(nil, class)
	p = binary.BigEndian.AppendUint16(p, id)
	for _, a := range args {
		p = append(p, a...)
	}
	rc.writeFrame(frameMethod, channel, p)
}

// readFrame reads one frame, waiting at most d.
func (rc *rawConn) readFrame(d time.Duration) (frame, error) {
	_ = rc.c.SetReadDeadline(time.Now().Add(d))
	var h [7]byte
	if _, err := io.ReadFull(rc.r, h[:]); err != nil {
		return frame{}, err
	}
	size := binary.BigEndian.Uint32(h[3:7])
	if size > 1<<20 {
		return frame{}, fmt.Errorf("frame of %d bytes", size)
	}
	p := make([]byte, size+1)
	if _, err := io.ReadFull(rc.r, p); err != nil {
		return frame{}, err
	}
	if p[size] != frameEnd {
		return frame{}, fmt.Errorf("frame end %#x", p[size])
	}
	return frame{typ: h[0], channel: binary.BigEndian.Uint16(h[1:3]), payload: p[:size]}, nil
}

// readMethod reads frames until a method frame, skipping heartbeats.
func (rc *rawConn) readMethod() (method, error) {
	for {
		f, err := rc.readFrame(timeout)
		if err != nil {
			return method{}, err
		}
		if f.typ == frameHeartbeat {
			continue
		}
		if f.typ != frameMethod || len(f.payload) < 4 {
			return method{}, fmt.Errorf("frame type %d, want a method", f.typ)
		}
		m := method{
			channel: f.channel,
			class:   binary.BigEndian.Uint16(f.payload[0:2]),
			id:      binary.BigEndian.Uint16(f.payload[2:4]),
			args:    f.payload[4:],
		}
		if (m.is(amqpwire.ClassConnection, amqpwire.MethodConnectionClose) || m.is(amqpwire.ClassChannel, amqpwire.MethodChannelClose)) && len(m.args) >= 3 {
			m.replyCode = binary.BigEndian.Uint16(m.args[0:2])
			n := int(m.args[2])
			if len(m.args) >= 3+n+4 {
				m.replyText = string(m.args[3 : 3+n])
				m.failedClass = binary.BigEndian.Uint16(m.args[3+n:])
				m.failedMethod = binary.BigEndian.Uint16(m.args[5+n:])
			}
		}
		return m, nil
	}
}

// expect reads the next method and fails unless it is class.id.
func (rc *rawConn) expect(class, id uint16) method {
	rc.t.Helper()
	m, err := rc.readMethod()
	if err != nil {
		rc.t.Fatalf("waiting for method %d.%d: %v", class, id, err)
	}
	if !m.is(class, id) {
		rc.t.Fatalf("got %v, want method %d.%d", m, class, id)
	}
	return m
}

// expectConnectionClose waits for connection.close with code and a reply text starting with
// prefix, answers close-ok and waits for the broker to close the socket.
func (rc *rawConn) expectConnectionClose(code uint16, prefix string) method {
	rc.t.Helper()
	var m method
	for {
		var err error
		m, err = rc.readMethod()
		if err != nil {
			rc.t.Fatalf("waiting for connection.close %d: %v", code, err)
		}
		if m.is(amqpwire.ClassConnection, amqpwire.MethodConnectionClose) {
			break
		}
	}
	if m.replyCode != code || !strings.HasPrefix(m.replyText, prefix) {
		rc.t.Errorf("connection.close %d %q, want %d %q…", m.replyCode, m.replyText, code, prefix)
	}
	if m.channel != 0 {
		rc.t.Errorf("connection.close on channel %d, want 0", m.channel)
	}
	rc.writeMethod(0, amqpwire.ClassConnection, amqpwire.MethodConnectionCloseOk)
	rc.expectEOF()
	return m
}

// expectEOF waits for the broker to close the socket, ignoring anything it sends first. It returns
// the methods it skipped.
func (rc *rawConn) expectEOF() []method {
	rc.t.Helper()
	var skipped []method
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		f, err := rc.readFrame(time.Until(deadline))
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return skipped
		}
		if err != nil {
			rc.t.Fatalf("waiting for the broker to close the socket: %v", err)
		}
		if f.typ == frameMethod && len(f.payload) >= 4 {
			skipped = append(skipped, method{class: binary.BigEndian.Uint16(f.payload), id: binary.BigEndian.Uint16(f.payload[2:])})
		}
	}
	rc.t.Fatalf("the broker did not close the socket within %v", timeout)
	return nil
}

// Encoders for method arguments.

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func shortstr(s string) []byte {
	return append([]byte{byte(len(s))}, s...)
}
func longstr(s string) []byte { return append(u32(uint32(len(s))), s...) }

// table encodes a field table of booleans, strings and nested tables, keys in the given order.
func table(kv ...any) []byte {
	var b []byte
	for i := 0; i+1 < len(kv); i += 2 {
		b = append(b, shortstr(kv[i].(string))...)
		switch v := kv[i+1].(type) {
		case bool:
			x := byte(0)
			if v {
				x = 1
			}
			b = append(b, 't', x)
		case string:
			b = append(b, 'S')
			b = append(b, longstr(v)...)
		case []byte: // an encoded nested table
			b = append(b, 'F')
			b = append(b, v...)
		default:
			panic(fmt.Sprintf("table: unsupported %T", v))
		}
	}
	return append(u32(uint32(len(b))), b...)
}

// tune is a connection.tune or tune-ok.
type tune struct {
	channelMax uint16
	frameMax   uint32
	heartbeat  uint16
}

func parseTune(m method) tune {
	return tune{
		channelMax: binary.BigEndian.Uint16(m.args[0:2]),
		frameMax:   binary.BigEndian.Uint32(m.args[2:6]),
		heartbeat:  binary.BigEndian.Uint16(m.args[6:8]),
	}
}

// handshake options for a raw client.
type handshake struct {
	user, password string
	// capabilities advertised in client-properties (authentication_failure_close, …).
	capabilities []any
	// tuneOK chooses the tune-ok values from the broker's tune; nil echoes them.
	tuneOK func(tune) tune
}

// start sends the protocol header and answers connection.start; it returns the broker's
// connection.start.
func (rc *rawConn) start(h handshake) method {
	rc.t.Helper()
	if h.user == "" {
		uri, _ := amqp.ParseURI(brokerURL)
		h.user, h.password = uri.Username, uri.Password
	}
	rc.write([]byte(protocolHeader))
	start := rc.expect(amqpwire.ClassConnection, amqpwire.MethodConnectionStart)
	caps := table(h.capabilities...)
	props := table("product", "warren-conformance-raw", "capabilities", caps)
	rc.writeMethod(0, amqpwire.ClassConnection, amqpwire.MethodConnectionStartOk, props, shortstr("PLAIN"), longstr("\x00"+h.user+"\x00"+h.password), shortstr("en_US"))
	return start
}

// tune answers connection.tune and returns what the broker offered and what was answered.
func (rc *rawConn) tune(h handshake) (offered, answered tune) {
	rc.t.Helper()
	offered = parseTune(rc.expect(amqpwire.ClassConnection, amqpwire.MethodConnectionTune))
	answered = offered
	if h.tuneOK != nil {
		answered = h.tuneOK(offered)
	}
	rc.writeMethod(0, amqpwire.ClassConnection, amqpwire.MethodConnectionTuneOk, u16(answered.channelMax), u32(answered.frameMax), u16(answered.heartbeat))
	return offered, answered
}

// open sends connection.open for the URL's vhost and waits for open-ok.
func (rc *rawConn) open() {
	rc.t.Helper()
	uri, _ := amqp.ParseURI(brokerURL)
	rc.writeMethod(0, amqpwire.ClassConnection, amqpwire.MethodConnectionOpen, shortstr(uri.Vhost), shortstr(""), []byte{0})
	rc.expect(amqpwire.ClassConnection, amqpwire.MethodConnectionOpenOk)
}

// rawOpen dials and completes the handshake with the broker's own tune values.
func rawOpen(t testing.TB) *rawConn {
	t.Helper()
	rc := rawDial(t)
	rc.start(handshake{})
	rc.tune(handshake{})
	rc.open()
	return rc
}

// openChannel opens channel n.
func (rc *rawConn) openChannel(n uint16) {
	rc.t.Helper()
	rc.writeMethod(n, amqpwire.ClassChannel, amqpwire.MethodChannelOpen, shortstr(""))
	rc.expect(amqpwire.ClassChannel, amqpwire.MethodChannelOpenOk)
}

// contentHeader is a basic content header for a body of size bytes, with no properties.
func contentHeader(size uint64) []byte {
	p := append(u16(amqpwire.ClassBasic), u16(0)...)
	p = binary.BigEndian.AppendUint64(p, size)
	return append(p, u16(0)...)
}

// publishMethod is the basic.publish method frame payload.
func publishMethod(exchange, key string) []byte {
	p := append(u16(amqpwire.ClassBasic), u16(amqpwire.MethodBasicPublish)...)
	p = append(p, u16(0)...)
	p = append(p, shortstr(exchange)...)
	p = append(p, shortstr(key)...)
	return append(p, 0)
}

// publish sends basic.publish with body in one body frame.
func (rc *rawConn) publish(channel uint16, exchange, key string, body []byte) {
	rc.t.Helper()
	rc.writeFrame(frameMethod, channel, publishMethod(exchange, key))
	rc.writeFrame(frameHeader, channel, contentHeader(uint64(len(body))))
	rc.writeFrame(frameBody, channel, body)
}
