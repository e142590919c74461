package server

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/cluster/forward"
	"github.com/warrenmq/warren/server/cluster/quorum"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// ForwardLocal is this node's queues as the other nodes of a cluster use them: publishes,
// consumers, gets, purges and counts forwarded by the node a client is connected to
// (server/cluster/forward). Exclusive queues stay with their connection: another node may
// publish to one but gets 405 RESOURCE_LOCKED for anything else, as another connection
// would.
func (s *Server) ForwardLocal() forward.Local { return &forwardLocal{s: s} }

// forwardLocal implements forward.Local on the server's vhosts.
type forwardLocal struct {
	s *Server
}

var _ forward.Local = (*forwardLocal)(nil)

// queue finds a queue for a forwarded operation: RabbitMQ's 404 when the vhost or queue is
// missing, 405 for an exclusive queue (it belongs to a connection, never to another node).
func (l *forwardLocal) queue(vh, name string) (*vhost.Vhost, *vhost.Queue, error) {
	v := l.s.vhost(vh)
	if v == nil {
		return nil, nil, forward.NotFound(vh, name, 0, 0)
	}
	q, err := v.QueueFor(nil, name)
	if err != nil {
		return nil, nil, err
	}
	if err := q.CheckLocal(); err != nil {
		return nil, nil, err // moved away (a quorum queue's leader changed): B re-attaches
	}
	return v, q, nil
}

// Publish implements forward.Local: m goes to the named queue alone (B routed it) through
// the default exchange's path, so a persistent message for a durable queue is written and,
// with confirm, held from consumers until durable, as a local confirmed publish is.
func (l *forwardLocal) Publish(vh, name string, m *forward.Message, confirm bool, done func(error, func())) {
	// Any connection may publish to an exclusive queue, as in RabbitMQ: no owner check here.
	v := l.s.vhost(vh)
	if v == nil || !v.HasQueue(name) {
		done(forward.NotFound(vh, name, 0, 0), nil)
		return
	}
	if node := v.HolderOf(name); node != "" {
		// Moved away meanwhile (a quorum queue's leader changed): refused (B nacks) rather
		// than forwarded on, so that two nodes that disagree for a moment never pass a
		// message back and forth.
		done(forwardMoved(vh, name, node), nil)
		return
	}
	msg := &queue.Message{Exchange: m.Exchange, RoutingKey: m.RoutingKey, RawProperties: m.Properties,
		Body: m.Body, Persistent: m.Persistent}
	if err := msg.Properties.Decode(m.Properties); err != nil {
		done(fmt.Errorf("forwarded publish to queue '%s': properties: %w", name, err), nil)
		return
	}
	if p := &msg.Properties; p.Flags&amqpwire.FlagExpiration != 0 {
		ttl, err := parseExpiration(p.Expiration)
		if err != nil {
			done(err, nil)
			return
		}
		msg.HasTTL, msg.TTL = true, ttl
	}
	x, err := v.Exchange("")
	if err != nil {
		done(fmt.Errorf("forwarded publish to queue '%s': %w", name, err), nil)
		return
	}
	// The node that forwarded the message resends it if the queue's leadership moved.
	scratch := vhost.Scratch{NoResend: true}
	if !confirm {
		v.Publish(x, msg, []string{name}, nil, &scratch)
		done(nil, nil)
		l.pace()
		return
	}
	w := &forwardWait{done: done, queue: name, vhost: vh}
	w.remaining.Store(1)
	routed, refused := v.Publish(x, msg, []string{name}, w, &scratch)
	w.refused.Store(refused && !scratch.Moved())
	if scratch.Moved() {
		w.moved.Store(true)
	}
	w.gone.Store(!routed && !refused && scratch.Routed() == 0)
	w.Done(nil) // the publisher's own count
	l.pace()
}

// pace holds the forwarding stream while the disk is behind, as a local publisher's
// connection is held (content.go): TCP slows the node that forwards.
func (l *forwardLocal) pace() {
	if st := l.s.cfg.Store; st != nil {
		st.WaitBelow(l.s.res.storeBacklogLimit())
	}
}

