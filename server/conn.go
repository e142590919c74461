package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

const (
	// closeOkTimeout bounds the wait for connection.close-ok after the server sent close.
	closeOkTimeout = 3 * time.Second
)

// conn is one client connection.
//
// The reader goroutine (serve) owns everything not listed under wmu: it does the handshake,
// reads frames, dispatches methods and tears the connection down. The writer goroutine
// (writeLoop) answers the publisher confirms the store completed (confirms.go), moves the
// output buffer to the socket and sends heartbeats.
type conn struct {
	srv *Server
	nc  net.Conn
	id  uint64
	log zerolog.Logger
	r   *amqpwire.FrameReader

	// Set by the handshake, read-only afterwards.
	frameMax            uint32
	channelMax          uint16
	heartbeat           time.Duration
	deadlineSet         time.Time // when setReadDeadline last moved the read deadline
	writeDeadlineSet    time.Time // when flush last moved the write deadline; writer goroutine only
	user                string
	vh                  *vhost.Vhost
	capCancelNotify     bool
	capAuthFailureClose bool
	capBlocked          bool // the client takes connection.blocked / unblocked
	tls                 bool
	mechanism           string         // the SASL mechanism the client logged in with
	clientProps         amqpwire.Table // connection.start-ok's client properties
	connectedAt         time.Time

	// Owned by the reader goroutine. channels is changed only by the reader, under chmu, so
	// that listings (management_channels.go) can read it under chmu.
	chmu      sync.Mutex
	channels  map[uint16]*channel
	closing   bool     // connection.close was sent; waiting for close-ok
	finished  bool     // the peer closed and got close-ok: stop reading
	exclusive []string // exclusive queues declared on this connection

	// Output, shared by the reader, the queues delivering to this connection's consumers and
	// the writer.
	wmu     sync.Mutex
	out     *amqpwire.FrameWriter
	spare   *amqpwire.FrameWriter
	blocked []*queue.Queue // queues whose delivery was refused because out was full
	// blockedFwd are forwarded consumers whose credit is held back because out was full
	// (forward_consume.go); granted again once out is written.
	blockedFwd []*fwdAttach

	// Publisher confirms completed by the store, answered by the writer (confirms.go).
	confirms       settledList
	confirmScratch answerScratch // the writer's

	wake       chan struct{} // cap 1: output is waiting
	stopWriter chan struct{}
	writerDone chan struct{}
	forced     atomic.Bool   // Shutdown sent connection.close from another goroutine
	io         ioCounters    // bytes and reads/writes on the socket, for listings
	stop       chan struct{} // closed by forceClose: wakes a reader blocked by an alarm
	alarmHeld  atomic.Bool   // the reader waits for a resource alarm to clear (alarm.go)
	opened     atomic.Bool   // the handshake finished
	writeErr   atomic.Bool
}

var _ vhost.Owner = (*conn)(nil)

// OwnerName implements vhost.Owner: the connection in listings of its exclusive queues.
func (c *conn) OwnerName() string {
	return fmt.Sprintf("%s (connection %d)", c.nc.RemoteAddr(), c.id)
}

func newConn(s *Server, nc net.Conn) *conn {
	id := s.connIDs.Add(1)
	c := &conn{
		srv:        s,
		nc:         nc,
		id:         id,
		log:        s.log.With().Uint64("conn", id).Str("peer", nc.RemoteAddr().String()).Logger(),
		channels:   make(map[uint16]*channel),
		wake:       make(chan struct{}, 1),
		stopWriter: make(chan struct{}),
		writerDone: make(chan struct{}),
		stop:       make(chan struct{}),
	}
	// The socket's traffic is counted for listings (recv_oct, send_oct, ...): one atomic add
	// per read or write call.
	w := countingWriter{nc, &c.io}
	c.out, c.spare = amqpwire.NewFrameWriter(w), amqpwire.NewFrameWriter(w)
	c.r = amqpwire.NewFrameReader(countingReader{nc, &c.io}, amqpwire.FrameMinSize)
	return c
}

