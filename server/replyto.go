package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"strings"
	"sync"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// Direct reply-to (RabbitMQ's amq.rabbitmq.reply-to): an RPC client consumes, no-ack, from the
// pseudo-queue amq.rabbitmq.reply-to; its requests published with that reply_to leave with
// reply_to rewritten to amq.rabbitmq.reply-to.<suffix>, a name for the client's channel; a reply
// published to the default exchange with that routing key goes straight to the channel. No queue
// is created and nothing is stored: a reply whose channel is gone is unroutable.
const (
	replyToQueue  = "amq.rabbitmq.reply-to"
	replyToPrefix = replyToQueue + "."
)

// replyConsumer is a channel's reply-to subscription; a channel has at most one.
type replyConsumer struct {
	tag  string
	name string // amq.rabbitmq.reply-to.<suffix>: the reply_to its requests carry
}

// replyRegistry finds the channel behind a reply-to name. It holds one entry per reply
// consumer (not per request): entries come with basic.consume and go with basic.cancel or the
// channel's end.
type replyRegistry struct {
	m sync.Map // suffix → *channel
}

func (r *replyRegistry) add(suffix string, ch *channel) { r.m.Store(suffix, ch) }

func (r *replyRegistry) remove(suffix string, ch *channel) { r.m.CompareAndDelete(suffix, ch) }

// lookup returns the channel of a reply-to name, or nil.
func (r *replyRegistry) lookup(name string) *channel {
	suffix, ok := strings.CutPrefix(name, replyToPrefix)
	if !ok {
		return nil
	}
	v, ok := r.m.Load(suffix)
	if !ok {
		return nil
	}
	return v.(*channel)
}

// replySuffix names a reply consumer: the connection and channel numbers (so a name can be
// traced to its owner in logs and listings) and a 128-bit random key, so that a name cannot be
// guessed and a stale one never reaches a later consumer on the same channel.
func replySuffix(connID uint64, chID uint16) string {
	var owner [10]byte
	binary.BigEndian.PutUint64(owner[:], connID)
	binary.BigEndian.PutUint16(owner[8:], chID)
	var key [16]byte
	_, _ = rand.Read(key[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(owner[:]) + "." + base64.RawURLEncoding.EncodeToString(key[:])
}

// consumeReplyTo is basic.consume on amq.rabbitmq.reply-to, with RabbitMQ's checks in its order:
// the tag of one of the channel's queue consumers, then acknowledgement mode, then a second
// reply consumer (whatever its tag).
func (ch *channel) consumeReplyTo(m *amqpwire.BasicConsume) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	_, dup := ch.consumers[m.ConsumerTag]
	switch {
	case dup:
		return amqpwire.NewConnectionError(amqpwire.CodeNotAllowed, m.ClassID(), m.MethodID(), "attempt to reuse consumer tag '%s'", m.ConsumerTag)
	case !m.NoAck:
		return errPrecondition("reply consumer cannot acknowledge")
	case ch.reply != nil:
		return errPrecondition("reply consumer already set")
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = uniqueName("amq.ctag-")
	}
	suffix := replySuffix(ch.conn.id, ch.id)
	ch.reply = &replyConsumer{tag: tag, name: replyToPrefix + suffix}
	ch.conn.srv.replies.add(suffix, ch)
	if !m.NoWait {
		ch.send(&amqpwire.BasicConsumeOk{ConsumerTag: tag})
	}
	return nil
}

// cancelReplyTo ends the channel's reply consumer if it has tag, and reports whether it did.
func (ch *channel) cancelReplyTo(tag string) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.reply == nil || ch.reply.tag != tag {
		return false
	}
	ch.dropReplyLocked()
	return true
}

// dropReplyLocked forgets the reply consumer: its name is stale from now on.
func (ch *channel) dropReplyLocked() {
	if ch.reply == nil {
		return
	}
	ch.conn.srv.replies.remove(strings.TrimPrefix(ch.reply.name, replyToPrefix), ch)
	ch.reply = nil
}

// rewriteReplyTo gives a request published with reply_to amq.rabbitmq.reply-to the name of this
// channel's reply consumer, or fails as RabbitMQ does when there is none.
func (ch *channel) rewriteReplyTo(msg *queue.Message) error {
	ch.mu.Lock()
	r := ch.reply
	ch.mu.Unlock()
	if r == nil {
		return errPublishPrecondition("fast reply consumer does not exist")
	}
	msg.Properties.ReplyTo = r.name
	msg.RawProperties = msg.Properties.Append(nil)
	return nil
}

// deliverReplies hands msg, published to vh's default exchange, to the reply consumers its
// routing keys name in vh, and reports whether any took it.
func (s *Server) deliverReplies(vh *vhost.Vhost, msg *queue.Message, keys []string) bool {
	delivered := false
	for i, k := range keys {
		if !strings.HasPrefix(k, replyToPrefix) || slices.Contains(keys[:i], k) {
			continue
		}
		if rch := s.replies.lookup(k); rch != nil && rch.vh == vh && rch.deliverReply(msg, k) {
			delivered = true
		}
	}
	return delivered
}

// deliverReply writes msg to the channel's reply consumer, if it is still the one called name.
// Like RabbitMQ, a reply is not held back by a full output buffer: the consumer asked for it and
// acknowledges nothing, so there is no credit to wait for; the memory alarm bounds the total.
func (ch *channel) deliverReply(msg *queue.Message, name string) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	r := ch.reply
	if ch.released || r == nil || r.name != name {
		return false
	}
	c := ch.conn
	c.srv.counters.delivered(false, true, false)
	ch.stats.deliverNoAck.Add(1)
	ch.nextTag++
	ch.deliver = amqpwire.BasicDeliver{
		ConsumerTag: r.tag,
		DeliveryTag: ch.nextTag,
		Exchange:    msg.Exchange,
		RoutingKey:  msg.RoutingKey,
	}
	c.wmu.Lock()
	c.out.WriteMethod(ch.id, &ch.deliver)
	c.out.WriteContentRaw(ch.id, amqpwire.ClassBasic, msg.RawProperties, msg.Body, c.frameMax)
	c.wmu.Unlock()
	c.kickWriter()
	return true
}

// declareReplyTo is queue.declare of a name in the reply-to namespace, passive or not, as
// RabbitMQ answers it: amq.rabbitmq.reply-to itself always exists (0 messages, 1 consumer), a
// reply name exists while its consumer does, anything else is 404.
func (ch *channel) declareReplyTo(m *amqpwire.QueueDeclare) error {
	name := m.Queue
	exists := name == replyToQueue
	if !exists {
		rch := ch.conn.srv.replies.lookup(name)
		exists = rch != nil && rch.vh == ch.vh && rch.hasReply(name)
	}
	if !exists {
		return ch.vh.ErrNoQueue(name)
	}
	ch.lastQueue = name
	if !m.NoWait {
		ch.send(&amqpwire.QueueDeclareOk{Queue: name, MessageCount: 0, ConsumerCount: 1})
	}
	return nil
}

// hasReply reports whether the channel's reply consumer is called name.
func (ch *channel) hasReply(name string) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return !ch.released && ch.reply != nil && ch.reply.name == name
}
