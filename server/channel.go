package server

import (
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// channel is one AMQP channel of a connection.
type channel struct {
	id   uint16
	conn *conn
	vh   *vhost.Vhost
	log  zerolog.Logger

	// rmu is held by the connection's reader while it handles a frame of this channel, and by
	// whoever else acts as the reader: a consumer timeout closing the channel
	// (consumertimeout.go). It guards the fields owned by the reader below.
	rmu sync.Mutex
	// Owned by the connection's reader goroutine.
	closing   bool   // channel.close was sent; discarding frames until close-ok
	lastQueue string // the queue most recently declared on this channel
	content   content
	pub       amqpwire.BasicPublish // the last basic.publish, decoded in place (DecodeInto)
	// publishOK is the exchange last allowed by checkPublish, under that access snapshot.
	publishOK struct {
		access   *Access
		exchange string
	}
	confirm    bool
	publishSeq uint64
	tx         *txState // non-nil after tx.select
	scratch    vhost.Scratch
	keys       []string
	settleBuf  []unackedRec
	flowQ      *queue.Queue // congested queue the last publish went to; see flow.go
	flowTimer  *time.Timer

	// Shared with the queues delivering to this channel's consumers; see consumer.go.
	mu            sync.Mutex
	released      bool
	consumers     map[string]*consumer
	nextTag       uint64
	unacked       unackedList
	prefetchCount uint16 // per-consumer limit given to new consumers (basic.qos global=false)
	globalLimit   uint16 // channel-wide limit (basic.qos global=true); 0 is unlimited
	globalUnacked int    // unacked deliveries to this channel's consumers
	deliver       amqpwire.BasicDeliver
	confirmed     confirmState   // publisher confirms answered so far; see confirms.go
	acks          ackTimers      // acknowledgement timeouts; see consumertimeout.go
	reply         *replyConsumer // the direct reply-to consumer, if any; see replyto.go
	fwdOpen       []*fwdAttach   // attachments to other nodes' queues to close at release

	stats chanCounters // for listings (management_channels.go); atomics
}

func newChannel(c *conn, id uint16) *channel {
	return &channel{
		id:        id,
		conn:      c,
		vh:        c.vh,
		log:       c.log.With().Uint16("channel", id).Logger(),
		consumers: make(map[string]*consumer),
		content:   content{acct: c.srv.res},
	}
}

// send queues one method on this channel.
func (ch *channel) send(m amqpwire.Method) { ch.conn.send(ch.id, m) }

// handleFrame processes one frame for this channel. A channel error closes only the channel and
// is handled here; a connection error is returned.
func (ch *channel) handleFrame(f amqpwire.Frame) error {
	ch.rmu.Lock()
	defer ch.rmu.Unlock()
	if ch.closing {
		return ch.handleWhileClosing(f)
	}
	var m amqpwire.Method
	var err error
	switch f.Type {
	case amqpwire.FrameMethod:
		if ch.content.active() {
			return ch.content.unexpected()
		}
		if amqpwire.IsBasicPublish(f.Payload) {
			// The hot path: no allocation for the method or for repeated names.
			if err = ch.pub.DecodeInto(f.Payload); err != nil {
				return err
			}
			m = &ch.pub
		} else if m, err = amqpwire.DecodeMethod(f.Payload); err != nil {
			return err
		}
		err = ch.handleMethod(m)
	case amqpwire.FrameHeader:
		err = ch.handleHeader(f.Payload)
	case amqpwire.FrameBody:
		err = ch.handleBody(f.Payload)
	default:
		err = amqpwire.NewConnectionError(amqpwire.CodeFrameError, 0, 0, "unknown frame type %d", f.Type)
	}
	return ch.fail(err, m)
}

// fail turns a handler's error into the right close: a soft ChannelError closes the channel,
// anything else goes up to the connection. Errors without a method get the failing one's ids.
func (ch *channel) fail(err error, m amqpwire.Method) error {
	if err == nil {
		return nil
	}
	var che *amqpwire.ChannelError
	if errors.As(err, &che) {
		if che.ClassID == 0 && m != nil {
			che.ClassID, che.MethodID = m.ClassID(), m.MethodID()
		}
		if amqpwire.IsHardError(che.Code) {
			return &amqpwire.ConnectionError{Code: che.Code, Text: che.Text, ClassID: che.ClassID, MethodID: che.MethodID}
		}
		ch.log.Info().Uint16("code", che.Code).Str("text", che.Text).Msg("channel error")
		ch.closeWith(che)
		return nil
	}
	var coe *amqpwire.ConnectionError
	if errors.As(err, &coe) && coe.ClassID == 0 && m != nil {
		coe.ClassID, coe.MethodID = m.ClassID(), m.MethodID()
	}
	return err
}

// closeWith starts a server-initiated channel close: channel.close, release everything the
// channel holds, then discard frames until close-ok.
func (ch *channel) closeWith(che *amqpwire.ChannelError) {
	ch.send(&amqpwire.ChannelClose{ReplyCode: che.Code, ReplyText: che.Text, ClassId: che.ClassID, MethodId: che.MethodID})
	ch.closing = true
	ch.content.reset()
	ch.release()
}

// handleWhileClosing discards frames until channel.close-ok (0-9-1 §2.2.4). A crossing
// channel.close from the client is answered, and the channel stays closing until the close-ok
// of ours: the client sends it after its own close-ok arrives, so freeing the number earlier
// would make that close-ok look like a frame on an unopened channel. The number is free for a
// new channel.open only after it, as in RabbitMQ (rabbit_channel's closing state); an open
// before it is a second channel.open.
func (ch *channel) handleWhileClosing(f amqpwire.Frame) error {
	if f.Type != amqpwire.FrameMethod {
		return nil
	}
	m, err := amqpwire.DecodeMethod(f.Payload)
	if err != nil {
		return err
	}
	switch m.(type) {
	case *amqpwire.ChannelCloseOk:
		ch.conn.removeChannel(ch.id)
	case *amqpwire.ChannelClose:
		ch.send(&amqpwire.ChannelCloseOk{})
	case *amqpwire.ChannelOpen:
		return errSecondChannelOpen(m)
	}
	return nil
}

// handleMethod dispatches a method that arrived on an open channel.
func (ch *channel) handleMethod(m amqpwire.Method) error {
	switch m := m.(type) {
	case *amqpwire.ChannelOpen:
		return errSecondChannelOpen(m)
	case *amqpwire.ChannelClose:
		if ch.confirm {
			ch.conn.answerSettled(&answerScratch{}) // confirms already settled go out before the close-ok
		}
		ch.release()
		ch.send(&amqpwire.ChannelCloseOk{})
		ch.conn.removeChannel(ch.id)
		return nil
	case *amqpwire.ChannelCloseOk:
		return nil
	case *amqpwire.ChannelFlow:
		if !m.Active {
			// RabbitMQ refuses to stop deliveries this way; basic.qos is the tool for that.
			return errNotImplemented(m, "active=false")
		}
		ch.send(&amqpwire.ChannelFlowOk{Active: true})
		return nil
	case *amqpwire.ChannelFlowOk:
		return nil

	case *amqpwire.ExchangeDeclare:
		return ch.exchangeDeclare(m)
	case *amqpwire.ExchangeDelete:
		return ch.exchangeDelete(m)
	case *amqpwire.ExchangeBind:
		return ch.exchangeBind(m)
	case *amqpwire.ExchangeUnbind:
		return ch.exchangeUnbind(m)

	case *amqpwire.QueueDeclare:
		return ch.queueDeclare(m)
	case *amqpwire.QueueBind:
		return ch.queueBind(m)
	case *amqpwire.QueueUnbind:
		return ch.queueUnbind(m)
	case *amqpwire.QueuePurge:
		return ch.queuePurge(m)
	case *amqpwire.QueueDelete:
		return ch.queueDelete(m)

	case *amqpwire.BasicQos:
		return ch.basicQos(m)
	case *amqpwire.BasicConsume:
		return ch.basicConsume(m)
	case *amqpwire.BasicCancel:
		return ch.basicCancel(m)
	case *amqpwire.BasicPublish:
		return ch.basicPublish(m)
	case *amqpwire.BasicGet:
		return ch.basicGet(m)
	case *amqpwire.BasicAck:
		return ch.settle(m.DeliveryTag, m.Multiple, settleAck)
	case *amqpwire.BasicNack:
		return ch.settle(m.DeliveryTag, m.Multiple, rejectMode(m.Requeue))
	case *amqpwire.BasicReject:
		return ch.settle(m.DeliveryTag, false, rejectMode(m.Requeue))
	case *amqpwire.BasicRecover:
		return ch.basicRecover(m.Requeue, true)
	case *amqpwire.BasicRecoverAsync:
		return ch.basicRecover(m.Requeue, false)

	case *amqpwire.ConfirmSelect:
		return ch.confirmSelect(m)
	case *amqpwire.TxSelect:
		return ch.txSelect(m)
	case *amqpwire.TxCommit:
		return ch.txCommit()
	case *amqpwire.TxRollback:
		return ch.txRollback()
	}
	if m.ClassID() == amqpwire.ClassConnection {
		return errCommandInvalid(m, "%s is only allowed on channel 0", m.MethodName())
	}
	return errCommandInvalid(m, "unimplemented method %s", m.MethodName())
}

// expandQueueName applies RabbitMQ's shortcut: an empty queue name means the queue most
// recently declared on this channel.
func (ch *channel) expandQueueName(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	if ch.lastQueue == "" {
		return "", amqpwire.NewChannelError(amqpwire.CodeNotFound, 0, 0, "no previously declared queue")
	}
	return ch.lastQueue, nil
}

// release cancels the channel's consumers and requeues its unacked messages; the channel
// delivers nothing afterwards. It runs when the channel or its connection closes.
func (ch *channel) release() {
	ch.content.reset()
	ch.mu.Lock()
	if ch.released {
		ch.mu.Unlock()
		return
	}
	ch.released = true
	ch.conn.srv.counters.channelsClosed.Add(1)
	consumers := make([]*consumer, 0, len(ch.consumers))
	for _, cs := range ch.consumers {
		cs.cancelled = true
		if !cs.remote {
			consumers = append(consumers, cs)
		}
	}
	fwdOpen := ch.fwdOpen
	ch.fwdOpen = nil
	clear(ch.consumers)
	ch.dropReplyLocked()
	recs := ch.unacked.takeAll(nil)
	ch.stopAckTimerLocked()
	ch.mu.Unlock()

	if ch.tx != nil {
		// Acks taken under a transaction that never committed go back too.
		recs = append(recs, ch.tx.takeAcks()...)
	}
	fwd := false
	forEachQueue(recs, func(q *queue.Queue, es []*queue.Entry) {
		if q == nil {
			fwd = true // from another node: settleForwarded
			return
		}
		q.Requeue(es)
	})
	if fwd {
		settleForwarded(recs, settleRequeue)
	}
	closeAttachments(fwdOpen)
	for _, cs := range consumers {
		ch.vh.RemoveConsumer(cs.q, cs)
	}
}