// serve runs the connection to its end on the calling goroutine.
func (c *conn) serve() {
	defer func() {
		if p := recover(); p != nil {
			// A bug must cost one connection, not the broker.
			c.log.Error().Interface("panic", p).Stack().Msg("connection handler panicked")
		}
		c.teardown()
	}()
	if err := c.handshake(); err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, errAuthFailed) && c.srv.handshakeLog.note(peerIP(c.nc.RemoteAddr()), err.Error(), time.Now()) {
			c.log.Info().Err(err).Msg("handshake failed (further failures from this address are logged in summary)")
		}
		return
	}
	c.log.Info().Msg("connection opened")
	for {
		c.setReadDeadline()
		f, err := c.r.ReadFrame()
		if err != nil {
			c.readFailed(err)
			return
		}
		if (f.Type == amqpwire.FrameHeader || f.Type == amqpwire.FrameBody) && c.srv.alarms.any() {
			// The connection publishes during a resource alarm: hold this frame, and the
			// connection, until the alarm clears (alarm.go).
			c.waitForAlarms()
		}
		if done := c.handleFrame(f); done {
			if c.finished {
				// RabbitMQ leaves closing the socket to the client after close-ok; closing it
				// first can make the client report the EOF as an error.
				c.drain()
			}
			return
		}
	}
}

// drain discards input until the peer closes the socket or closeOkTimeout passes. After a
// frame-level error the stream cannot be parsed any more, but the peer must still be able to
// read our connection.close.
func (c *conn) drain() {
	_ = c.nc.SetReadDeadline(time.Now().Add(closeOkTimeout))
	_, _ = io.Copy(io.Discard, c.nc)
}

// setReadDeadline lets a peer be silent for two heartbeat intervals (0-9-1 §4.2.7), or for
// the close-ok wait while closing. Moving a deadline costs a runtime timer update, so it moves
// at most once per half interval, 2.5 intervals ahead: a silent peer is dropped after 2 to 2.5
// intervals.
func (c *conn) setReadDeadline() {
	switch {
	case c.closing || c.forced.Load():
		// Deadline already set when the close was sent.
	case c.heartbeat > 0:
		now := time.Now()
		if now.Sub(c.deadlineSet) < c.heartbeat/2 {
			return
		}
		c.deadlineSet = now
		_ = c.nc.SetReadDeadline(now.Add(2*c.heartbeat + c.heartbeat/2))
	}
}

func (c *conn) readFailed(err error) {
	var ce *amqpwire.ConnectionError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		c.log.Warn().Uint16("code", ce.Code).Str("text", ce.Text).Msg("frame error")
		c.sendClose(ce)
		c.drain()
	case c.closing || c.forced.Load():
		// The peer did not answer our close in time, or hung up: either way we are done.
	case errors.As(err, &ne) && ne.Timeout():
		c.log.Warn().Dur("heartbeat", c.heartbeat).Msg("missed heartbeats from client, closing connection")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Info().Msg("client closed the connection without connection.close")
	default:
		c.log.Info().Err(err).Msg("read failed")
	}
}

// handleFrame processes one frame and reports whether the connection is finished.
func (c *conn) handleFrame(f amqpwire.Frame) bool {
	if c.forced.Load() {
		c.closing = true
	}
	if f.Type == amqpwire.FrameHeartbeat && (f.Channel == 0 || c.closing) {
		return false
	}
	if c.closing {
		return c.handleWhileClosing(f)
	}
	err := c.dispatch(f)
	if err == nil {
		return c.finished
	}
	var ce *amqpwire.ConnectionError
	if !errors.As(err, &ce) {
		c.log.Error().Err(err).Msg("internal error")
		ce = amqpwire.NewConnectionError(amqpwire.CodeInternalError, 0, 0, "%v", err)
	}
	c.log.Warn().Uint16("code", ce.Code).Str("text", ce.Text).Uint16("channel", f.Channel).Msg("connection error")
	c.sendClose(ce)
	return false
}

