package server

import (
	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// content assembles one published message: basic.publish, then a content header, then body
// frames until the header's body size is reached (0-9-1 §4.2.6). Any other frame in between is
// 505 UNEXPECTED_FRAME, as in RabbitMQ.
//
// A body that arrives in several frames is kept as the frames' payloads and joined once it is
// complete, so a half-sent body costs the bytes received so far, not a buffer of the size its
// header announced; every body frame counts toward the memory alarm at once
// (resources.addBody). The write permission and the exchange are checked on the header,
// before any body is buffered.
type content struct {
	acct       *resources
	method     *amqpwire.BasicPublish // nil when no publish is in progress
	haveHeader bool
	header     amqpwire.ContentHeader
	x          *vhost.Exchange // the exchange, resolved when the header arrived
	body       []byte          // a body that came in one frame
	chunks     [][]byte        // a body that comes in several
	received   int
}

func (c *content) active() bool { return c.method != nil }

func (c *content) reset() {
	c.method = nil
	c.haveHeader = false
	c.header = amqpwire.ContentHeader{}
	c.x = nil
	c.body = nil
	clear(c.chunks)
	c.chunks = c.chunks[:0]
	c.received = 0
}

// unexpected is the error for a frame that does not fit the assembly state.
func (c *content) unexpected() error {
	switch {
	case c.method == nil:
		return amqpwire.NewConnectionError(amqpwire.CodeUnexpectedFrame, 0, 0, "expected method frame, got non method frame instead")
	case !c.haveHeader:
		return errUnexpectedContent("expected content header for class 60, got non content header frame instead")
	default:
		return errUnexpectedContent("expected content body, got non content body frame instead")
	}
}

func (ch *channel) basicPublish(m *amqpwire.BasicPublish) error {
	if m.Immediate {
		return errNotImplemented(m, "immediate=true")
	}
	ch.content.method = m
	return nil
}

func (ch *channel) handleHeader(payload []byte) error {
	c := &ch.content
	if c.method == nil || c.haveHeader {
		return c.unexpected()
	}
	if err := c.header.Decode(payload); err != nil {
		return err
	}
	if c.header.ClassID != amqpwire.ClassBasic {
		return errUnexpectedContent("expected content header for class 60, got one for class %d instead", c.header.ClassID)
	}
	if max := uint64(ch.conn.srv.cfg.MaxMessageSize); c.header.BodySize > max {
		size := c.header.BodySize
		c.reset()
		return errPublishPrecondition("message size %d is larger than configured max size %d", size, max)
	}
	// Refuse a publish the user may not make before buffering its body; the frames of the
	// body then arrive on a closing channel and are discarded.
	x, err := ch.publishTarget(c.method.Exchange)
	if err != nil {
		c.reset()
		return err
	}
	c.x = x
	c.haveHeader = true
	if c.header.BodySize == 0 {
		return ch.finishContent()
	}
	return nil
}

func (ch *channel) handleBody(payload []byte) error {
	c := &ch.content
	if c.method == nil || !c.haveHeader {
		return c.unexpected()
	}
	size := c.header.BodySize
	n := len(payload)
	if uint64(c.received)+uint64(n) > size {
		return errUnexpectedContent("content body is longer than the %d bytes announced in its header", size)
	}
	if c.received == 0 && uint64(n) == size {
		c.body = append([]byte(nil), payload...)
	} else {
		c.chunks = append(c.chunks, append([]byte(nil), payload...))
	}
	c.received += n
	c.acct.addBody(int64(n))
	if uint64(c.received) == size {
		return ch.finishContent()
	}
	return nil
}

// joinBody returns the complete body.
func (c *content) joinBody() []byte {
	if len(c.chunks) == 0 {
		if c.body == nil {
			return []byte{}
		}
		return c.body
	}
	body := make([]byte, 0, c.received)
	for _, p := range c.chunks {
		body = append(body, p...)
	}
	return body
}

// finishContent hands the assembled message to publish.
func (ch *channel) finishContent() error {
	c := &ch.content
	m := c.method
	msg := &queue.Message{
		Exchange:      m.Exchange,
		RoutingKey:    m.RoutingKey,
		Properties:    c.header.Properties,
		RawProperties: c.header.RawProperties,
		Body:          c.joinBody(),
	}
	mandatory := m.Mandatory
	x := c.x
	c.reset()
	if err := ch.publish(x, msg, mandatory); err != nil {
		return err
	}
	ch.paceAfterPublish()
	if st := ch.conn.srv.cfg.Store; st != nil {
		// Flow control: while the disk is behind, stop reading this connection, so a publisher
		// that outruns it (with or without confirms) is slowed by TCP instead of filling memory.
		st.WaitBelow(ch.conn.srv.res.storeBacklogLimit())
	}
	return nil
}

// publishTarget checks that the user may publish to exchange and returns it.
func (ch *channel) publishTarget(exchange string) (*vhost.Exchange, error) {
	if err := ch.checkPublish(exchange); err != nil {
		return nil, err
	}
	x, err := ch.vh.Exchange(exchange)
	if err != nil {
		return nil, err
	}
	if x.Internal() {
		return nil, amqpwire.NewChannelError(amqpwire.CodeAccessRefused, amqpwire.ClassBasic, amqpwire.MethodBasicPublish,
			"cannot publish to internal exchange '%s' in vhost '%s'", exchange, ch.vh.Name())
	}
	return x, nil
}

// publish routes a complete message for exchange x (checked by publishTarget) or holds it for
// tx.commit, and confirms it.
func (ch *channel) publish(x *vhost.Exchange, msg *queue.Message, mandatory bool) error {
	if err := ch.conn.checkTopic(permWrite, x.Kind(), x.Name(), msg.RoutingKey); err != nil {
		return err
	}
	p := &msg.Properties
	if p.Flags&amqpwire.FlagReplyTo != 0 && p.ReplyTo == replyToQueue {
		if err := ch.rewriteReplyTo(msg); err != nil {
			return err
		}
	}
	if p.Flags&amqpwire.FlagUserID != 0 && p.UserID != ch.conn.user {
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, amqpwire.ClassBasic, amqpwire.MethodBasicPublish,
			"user_id property set to '%s' but authenticated user was '%s'", p.UserID, ch.conn.user)
	}
	if p.Flags&amqpwire.FlagExpiration != 0 {
		ttl, err := parseExpiration(p.Expiration)
		if err != nil {
			return err
		}
		msg.HasTTL, msg.TTL = true, ttl
	}
	msg.Persistent = p.Flags&amqpwire.FlagDeliveryMode != 0 && p.DeliveryMode == 2
	keys, err := ch.routingKeys(msg)
	if err != nil {
		return err
	}
	cn := &ch.conn.srv.counters
	cn.received.Add(1)
	ch.stats.publish.Add(1)
	cn.observeSize(len(msg.Body))
	if ch.confirm {
		cn.receivedConfirm.Add(1)
		ch.stats.confirmPublishes.Add(1)
	}
	if ch.tx != nil {
		ch.tx.publishes = append(ch.tx.publishes, txPublish{x: x, msg: msg, keys: append([]string(nil), keys...), mandatory: mandatory})
		ch.stats.uncommitted.Add(1)
		return nil
	}
	if !ch.confirm {
		ch.deliverPublish(x, msg, keys, mandatory, nil)
		return nil
	}
	ch.publishSeq++
	// The confirm goes out once every durable queue that took a persistent message has it on
	// disk; it is a nack when a write failed or a queue refused the message (x-overflow).
	// confirms.go has the rest of the way.
	w := newConfirmWait(ch, ch.publishSeq)
	if ch.deliverPublish(x, msg, keys, mandatory, w) {
		w.refused.Store(true)
	}
	w.release()
	return nil
}