// forwardWait is the vhost.Confirm of a forwarded confirmed publish: it counts the store
// writes and holds the queue entry until they are durable. The last write's completion (on
// the store's writer goroutine, or the forwarding reader for a message that needed no write)
// only records the outcome: the held entries are released (or withdrawn, when a write
// failed) by the settle work it hands the forwarding stream, which runs it on its writer
// goroutine before the answer, as a local publisher's connection writer does (confirms.go).
type forwardWait struct {
	remaining atomic.Int32
	failed    atomic.Bool
	refused   atomic.Bool
	gone      atomic.Bool
	// moved: a quorum queue's leadership moved away under the publish, or was lost before
	// its write committed; the sender resends it.
	moved        atomic.Bool
	held         []heldEntry
	done         func(error, func())
	vhost, queue string
}

var _ vhost.Confirm = (*forwardWait)(nil)

func (w *forwardWait) Add()           { w.remaining.Add(1) }
func (w *forwardWait) Nackable() bool { return true }

// Hold is called by the publishing goroutine before it drops its count.
func (w *forwardWait) Hold(q *queue.Queue, e *queue.Entry) { w.held = append(w.held, heldEntry{q, e}) }

func (w *forwardWait) Done(err error) {
	if err != nil {
		w.failed.Store(true)
		if errors.Is(err, quorum.ErrNotLeader) {
			w.moved.Store(true)
		}
	}
	if w.remaining.Add(-1) != 0 {
		return
	}
	var settle func()
	if len(w.held) > 0 {
		settle = w.settle
	}
	switch {
	case w.moved.Load():
		w.done(forwardMoved(w.vhost, w.queue, ""), settle)
	case w.failed.Load():
		w.done(errors.New("the queue's node could not store the message"), settle)
	case w.refused.Load():
		w.done(fmt.Errorf("queue '%s' in vhost '%s' refused the message (x-overflow)", w.queue, w.vhost), settle)
	case w.gone.Load():
		w.done(forward.NotFound(w.vhost, w.queue, 0, 0), settle)
	default:
		w.done(nil, settle)
	}
}

// settle releases the held entries, or withdraws them when a write failed.
func (w *forwardWait) settle() { settleHeld(w.held, w.failed.Load()) }

// Consume implements forward.Local: a proxy consumer on the queue delivers to sink.
func (l *forwardLocal) Consume(vh, name string, opts forward.ConsumeOptions, sink forward.Sink) (forward.LocalConsumer, error) {
	v, q, err := l.queue(vh, name)
	if err != nil {
		return nil, err
	}
	prio, err := vhost.ConsumerArgs(name, vh, opts.Arguments)
	if err != nil {
		return nil, err
	}
	c := &forwardConsumer{v: v, q: q, sink: sink, noAck: opts.NoAck}
	if err := q.AddConsumer(c, opts.Tag, queue.ConsumerOptions{Exclusive: opts.Exclusive, NoAck: opts.NoAck, Priority: prio}); err != nil {
		if errors.Is(err, queue.ErrExclusiveUse) {
			return nil, amqpwire.NewChannelError(amqpwire.CodeAccessRefused, amqpwire.ClassBasic, amqpwire.MethodBasicConsume,
				"queue '%s' in vhost '%s' in exclusive use", name, vh)
		}
		return nil, v.ErrNoQueue(name)
	}
	return c, nil
}

// forwardConsumer is a consumer on another node, as the queue sees it.
type forwardConsumer struct {
	v     *vhost.Vhost
	q     *vhost.Queue
	sink  forward.Sink
	noAck bool
}

var _ vhost.Consumer = (*forwardConsumer)(nil)

// Deliver implements queue.Consumer (under the queue's lock): the sink writes the delivery
// into the forwarding stream's buffer, or refuses it without blocking.
func (c *forwardConsumer) Deliver(q *queue.Queue, e *queue.Entry) bool {
	if !c.sink.Deliver(delivery(q, e)) {
		return false
	}
	// The queue's rates count forwarded deliveries as a local channel's (chanCounters).
	qc := q.Counters()
	if e.Redelivered {
		qc.Redeliver.Add(1)
	}
	if c.noAck {
		qc.DeliverNoAck.Add(1)
	} else {
		qc.Deliver.Add(1)
	}
	return true
}

