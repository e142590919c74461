package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/cluster/forward"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// Consumers of queues other nodes hold. The consumer stays the channel's (its tag, its
// place in ch.consumers); what changes is where it is attached: a local queue core, or a
// forwarded subscription on the holder (a fwdAttach). Deliveries that come by a
// subscription get the channel's own delivery tags; their unacked records keep the
// holder's delivery id (fwdRef), which acks, nacks and rejects are sent back with.
//
// When an attachment ends without the client asking (the stream broke, the holder died,
// the holder cancelled the consumer because the queue moved), its unacked deliveries are
// forgotten: the holder requeued them and redelivers them, so their tags join the
// channel's late tags (consumertimeout.go), whose acks are ignored instead of closing the
// channel with 406 unknown delivery tag. Then the consumer is re-attached wherever the
// queue is now (forward_attach.go).

// fwdCredit is how many deliveries a holder may send a forwarded consumer ahead of what
// its client's connection has written: the channel grants more as the connection drains
// (half a window at a time), so a slow client holds messages on the holder, not in this
// node's memory.
const fwdCredit = 256

// Re-attachment backoff while a queue has no reachable holder.
const (
	reattachFirst = 50 * time.Millisecond
	reattachMax   = time.Second
)

// fwdAttach is one attachment of a consumer to its queue on another node: the forward
// Handler of its subscription.
type fwdAttach struct {
	f   *forwarding
	cs  *consumer
	sub *forward.Subscription // set when Consume returned

	// Guarded by cs.ch.mu.
	ready bool                // installed: deliveries go to the client
	gone  bool                // ended or replaced: its records are forgotten
	early []*forward.Delivery // deliveries that came before it was installed
	// owed is the credit used since the last grant; stalled: the connection's output was
	// full, the grant waits for it to be written (conn.blockedFwd).
	owed    uint32
	stalled bool
}

// fwdRef is where an unacked delivery from another node came from.
type fwdRef struct {
	a   *fwdAttach        // the consumer's attachment; nil for a basic.get
	id  uint64            // the holder's delivery id
	got *forward.Delivery // a basic.get's message
	c   *forward.Client   // that got it
}

var _ forward.Handler = (*fwdAttach)(nil)

// Deliver implements forward.Handler, on the stream's reader goroutine.
func (a *fwdAttach) Deliver(d *forward.Delivery) {
	cs := a.cs
	ch := cs.ch
	ch.mu.Lock()
	switch {
	case a.gone || ch.released:
		ch.mu.Unlock() // the holder requeues it when the subscription closes
		return
	case cs.cancelled:
		ch.mu.Unlock()
		if !cs.noAck && a.sub != nil {
			_ = a.sub.Nack(d.ID, false, true) // sent before the holder saw the cancel
		}
		return
	case !a.ready:
		a.early = append(a.early, d)
		ch.mu.Unlock()
		return
	}
	grant := a.deliverLocked(d)
	ch.mu.Unlock()
	ch.conn.kickWriter()
	if grant > 0 {
		_ = a.sub.Credit(grant)
	}
}

// deliverLocked writes d to the client as basic.deliver and returns the credit to grant
// the holder now (0: none yet, or held until the connection drains). Called with ch.mu
// held.
func (a *fwdAttach) deliverLocked(d *forward.Delivery) (grant uint32) {
	cs := a.cs
	ch := cs.ch
	c := ch.conn
	c.srv.counters.delivered(false, cs.noAck, d.Redelivered)
	ch.nextTag++
	c.wmu.Lock()
	ch.deliver = amqpwire.BasicDeliver{ConsumerTag: cs.tag, DeliveryTag: ch.nextTag, Redelivered: d.Redelivered,
		Exchange: d.Exchange, RoutingKey: d.RoutingKey}
	c.out.WriteMethod(ch.id, &ch.deliver)
	c.out.WriteContentRaw(ch.id, amqpwire.ClassBasic, d.Properties, d.Body, c.frameMax)
	a.owed++
	switch {
	case a.stalled:
	case c.out.Buffered() >= c.srv.cfg.WriteBacklog:
		a.stalled = true
		c.blockedFwd = append(c.blockedFwd, a)
	case a.owed >= fwdCredit/2:
		grant, a.owed = a.owed, 0
	}
	c.wmu.Unlock()
	if !cs.noAck {
		r := unackedRec{tag: ch.nextTag, e: &a.f.mark, cs: cs, fw: &fwdRef{a: a, id: d.ID}}
		ch.stampLocked(&r, cs.q) // the consumer and delivery timeouts apply here, as to a local delivery
		ch.unacked.push(r)
		cs.unacked++
		ch.globalUnacked++
	}
	return grant
}

// resumeAttachments grants the credit held back while their connection's output was full;
// the connection's writer calls it once the output is written.
func resumeAttachments(as []*fwdAttach) {
	for _, a := range as {
		ch := a.cs.ch
		ch.mu.Lock()
		grant := a.owed
		a.owed, a.stalled = 0, false
		gone := a.gone || ch.released || a.sub == nil
		ch.mu.Unlock()
		if grant > 0 && !gone {
			_ = a.sub.Credit(grant)
		}
	}
}