// deliverPublish publishes msg on the queues it routes to (vhost.Vhost.Publish), or returns it
// to a mandatory publisher with 312 NO_ROUTE. Writes of a persistent message are counted in w,
// if not nil. It reports whether a queue refused the message.
func (ch *channel) deliverPublish(x *vhost.Exchange, msg *queue.Message, keys []string, mandatory bool, w *writeWait) (refused bool) {
	var confirm vhost.Confirm
	if w != nil {
		confirm = w // a nil *writeWait must not become a non-nil interface
	}
	routed, refused := ch.vh.Publish(x, msg, keys, confirm, &ch.scratch)
	if x.Name() == "" && ch.conn.srv.deliverReplies(ch.vh, msg, keys) {
		routed = true // a direct reply-to reply (replyto.go)
	}
	if q := ch.conn.srv.flow.congestedQueue(&ch.scratch); q != nil {
		ch.flowQ = q
	}
	// As RabbitMQ: routed counts the queues a message was routed to; a message no queue
	// took is returned to a mandatory publisher, dropped otherwise.
	cn := &ch.conn.srv.counters
	if n := ch.scratch.Routed(); n > 0 {
		cn.routed.Add(uint64(n))
	}
	switch {
	case routed:
	case mandatory:
		cn.unroutableReturned.Add(1)
		ch.stats.returnUnroutable.Add(1)
	default:
		cn.unroutableDropped.Add(1)
		ch.stats.dropUnroutable.Add(1)
	}
	if routed || !mandatory {
		return refused
	}
	c := ch.conn
	c.wmu.Lock()
	c.out.WriteMethod(ch.id, &amqpwire.BasicReturn{
		ReplyCode:  amqpwire.CodeNoRoute,
		ReplyText:  amqpwire.ReplyName(amqpwire.CodeNoRoute),
		Exchange:   msg.Exchange,
		RoutingKey: msg.RoutingKey,
	})
	c.out.WriteContentRaw(ch.id, amqpwire.ClassBasic, msg.RawProperties, msg.Body, c.frameMax)
	c.wmu.Unlock()
	c.kickWriter()
	return refused
}