// delivery is e as it leaves for another node: its properties as a local consumer gets
// them (x-delivery-count added on a redelivery where the queue counts them).
func delivery(q *queue.Queue, e *queue.Entry) *forward.Delivery {
	var count uint32
	if e.Deliveries > 0 {
		count = e.Deliveries - 1
	}
	return &forward.Delivery{Redelivered: e.Redelivered, DeliveryCount: count, Exchange: e.Msg.Exchange,
		RoutingKey: e.Msg.RoutingKey, Properties: deliveryProperties(q, e), Body: e.Msg.Body, Ref: e}
}

// CancelledByServer implements vhost.Consumer: the queue was deleted; the other node is told
// with RabbitMQ's 404, which its AMQP layer turns into basic.cancel.
func (c *forwardConsumer) CancelledByServer() {
	c.sink.Cancelled(amqpwire.NewChannelError(amqpwire.CodeNotFound, amqpwire.ClassBasic, amqpwire.MethodBasicCancel,
		"no queue '%s' in vhost '%s'", c.q.Name(), c.v.Name()))
}

// Settle implements forward.Settler.
func (c *forwardConsumer) Settle(refs []any, op forward.SettleOp) { settleRefs(c.q.Core(), refs, op) }

// Kick implements forward.LocalConsumer.
func (c *forwardConsumer) Kick() { c.q.Core().Kick() }

// Cancel implements forward.LocalConsumer: the consumer goes (an auto-delete queue whose last
// consumer it was goes too, as in RabbitMQ).
func (c *forwardConsumer) Cancel() { c.v.RemoveConsumer(c.q, c) }

// coreSettler settles got messages on their queue.
type coreSettler struct{ q *queue.Queue }

func (s coreSettler) Settle(refs []any, op forward.SettleOp) { settleRefs(s.q, refs, op) }

// settleRefs acks, requeues or dead-letters the entries refs hold.
func settleRefs(q *queue.Queue, refs []any, op forward.SettleOp) {
	es := make([]*queue.Entry, 0, len(refs))
	for _, r := range refs {
		if e, ok := r.(*queue.Entry); ok {
			es = append(es, e)
		}
	}
	switch op {
	case forward.Ack:
		q.Counters().Ack.Add(uint64(len(es)))
		q.Settle(es)
	case forward.Requeue:
		q.Requeue(es)
	default:
		q.Reject(es)
	}
}

// Get implements forward.Local: basic.get on the queue.
func (l *forwardLocal) Get(vh, name string, noAck bool) (*forward.Delivery, forward.Settler, uint32, error) {
	_, q, err := l.queue(vh, name)
	if err != nil {
		return nil, nil, 0, err
	}
	core := q.Core()
	e, n := core.Get(noAck)
	qc := core.Counters()
	if e == nil {
		qc.GetEmpty.Add(1)
		return nil, nil, uint32(core.Stats().Ready), nil
	}
	if e.Redelivered {
		qc.Redeliver.Add(1)
	}
	if noAck {
		qc.GetNoAck.Add(1)
	} else {
		qc.Get.Add(1)
	}
	return delivery(core, e), coreSettler{core}, uint32(n), nil
}

// Purge implements forward.Local.
func (l *forwardLocal) Purge(vh, name string) (uint32, error) {
	_, q, err := l.queue(vh, name)
	if err != nil {
		return 0, err
	}
	return uint32(q.Core().Purge()), nil
}

// Stats implements forward.Local: what a passive queue.declare-ok reports.
func (l *forwardLocal) Stats(vh, name string) (forward.Stats, error) {
	v := l.s.vhost(vh)
	if v == nil {
		return forward.Stats{}, forward.NotFound(vh, name, 0, 0)
	}
	q, err := v.QueueFor(nil, name)
	if err != nil {
		return forward.Stats{}, err
	}
	// A quorum queue's member answers with the committed count whether or not it leads the
	// queue now; any other queue must be held here.
	if !q.Replicated() {
		if err := q.CheckLocal(); err != nil {
			return forward.Stats{}, err
		}
	}
	st := q.Stats()
	return forward.Stats{Messages: uint32(st.Ready), Consumers: uint32(st.Consumers), Unacked: uint32(st.Unacked)}, nil
}
