package server

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
)

// panicWatch is a log writer that remembers whether anything panicked.
type panicWatch struct {
	mu  sync.Mutex
	log bytes.Buffer
}

func (w *panicWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.Contains(p, []byte("panicked")) {
		w.log.Write(p)
	}
	return len(p), nil
}

func (w *panicWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.String()
}

// handshakeBytes is what a client sends to get to an open channel 1.
func handshakeBytes() []byte {
	var buf bytes.Buffer
	fw := amqpwire.NewFrameWriter(&buf)
	writeHandshake(&buf, fw, 4096)
	_ = fw.Flush()
	return buf.Bytes()
}

// writeHandshake writes a guest client's protocol header and handshake, up to an open channel
// 1, with frameMax.
func writeHandshake(buf *bytes.Buffer, fw *amqpwire.FrameWriter, frameMax uint32) {
	buf.Write(amqpwire.ProtocolHeader)
	fw.WriteMethod(0, &amqpwire.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	fw.WriteMethod(0, &amqpwire.ConnectionTuneOk{ChannelMax: 16, FrameMax: frameMax, Heartbeat: 0})
	fw.WriteMethod(0, &amqpwire.ConnectionOpen{VirtualHost: "/"})
	fw.WriteMethod(1, &amqpwire.ChannelOpen{})
}

func frame(typ uint8, ch uint16, payload []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[1:], ch)
	binary.BigEndian.PutUint32(b[3:], uint32(len(payload)))
	return append(append(b, payload...), amqpwire.FrameEnd)
}

func methodFrame(ch uint16, m amqpwire.Method) []byte {
	return frame(amqpwire.FrameMethod, ch, amqpwire.AppendMethod(nil, m))
}

// FuzzConnection feeds arbitrary bytes to an open connection of a real broker (over a pipe with
// a loopback address) after a valid handshake. Whatever arrives, the broker must not panic and
// the connection's goroutines must finish once the peer hangs up.
func FuzzConnection(f *testing.F) {
	declare := methodFrame(1, &amqpwire.QueueDeclare{Queue: "fz"})
	publish := methodFrame(1, &amqpwire.BasicPublish{RoutingKey: "fz", Mandatory: true})
	header := frame(amqpwire.FrameHeader, 1, []byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0x90, 0, 0, 2})
	body := frame(amqpwire.FrameBody, 1, []byte("abc"))
	consume := methodFrame(1, &amqpwire.BasicConsume{Queue: "fz", ConsumerTag: "c"})
	ack := methodFrame(1, &amqpwire.BasicAck{DeliveryTag: 1})
	seeds := [][]byte{
		nil,
		declare,
		bytes.Join([][]byte{declare, publish, header, body, consume, ack}, nil),
		bytes.Join([][]byte{declare, methodFrame(1, &amqpwire.ConfirmSelect{}), publish, header, body}, nil),
		bytes.Join([][]byte{methodFrame(1, &amqpwire.TxSelect{}), publish, header, body, methodFrame(1, &amqpwire.TxRollback{})}, nil),
		bytes.Join([][]byte{publish, body}, nil),
		bytes.Join([][]byte{declare, consume, consume}, nil),
		methodFrame(0, &amqpwire.ConnectionClose{ReplyCode: 200}),
		methodFrame(1, &amqpwire.ChannelClose{ReplyCode: 200}),
		frame(amqpwire.FrameHeartbeat, 1, nil),
		{1, 0, 1, 0xff, 0xff, 0xff, 0xff},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	hs := handshakeBytes()
	f.Fuzz(func(t *testing.T, input []byte) {
		watch := &panicWatch{}
		s := New(Config{Logger: zerolog.New(watch), HandshakeTimeout: 5 * time.Second})
		client, srv := net.Pipe()
		s.startConn(loopbackConn{srv})
		go func() { _, _ = io.Copy(io.Discard, client) }()
		_ = client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := client.Write(hs); err == nil {
			_, _ = client.Write(input)
		}
		_ = client.Close()
		done := make(chan struct{})
		go func() {
			s.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection still running 10s after the client hung up")
		}
		if p := watch.String(); p != "" {
			t.Fatalf("broker panicked: %s", strings.TrimSpace(p))
		}
	})
}

// loopbackConn makes a pipe look like a loopback TCP connection so guest may log in.
type loopbackConn struct{ net.Conn }

func (loopbackConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