// routingKeys returns the message's routing key plus the keys of its CC and BCC headers
// (RabbitMQ's sender-selected distribution). BCC is removed from the message before delivery.
func (ch *channel) routingKeys(msg *queue.Message) ([]string, error) {
	keys, err := appendRoutingKeys(ch.keys[:0], msg)
	if err != nil {
		return nil, err
	}
	ch.keys = keys
	return keys, nil
}

// appendRoutingKeys appends msg's routing key and the keys of its CC and BCC headers to keys,
// and removes BCC from the message.
func appendRoutingKeys(keys []string, msg *queue.Message) ([]string, error) {
	keys = append(keys, msg.RoutingKey)
	h := msg.Properties.Headers
	if len(h) == 0 {
		return keys, nil
	}
	hasBCC := false
	for _, name := range [...]string{"CC", "BCC"} {
		v, ok, err := h.Get(name)
		if err != nil {
			return nil, amqpwire.NewConnectionError(amqpwire.CodeSyntaxError, amqpwire.ClassBasic, amqpwire.MethodBasicPublish, "invalid headers table: %v", err)
		}
		arr, isArray := v.([]any)
		if !ok || !isArray {
			continue
		}
		hasBCC = hasBCC || name == "BCC"
		for _, k := range arr {
			if s, isString := k.(string); isString {
				keys = append(keys, s)
				if name == "BCC" {
					msg.BCC = append(msg.BCC, s)
				}
			}
		}
	}
	if hasBCC {
		stripHeader(msg, "BCC")
	}
	return keys, nil
}

// stripHeader removes one header and re-encodes the message's properties.
func stripHeader(msg *queue.Message, name string) {
	msg.Properties.Headers = removeField(msg.Properties.Headers, name)
	msg.RawProperties = msg.Properties.Append(nil)
}

// checkPublish is the write check for a publish to exchange, remembered for the exchange last
// allowed under the current access snapshot: a publisher sending to one exchange pays for the
// pattern match once, not per message.
func (ch *channel) checkPublish(exchange string) error {
	a := ch.conn.srv.access.p.Load()
	if ch.publishOK.access == a && ch.publishOK.exchange == exchange {
		return nil
	}
	if err := ch.conn.checkAccess(permWrite, resExchange, exchange); err != nil {
		return err
	}
	ch.publishOK.access, ch.publishOK.exchange = a, exchange
	return nil
}