// Ended implements forward.Handler.
func (a *fwdAttach) Ended(err error) {
	if err == nil {
		return // after a cancel or close of ours; unacked deliveries stay settleable
	}
	cs := a.cs
	ch := cs.ch
	ch.mu.Lock()
	if a.gone {
		ch.mu.Unlock()
		return
	}
	a.gone = true
	current := cs.fw == a
	if current {
		cs.fw = nil
	}
	kicks := ch.forgetLocked(func(r *unackedRec) bool { return r.fw != nil && r.fw.a == a })
	stop := cs.cancelled || ch.released
	ch.mu.Unlock()
	kickQueues(kicks)
	if !current || stop {
		return
	}
	if isNotFound(err) {
		// The queue was deleted: basic.cancel, as for a local queue.
		cs.CancelledByServer()
		return
	}
	ch.log.Info().Err(err).Str("queue", cs.q.Name()).Str("consumer", cs.tag).
		Msg("forwarded consumer ended; re-attaching it where the queue is now")
	a.f.reattach(cs)
}

// forgetLocked takes out of the unacked list the records match selects, returning their
// credit; their tags become late tags, whose acks are ignored. It returns the queues to
// kick. Called with ch.mu held.
func (ch *channel) forgetLocked(match func(r *unackedRec) bool) []*queue.Queue {
	var taken []unackedRec
	for i := range ch.unacked.recs {
		r := &ch.unacked.recs[i]
		if r.e != nil && match(r) {
			taken = append(taken, *r)
		}
	}
	if len(taken) == 0 {
		return nil
	}
	var out []unackedRec
	for _, r := range taken {
		out, _ = ch.unacked.take(r.tag, false, out[:0])
		ch.acks.late = insertTag(ch.acks.late, r.tag)
	}
	ch.log.Debug().Int("deliveries", len(taken)).
		Msg("forgot deliveries whose queue moved or whose node was lost: their queue redelivers them, and their acks are ignored")
	return ch.releaseCreditLocked(taken)
}

// isNotFound says whether err is a 404 (the queue does not exist).
func isNotFound(err error) bool {
	var che *amqpwire.ChannelError
	return errors.As(err, &che) && che.Code == amqpwire.CodeNotFound
}

// consumeOptions are cs's, for the holder. The channel's global prefetch, which the holder
// cannot share between consumers, bounds each forwarded consumer on its own. Called with
// ch.mu held.
func (cs *consumer) consumeOptions() forward.ConsumeOptions {
	prefetch := uint32(cs.prefetch)
	if g := uint32(cs.ch.globalLimit); g > 0 && (prefetch == 0 || g < prefetch) {
		prefetch = g
	}
	return forward.ConsumeOptions{Tag: cs.tag, Prefetch: prefetch, Credit: fwdCredit, NoAck: cs.noAck, Exclusive: cs.exclusive,
		Arguments: cs.args}
}

// consumeRemote is basic.consume on a queue another node holds; cs is already in
// ch.consumers, pending.
func (ch *channel) consumeRemote(cs *consumer, m *amqpwire.BasicConsume) error {
	f := ch.conn.srv.fwd
	err := cs.q.CheckLocal() // without forwarding, RabbitMQ-like refusal
	if f != nil {
		err = whileSettling(cs.q, func() error {
			return f.attach(cs, func() {
				if !m.NoWait {
					ch.send(&amqpwire.BasicConsumeOk{ConsumerTag: cs.tag})
				}
				cs.pending = false
			})
		})
	}
	if err != nil {
		ch.mu.Lock()
		if ch.consumers[cs.tag] == cs {
			delete(ch.consumers, cs.tag)
		}
		ch.mu.Unlock()
		return err
	}
	return nil
}

// attach attaches cs to its queue wherever it is now: the local core, or a subscription on
// the holder. installed, if not nil, runs under ch.mu once it is attached, before any
// delivery (consume-ok). A consumer cancelled meanwhile is not attached (nil error).
func (f *forwarding) attach(cs *consumer, installed func()) error {
	ch, q, v := cs.ch, cs.q, cs.ch.vh
	if !v.HasQueue(q.Name()) {
		return v.ErrNoQueue(q.Name())
	}
	node := q.Remote()
	if node == "" {
		return f.attachLocal(cs, installed)
	}
	addr, err := f.addr(node)
	if err != nil {
		return errNodeDown(v, q, node)
	}
	ch.mu.Lock()
	opts := cs.consumeOptions()
	cs.remote = true
	ch.mu.Unlock()
	a := &fwdAttach{f: f, cs: cs}
	ctx, cancel := context.WithTimeout(f.ctx, forwardCallTimeout)
	sub, err := f.client.Consume(ctx, addr, v.Name(), q.Name(), opts, a)
	cancel()
	if err != nil {
		return remoteErr(v, q, node, err)
	}
	ch.mu.Lock()
	a.sub = sub
	if cs.cancelled || ch.released {
		ch.mu.Unlock()
		sub.Close()
		return nil
	}
	if a.gone {
		ch.mu.Unlock()
		sub.Close()
		return errNodeDown(v, q, node)
	}
	cs.fw = a
	ch.fwdOpen = append(liveAttachments(ch.fwdOpen), a)
	if installed != nil {
		installed()
	}
	a.ready = true
	var grant uint32
	for _, d := range a.early {
		grant += a.deliverLocked(d)
	}
	a.early = nil
	ch.mu.Unlock()
	ch.conn.kickWriter()
	if grant > 0 {
		_ = sub.Credit(grant)
	}
	return nil
}

