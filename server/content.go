package server

import (
	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
)

// content assembles one published message: basic.publish, then a content header, then body
// frames until the header's body size is reached (0-9-1 §4.2.6). Any other frame in between is
// 505 UNEXPECTED_FRAME, as in RabbitMQ.
type content struct {
	method     *amqpwire.BasicPublish // nil when no publish is in progress
	haveHeader bool
	header     amqpwire.ContentHeader
	body       []byte
}

// maxInitialBody caps the body buffer allocated up front from the header's size, so a client
// announcing huge bodies on many channels cannot make the broker reserve memory it never fills.
const maxInitialBody = 1 << 20

func (c *content) active() bool { return c.method != nil }

func (c *content) reset() {
	c.method = nil
	c.haveHeader = false
	c.header = amqpwire.ContentHeader{}
	c.body = nil
}

// unexpected is the error for a frame that does not fit the assembly state.
func (c *content) unexpected() error {
	switch {
	case c.method == nil:
		return amqpwire.NewConnectionError(amqpwire.CodeUnexpectedFrame, 0, 0, "expected method frame, got non method frame instead")
	case !c.haveHeader:
		return amqpwire.NewConnectionError(amqpwire.CodeUnexpectedFrame, amqpwire.ClassBasic, 40,
			"expected content header for class 60, got non content header frame instead")
	default:
		return amqpwire.NewConnectionError(amqpwire.CodeUnexpectedFrame, amqpwire.ClassBasic, 40,
			"expected content body, got non content body frame instead")
	}
}

func (ch *channel) basicPublish(m *amqpwire.BasicPublish) error {
	if m.Immediate {
		return amqpwire.NewConnectionError(amqpwire.CodeNotImplemented, m.ClassID(), m.MethodID(), "immediate=true")
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
		return amqpwire.NewConnectionError(amqpwire.CodeUnexpectedFrame, amqpwire.ClassBasic, 40,
			"expected content header for class 60, got one for class %d instead", c.header.ClassID)
	}
	if max := uint64(ch.conn.srv.cfg.MaxMessageSize); c.header.BodySize > max {
		size := c.header.BodySize
		c.reset()
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, amqpwire.ClassBasic, 40,
			"message size %d is larger than configured max size %d", size, max)
	}
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
	if uint64(len(c.body))+uint64(len(payload)) > size {
		return amqpwire.NewConnectionError(amqpwire.CodeUnexpectedFrame, amqpwire.ClassBasic, 40,
			"content body is longer than the %d bytes announced in its header", size)
	}
	if c.body == nil {
		c.body = make([]byte, 0, min(size, maxInitialBody))
	}
	c.body = append(c.body, payload...)
	if uint64(len(c.body)) == size {
		return ch.finishContent()
	}
	return nil
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
		Body:          c.body,
	}
	if msg.Body == nil {
		msg.Body = []byte{}
	}
	mandatory := m.Mandatory
	c.reset()
	if err := ch.publish(msg, mandatory); err != nil {
		return err
	}
	if st := ch.vh.st; st != nil {
		// Flow control: while the disk is behind, stop reading this connection, so a publisher
		// that outruns it (with or without confirms) is slowed by TCP instead of filling memory.
		st.WaitBelow(storeBacklogLimit)
	}
	return nil
}

// storeBacklogLimit is how many bytes of writes may wait for the store before publishers are
// held back.
const storeBacklogLimit = 64 << 20