// handleWhileClosing discards everything but connection.close-ok and connection.close
// (0-9-1 §2.2.4: after sending close, a peer MUST discard frames until close-ok).
func (c *conn) handleWhileClosing(f amqpwire.Frame) bool {
	if f.Type != amqpwire.FrameMethod || f.Channel != 0 {
		return false
	}
	m, err := amqpwire.DecodeMethod(f.Payload)
	if err != nil {
		return false
	}
	switch m.(type) {
	case *amqpwire.ConnectionCloseOk:
		return true
	case *amqpwire.ConnectionClose:
		c.send(0, &amqpwire.ConnectionCloseOk{})
		return true
	}
	return false
}

// dispatch routes a frame to the connection or to its channel.
func (c *conn) dispatch(f amqpwire.Frame) error {
	if f.Type == amqpwire.FrameHeartbeat {
		return amqpwire.NewConnectionError(amqpwire.CodeUnexpectedFrame, 0, 0, "heartbeat frame on channel %d", f.Channel)
	}
	if f.Channel == 0 {
		if f.Type != amqpwire.FrameMethod {
			return amqpwire.NewConnectionError(amqpwire.CodeUnexpectedFrame, 0, 0, "non-method frame type %d on channel 0", f.Type)
		}
		m, err := amqpwire.DecodeMethod(f.Payload)
		if err != nil {
			return err
		}
		return c.handleConnectionMethod(m)
	}
	ch := c.channels[f.Channel]
	if ch == nil {
		return c.openChannel(f)
	}
	return ch.handleFrame(f)
}

// openChannel handles the first frame on an unused channel number: only channel.open is valid.
func (c *conn) openChannel(f amqpwire.Frame) error {
	if f.Type != amqpwire.FrameMethod {
		return errExpectedChannelOpen(nil)
	}
	m, err := amqpwire.DecodeMethod(f.Payload)
	if err != nil {
		return err
	}
	if _, ok := m.(*amqpwire.ChannelOpen); !ok {
		return errExpectedChannelOpen(m)
	}
	if c.channelMax != 0 && f.Channel > c.channelMax {
		return amqpwire.NewConnectionError(amqpwire.CodeNotAllowed, m.ClassID(), m.MethodID(),
			"channel number %d exceeds the negotiated channel_max (%d)", f.Channel, c.channelMax)
	}
	if err := c.checkChannelLimit(); err != nil {
		return err
	}
	c.addChannel(newChannel(c, f.Channel))
	c.srv.counters.channelsOpened.Add(1)
	c.send(f.Channel, &amqpwire.ChannelOpenOk{})
	return nil
}

func (c *conn) handleConnectionMethod(m amqpwire.Method) error {
	switch m := m.(type) {
	case *amqpwire.ConnectionClose:
		c.log.Info().Uint16("code", m.ReplyCode).Str("text", m.ReplyText).Msg("client closed the connection")
		c.releaseAll()
		c.send(0, &amqpwire.ConnectionCloseOk{})
		c.finished = true
		return nil
	case *amqpwire.ConnectionCloseOk:
		// Unsolicited close-ok: RabbitMQ ignores it too.
		return nil
	case *amqpwire.ConnectionBlocked, *amqpwire.ConnectionUnblocked:
		return nil
	case *amqpwire.ConnectionUpdateSecret:
		c.send(0, &amqpwire.ConnectionUpdateSecretOk{})
		return nil
	}
	return errCommandInvalid(m, "unexpected method %s on channel 0", m.MethodName())
}

// sendClose starts a server-initiated close: connection.close, then discard everything until
// close-ok (or the timeout).
func (c *conn) sendClose(ce *amqpwire.ConnectionError) {
	if c.closing {
		return
	}
	c.closing = true
	c.releaseAll()
	c.send(0, &amqpwire.ConnectionClose{ReplyCode: ce.Code, ReplyText: ce.Text, ClassId: ce.ClassID, MethodId: ce.MethodID})
	_ = c.nc.SetReadDeadline(time.Now().Add(closeOkTimeout))
}

// forceClose is Shutdown's close, safe from any goroutine: it writes connection.close 320 and
// lets the reader wait for close-ok.
func (c *conn) forceClose(reason string) {
	if c.forced.Swap(true) {
		return
	}
	close(c.stop)
	if !c.opened.Load() {
		_ = c.nc.Close()
		return
	}
	c.send(0, &amqpwire.ConnectionClose{ReplyCode: amqpwire.CodeConnectionForced,
		ReplyText: amqpwire.ReplyName(amqpwire.CodeConnectionForced) + " - " + reason})
	_ = c.nc.SetReadDeadline(time.Now().Add(closeOkTimeout))
}

