package server

import (
	"errors"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// settleMode is what an ack, nack or reject does with the deliveries it names.
type settleMode int

const (
	settleAck     settleMode = iota // done with: forget
	settleRequeue                   // back to the queue, redelivered
	settleDrop                      // rejected without requeue: discarded
)

func rejectMode(requeue bool) settleMode {
	if requeue {
		return settleRequeue
	}
	return settleDrop
}

func (ch *channel) basicQos(m *amqpwire.BasicQos) error {
	if m.PrefetchSize != 0 {
		// RabbitMQ does not implement byte-based prefetch and says so.
		return errNotImplemented(m, "prefetch_size!=0 (%d)", m.PrefetchSize)
	}
	ch.mu.Lock()
	if m.Global {
		// RabbitMQ's reading of global: one limit shared by every consumer on the channel.
		ch.globalLimit = m.PrefetchCount
	} else {
		// per_consumer_qos: a limit for each consumer created on this channel from now on.
		ch.prefetchCount = m.PrefetchCount
	}
	kicks := ch.unblockLocked(nil)
	ch.mu.Unlock()
	ch.send(&amqpwire.BasicQosOk{})
	kickQueues(kicks)
	return nil
}

func (ch *channel) basicConsume(m *amqpwire.BasicConsume) error {
	if m.Queue == replyToQueue {
		return ch.consumeReplyTo(m)
	}
	q, err := ch.queueNamed(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.conn.checkAccess(permRead, resQueue, q.Name()); err != nil {
		return err
	}
	prio, err := vhost.ConsumerArgs(q.Name(), ch.vh.Name(), m.Arguments)
	if err != nil {
		return err
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = uniqueName("amq.ctag-")
	}
	ch.mu.Lock()
	if ch.globalLimit > 0 && q.Type() == "quorum" {
		// rabbit_quorum_queue refuses a consumer under a channel-wide limit, and RabbitMQ
		// 3.10.8 closes the connection for it.
		ch.mu.Unlock()
		return amqpwire.NewConnectionError(amqpwire.CodeNotImplemented, m.ClassID(), m.MethodID(),
			"queue '%s' in vhost '%s' does not support global qos", q.Name(), ch.vh.Name())
	}
	if _, dup := ch.consumers[tag]; dup || (ch.reply != nil && ch.reply.tag == tag) {
		ch.mu.Unlock()
		return amqpwire.NewConnectionError(amqpwire.CodeNotAllowed, m.ClassID(), m.MethodID(), "attempt to reuse consumer tag '%s'", tag)
	}
	// The consumer starts pending so nothing is delivered before consume-ok is on the wire.
	cs := &consumer{ch: ch, tag: tag, q: q, noAck: m.NoAck, prefetch: ch.prefetchCount, pending: true,
		exclusive: m.Exclusive, args: m.Arguments}
	ch.consumers[tag] = cs
	ch.mu.Unlock()
	if q.Remote() != "" {
		return ch.consumeRemote(cs, m) // held by another node (forward_consume.go)
	}

	if err := q.AddConsumer(cs, tag, queue.ConsumerOptions{Exclusive: m.Exclusive, NoAck: m.NoAck, Priority: prio}); err != nil {
		ch.mu.Lock()
		delete(ch.consumers, tag)
		ch.mu.Unlock()
		if errors.Is(err, queue.ErrExclusiveUse) {
			return amqpwire.NewChannelError(amqpwire.CodeAccessRefused, m.ClassID(), m.MethodID(),
				"queue '%s' in vhost '%s' in exclusive use", q.Name(), ch.vh.Name())
		}
		return ch.vh.ErrNoQueue(q.Name())
	}
	ch.mu.Lock()
	if !m.NoWait {
		ch.send(&amqpwire.BasicConsumeOk{ConsumerTag: tag})
	}
	cs.pending = false
	ch.mu.Unlock()
	q.Core().Kick()
	return nil
}

func (ch *channel) basicCancel(m *amqpwire.BasicCancel) error {
	if ch.cancelReplyTo(m.ConsumerTag) {
		if !m.NoWait {
			ch.send(&amqpwire.BasicCancelOk{ConsumerTag: m.ConsumerTag})
		}
		return nil
	}
	ch.mu.Lock()
	cs := ch.consumers[m.ConsumerTag]
	var remote bool
	if cs != nil {
		delete(ch.consumers, m.ConsumerTag)
		cs.cancelled = true
		remote = cs.remote
	}
	ch.mu.Unlock()
	if !m.NoWait {
		// Cancelling an unknown tag is not an error (0-9-1 §1.8.3.5, and RabbitMQ agrees).
		ch.send(&amqpwire.BasicCancelOk{ConsumerTag: m.ConsumerTag})
	}
	if remote {
		ch.cancelRemote(cs)
	} else if cs != nil {
		cs.q.Touch()
		ch.vh.RemoveConsumer(cs.q, cs)
	}
	return nil
}

func (ch *channel) basicGet(m *amqpwire.BasicGet) error {
	q, err := ch.queueNamed(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.conn.checkAccess(permRead, resQueue, q.Name()); err != nil {
		return err
	}
	if q.Remote() != "" {
		return ch.getRemote(q, m) // held by another node (forward_get.go)
	}
	e, remaining := q.Core().Get(m.NoAck)
	cn := &ch.conn.srv.counters
	if e == nil {
		cn.getEmpty.Add(1)
		ch.stats.getEmpty.Add(1)
		q.Core().Counters().GetEmpty.Add(1)
		ch.send(&amqpwire.BasicGetEmpty{})
		return nil
	}
	cn.delivered(true, m.NoAck, e.Redelivered)
	ch.stats.delivered(q.Core(), true, m.NoAck, e.Redelivered)
	c := ch.conn
	ch.mu.Lock()
	ch.nextTag++
	if !m.NoAck {
		r := unackedRec{tag: ch.nextTag, q: q.Core(), e: e}
		ch.stampLocked(&r, q)
		ch.unacked.push(r)
	}
	c.wmu.Lock()
	c.out.WriteMethod(ch.id, &amqpwire.BasicGetOk{
		DeliveryTag:  ch.nextTag,
		Redelivered:  e.Redelivered,
		Exchange:     e.Msg.Exchange,
		RoutingKey:   e.Msg.RoutingKey,
		MessageCount: uint32(remaining),
	})
	c.out.WriteContentRaw(ch.id, amqpwire.ClassBasic, deliveryProperties(q.Core(), e), e.Msg.Body, c.frameMax)
	c.wmu.Unlock()
	ch.mu.Unlock()
	c.kickWriter()
	return nil
}

// settle handles basic.ack, basic.nack and basic.reject.
func (ch *channel) settle(tag uint64, multiple bool, mode settleMode) error {
	ch.mu.Lock()
	recs, ok := ch.unacked.take(tag, multiple, ch.settleBuf[:0])
	recs, ok = ch.settleLate(tag, multiple, ok, recs)
	if !ok {
		ch.mu.Unlock()
		return errPrecondition("unknown delivery tag %d", tag)
	}
	if ch.tx != nil {
		// Under tx.select, acks take effect at commit; the tag is checked now, as RabbitMQ does.
		ch.tx.acks = append(ch.tx.acks, txAck{mode: mode, recs: append([]unackedRec(nil), recs...)})
		ch.stats.acksUncommitted.Add(int64(len(recs)))
		ch.mu.Unlock()
		return nil
	}
	kicks := ch.releaseCreditLocked(recs)
	ch.mu.Unlock()
	if mode == settleAck {
		ch.conn.srv.counters.acknowledged.Add(uint64(len(recs)))
		ch.stats.acked(recs)
	}
	applySettle(recs, mode)
	kickQueues(kicks)
	clear(recs)
	ch.settleBuf = recs[:0]
	return nil
}

// releaseCreditLocked returns the prefetch credit of settled deliveries and the queues of
// consumers that can take more now.
func (ch *channel) releaseCreditLocked(recs []unackedRec) []*queue.Queue {
	for _, r := range recs {
		if r.cs != nil {
			r.cs.unacked--
			ch.globalUnacked--
		}
	}
	return ch.unblockLocked(nil)
}

// unblockLocked clears the blocked flag of the channel's consumers and returns their queues, to
// be kicked once the channel's lock is released.
func (ch *channel) unblockLocked(kicks []*queue.Queue) []*queue.Queue {
	for _, cs := range ch.consumers {
		if cs.blocked {
			cs.blocked = false
			kicks = append(kicks, cs.q.Core())
		}
	}
	return kicks
}

func kickQueues(qs []*queue.Queue) {
	for _, q := range qs {
		q.Kick()
	}
}

// applySettle tells the queues what happened to their deliveries.
func applySettle(recs []unackedRec, mode settleMode) {
	fwd := false
	forEachQueue(recs, func(q *queue.Queue, es []*queue.Entry) {
		if q == nil {
			fwd = true // from another node: settleForwarded
			return
		}
		switch mode {
		case settleRequeue:
			q.Requeue(es)
		case settleDrop:
			q.Reject(es) // dead-lettered with reason rejected when the queue has a DLX
		default:
			q.Settle(es)
		}
	})
	if fwd {
		settleForwarded(recs, mode)
	}
}

// basicRecover redelivers every unacked message of the channel (requeue=true). RabbitMQ does not
// implement requeue=false, and neither does Warren.
func (ch *channel) basicRecover(requeue, reply bool) error {
	if !requeue {
		return errNotImplemented(&amqpwire.BasicRecover{}, "requeue=false")
	}
	ch.mu.Lock()
	recs := ch.unacked.takeAll(nil)
	ch.releaseCreditLocked(recs)
	ch.mu.Unlock()
	applySettle(recs, settleRequeue)
	if reply {
		ch.send(&amqpwire.BasicRecoverOk{})
	}
	return nil
}