// publish routes a complete message (or holds it for tx.commit) and confirms it.
func (ch *channel) publish(msg *queue.Message, mandatory bool) error {
	x, err := ch.vh.exchange(msg.Exchange)
	if err != nil {
		return err
	}
	if x.def.Internal {
		return amqpwire.NewChannelError(amqpwire.CodeAccessRefused, amqpwire.ClassBasic, 40,
			"cannot publish to internal exchange '%s' in vhost '%s'", msg.Exchange, ch.vh.name)
	}
	p := &msg.Properties
	if p.Flags&amqpwire.FlagUserID != 0 && p.UserID != ch.conn.user {
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, amqpwire.ClassBasic, 40,
			"user_id property set to '%s' but authenticated user was '%s'", p.UserID, ch.conn.user)
	}
	if p.Flags&amqpwire.FlagExpiration != 0 {
		if _, err := parseExpiration(p.Expiration); err != nil {
			return err
		}
	}
	msg.Persistent = p.Flags&amqpwire.FlagDeliveryMode != 0 && p.DeliveryMode == 2
	keys, err := ch.routingKeys(msg)
	if err != nil {
		return err
	}
	if ch.tx != nil {
		ch.tx.publishes = append(ch.tx.publishes, txPublish{x: x, msg: msg, keys: append([]string(nil), keys...), mandatory: mandatory})
		return nil
	}
	if !ch.confirm {
		ch.deliverPublish(x, msg, keys, mandatory, nil)
		return nil
	}
	ch.publishSeq++
	tag := ch.publishSeq
	if !msg.Persistent || ch.vh.st == nil {
		ch.deliverPublish(x, msg, keys, mandatory, nil)
		ch.send(&amqpwire.BasicAck{DeliveryTag: tag})
		return nil
	}
	// A persistent message is confirmed once every durable queue that took it has it on disk.
	w := newWriteWait(func(ok bool) { ch.sendConfirm(tag, ok) })
	ch.deliverPublish(x, msg, keys, mandatory, w)
	w.release()
	return nil
}

// deliverPublish enqueues msg on every queue it routes to, or returns it to a mandatory
// publisher with 312 NO_ROUTE. Writes of a persistent message are counted in w, if not nil.
func (ch *channel) deliverPublish(x *exchangeRec, msg *queue.Message, keys []string, mandatory bool, w *writeWait) {
	qs := ch.vh.route(x, keys, msg.Properties.Headers, &ch.scratch)
	if msg.Persistent && ch.vh.st != nil {
		ch.shareBody(msg, qs, w)
	}
	routed := false
	for _, q := range qs {
		var done func(error)
		if w != nil {
			w.add()
			done = w.done
		}
		ok, written := q.q.Publish(msg, done)
		if w != nil && !written {
			w.done(nil)
		}
		routed = routed || ok
	}
	if routed || !mandatory {
		return
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
}

// routingKeys returns the message's routing key plus the keys of its CC and BCC headers
// (RabbitMQ's sender-selected distribution). BCC is removed from the message before delivery.
func (ch *channel) routingKeys(msg *queue.Message) ([]string, error) {
	keys := append(ch.keys[:0], msg.RoutingKey)
	h := msg.Properties.Headers
	if len(h) == 0 {
		ch.keys = keys
		return keys, nil
	}
	hasBCC := false
	for _, name := range [...]string{"CC", "BCC"} {
		v, ok, err := h.Get(name)
		if err != nil {
			return nil, amqpwire.NewConnectionError(amqpwire.CodeSyntaxError, amqpwire.ClassBasic, 40, "invalid headers table: %v", err)
		}
		arr, isArray := v.([]any)
		if !ok || !isArray {
			continue
		}
		hasBCC = hasBCC || name == "BCC"
		for _, k := range arr {
			if s, isString := k.(string); isString {
				keys = append(keys, s)
			}
		}
	}
	ch.keys = keys
	if hasBCC {
		if err := stripHeader(msg, "BCC"); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// stripHeader removes one header and re-encodes the message's properties.
func stripHeader(msg *queue.Message, name string) error {
	var kept amqpwire.Table
	err := msg.Properties.Headers.Each(func(k string, v any) error {
		if k == name {
			return nil
		}
		var err error
		kept, err = amqpwire.AppendField(kept, k, v)
		return err
	})
	if err != nil {
		return amqpwire.NewConnectionError(amqpwire.CodeSyntaxError, amqpwire.ClassBasic, 40, "invalid headers table: %v", err)
	}
	msg.Properties.Headers = kept
	msg.RawProperties = msg.Properties.Append(nil)
	return nil
}

// shareBody writes the body of a persistent message bound for several durable queues once; each
// queue's record then refers to it.
func (ch *channel) shareBody(msg *queue.Message, qs []*queueRec, w *writeWait) {
	n := 0
	for _, q := range qs {
		if q.stored { // only durable queues write a persistent message's record at publish
			n++
		}
	}
	if n < 2 {
		return
	}
	st := ch.vh.st
	msg.StoreID = st.NewMessageID()
	var done func(error)
	if w != nil {
		w.add()
		done = w.done
	}
	st.PutShared(msg.StoreID, storeMessage(msg, true), n, done)
}