// liveAttachments drops the attachments that ended by themselves (nothing to close).
func liveAttachments(as []*fwdAttach) []*fwdAttach {
	out := as[:0]
	for _, a := range as {
		if !a.gone {
			out = append(out, a)
		}
	}
	return out
}

// attachLocal attaches cs to its queue's core on this node (the node became its holder).
func (f *forwarding) attachLocal(cs *consumer, installed func()) error {
	ch, q := cs.ch, cs.q
	prio, err := vhost.ConsumerArgs(q.Name(), ch.vh.Name(), cs.args)
	if err != nil {
		return err
	}
	ch.mu.Lock()
	cs.remote = false
	if cs.cancelled || ch.released {
		ch.mu.Unlock()
		return nil
	}
	pending := cs.pending
	cs.pending = true
	ch.mu.Unlock()
	if err := q.AddConsumer(cs, cs.tag, queue.ConsumerOptions{Exclusive: cs.exclusive, NoAck: cs.noAck, Priority: prio}); err != nil {
		ch.mu.Lock()
		cs.remote, cs.pending = true, pending
		ch.mu.Unlock()
		if errors.Is(err, queue.ErrExclusiveUse) {
			return amqpwire.NewChannelError(amqpwire.CodeAccessRefused, amqpwire.ClassBasic, amqpwire.MethodBasicConsume,
				"queue '%s' in vhost '%s' in exclusive use", q.Name(), ch.vh.Name())
		}
		return fmt.Errorf("re-attach consumer '%s' to queue '%s': %w", cs.tag, q.Name(), err)
	}
	ch.mu.Lock()
	if installed != nil {
		installed()
	}
	cs.pending = false
	ch.mu.Unlock()
	q.Core().Kick()
	return nil
}

// cancelRemote is basic.cancel of a consumer attached to another node: the holder stops
// delivering; its unacked deliveries stay settleable until the channel closes.
func (ch *channel) cancelRemote(cs *consumer) {
	ch.mu.Lock()
	a := cs.fw
	ch.mu.Unlock()
	if a != nil && a.sub != nil {
		_ = a.sub.Cancel()
	}
}

// closeAttachments closes the subscriptions of a released channel: the holders requeue
// what they had delivered to it and it had not acknowledged.
func closeAttachments(as []*fwdAttach) {
	for _, a := range as {
		if a.sub != nil {
			a.sub.Close()
		}
	}
}

// settleForwarded sends the settlement of deliveries from other nodes back to them. A
// delivery whose attachment ended is not in the list any more (forgetLocked); a send on a
// stream that just broke fails harmlessly, the holder having requeued the delivery.
func settleForwarded(recs []unackedRec, mode settleMode) {
	op := forward.Ack
	switch mode {
	case settleRequeue:
		op = forward.Requeue
	case settleDrop:
		op = forward.Discard
	}
	for _, r := range recs {
		fw := r.fw
		if r.q != nil || fw == nil {
			continue
		}
		if fw.got != nil {
			_ = fw.c.SettleGot(fw.got, op)
			continue
		}
		if fw.a.sub == nil {
			continue
		}
		switch op {
		case forward.Ack:
			_ = fw.a.sub.Ack(fw.id, false)
		default:
			_ = fw.a.sub.Nack(fw.id, false, op == forward.Requeue)
		}
	}
}

// expireForwarded sends the deliveries from other nodes among recs, past a delivery
// timeout, back to their holders (requeued, or rejected without requeue so that the holder
// dead-letters them), and reports whether there were any.
func expireForwarded(ch *channel, recs []unackedRec) bool {
	var requeue, drop []unackedRec
	for _, r := range recs {
		switch {
		case r.q != nil:
		case r.kind == ackDeadLetter:
			drop = append(drop, r)
		default:
			requeue = append(requeue, r)
		}
	}
	if len(requeue)+len(drop) == 0 {
		return false
	}
	settleForwarded(requeue, settleRequeue)
	settleForwarded(drop, settleDrop)
	name := append(requeue, drop...)[0].cs.q.Name()
	detail := fmt.Sprintf("%d requeued, %d dead-lettered, on another node, from channel %d", len(requeue), len(drop), ch.id)
	if ch.conn.srv.ackTimeoutLog.note(name, detail, time.Now()) {
		ch.log.Info().Str("queue", name).Int("requeued", len(requeue)).Int("dead_lettered", len(drop)).
			Msg("deliveries from another node not acknowledged within their queue's delivery timeout were sent back (more are summarised)")
	}
	ch.conn.srv.counters.deliveryTimeouts.Add(uint64(len(requeue) + len(drop)))
	return true
}