// send queues one method frame for the writer.
func (c *conn) send(channel uint16, m amqpwire.Method) {
	c.wmu.Lock()
	c.out.WriteMethod(channel, m)
	c.wmu.Unlock()
	c.kickWriter()
}

func (c *conn) kickWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop moves output to the socket, one write per batch of whatever is waiting, and sends
// heartbeats when nothing else was sent for half an interval.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer func() {
		if p := recover(); p != nil {
			// Kicking queues runs delivery code here: a bug must cost one connection only.
			c.log.Error().Interface("panic", p).Stack().Msg("connection writer panicked")
			c.writeErr.Store(true)
			_ = c.nc.Close()
		}
	}()
	var tick <-chan time.Time
	if c.heartbeat > 0 {
		t := time.NewTicker(c.heartbeat / 2)
		defer t.Stop()
		tick = t.C
	}
	wrote := false
	for {
		select {
		case <-c.wake:
		case <-tick:
			if !wrote {
				c.wmu.Lock()
				c.out.WriteHeartbeat()
				c.wmu.Unlock()
			}
			wrote = false
		case <-c.stopWriter:
			c.writeConfirms()
			c.flush()
			return
		}
		c.writeConfirms()
		if c.flush() {
			wrote = true
		}
	}
}

// flush writes what is waiting and kicks queues that were held back by a full buffer.
func (c *conn) flush() bool {
	c.wmu.Lock()
	w := c.out
	if w.Buffered() == 0 {
		c.wmu.Unlock()
		return false
	}
	c.out, c.spare = c.spare, w
	blocked := c.blocked
	c.blocked = nil
	blockedFwd := c.blockedFwd
	c.blockedFwd = nil
	c.wmu.Unlock()

	if writeTimeout := c.srv.cfg.WriteTimeout; !c.writeErr.Load() {
		// Moving the deadline is a runtime timer update: do it at most once per half timeout,
		// so a write gets between writeTimeout/2 and writeTimeout.
		if now := time.Now(); now.Sub(c.writeDeadlineSet) > writeTimeout/2 {
			c.writeDeadlineSet = now
			_ = c.nc.SetWriteDeadline(now.Add(writeTimeout))
		}
		if err := w.Flush(); err != nil {
			c.writeErr.Store(true)
			c.log.Info().Err(err).Msg("write failed, closing connection")
			_ = c.nc.Close()
		}
	}
	for i, q := range blocked {
		if !containsQueue(blocked[:i], q) {
			q.Kick()
		}
	}
	if blockedFwd != nil {
		resumeAttachments(blockedFwd)
	}
	return true
}

func containsQueue(qs []*queue.Queue, q *queue.Queue) bool {
	for _, x := range qs {
		if x == q {
			return true
		}
	}
	return false
}

// teardown releases everything the connection held: channels (requeueing their unacked
// messages), exclusive queues, the writer and the socket.
func (c *conn) teardown() {
	c.releaseAll()
	if c.opened.Load() {
		close(c.stopWriter)
		<-c.writerDone
	}
	c.stopConfirms()
	_ = c.nc.Close()
	if c.opened.Load() {
		c.srv.counters.connectionsClosed.Add(1)
	}
	c.log.Debug().Msg("connection closed")
}

// releaseAll closes every channel (requeueing unacked messages) and deletes the connection's
// exclusive queues. It runs before close-ok or close is sent, so a client that saw the close
// also sees its queues gone, as with RabbitMQ.
func (c *conn) releaseAll() {
	for id, ch := range c.channels {
		ch.rmu.Lock() // a consumer timeout may be closing it
		ch.release()
		ch.rmu.Unlock()
		c.removeChannel(id)
	}
	if c.vh != nil {
		c.vh.DeleteExclusiveQueues(c, c.exclusive)
		c.exclusive = nil
	}
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return h
}
