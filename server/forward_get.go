package server

import (
	"context"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/cluster/forward"
	"github.com/warrenmq/warren/server/vhost"
)

// basic.get, queue.purge and the counts of queue.declare-ok on a queue another node holds:
// asked of the holder. Without forwarding, the 405 of vhost.Queue.CheckLocal.

// remote returns the forwarding and the holder's address for q, or the client's error.
func (ch *channel) remote(q *vhost.Queue) (*forwarding, string, string, error) {
	f := ch.conn.srv.fwd
	if f == nil {
		return nil, "", "", q.CheckLocal()
	}
	node := q.Remote()
	addr, err := f.addr(node)
	if err != nil {
		return nil, "", "", errNodeDown(ch.vh, q, node)
	}
	return f, node, addr, nil
}

// getRemote is basic.get on a queue another node holds.
func (ch *channel) getRemote(q *vhost.Queue, m *amqpwire.BasicGet) error {
	var (
		f         *forwarding
		d         *forward.Delivery
		remaining uint32
	)
	err := whileSettling(q, func() error {
		var node, addr string
		var err error
		if f, node, addr, err = ch.remote(q); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(f.ctx, forwardCallTimeout)
		d, remaining, err = f.client.Get(ctx, addr, ch.vh.Name(), q.Name(), m.NoAck)
		cancel()
		if err != nil {
			return remoteErr(ch.vh, q, node, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	cn := &ch.conn.srv.counters
	if d == nil {
		cn.getEmpty.Add(1)
		ch.stats.getEmpty.Add(1)
		ch.send(&amqpwire.BasicGetEmpty{})
		return nil
	}
	cn.delivered(true, m.NoAck, d.Redelivered)
	c := ch.conn
	ch.mu.Lock()
	ch.nextTag++
	if !m.NoAck {
		ch.unacked.push(unackedRec{tag: ch.nextTag, e: &f.mark, fw: &fwdRef{id: d.ID, got: d, c: f.client}})
	}
	c.wmu.Lock()
	c.out.WriteMethod(ch.id, &amqpwire.BasicGetOk{DeliveryTag: ch.nextTag, Redelivered: d.Redelivered,
		Exchange: d.Exchange, RoutingKey: d.RoutingKey, MessageCount: remaining})
	c.out.WriteContentRaw(ch.id, amqpwire.ClassBasic, d.Properties, d.Body, c.frameMax)
	c.wmu.Unlock()
	ch.mu.Unlock()
	c.kickWriter()
	return nil
}

// purgeRemote is queue.purge on a queue another node holds: the count removed there.
func (ch *channel) purgeRemote(q *vhost.Queue) (uint32, error) {
	f, node, addr, err := ch.remote(q)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(f.ctx, forwardCallTimeout)
	defer cancel()
	n, err := f.client.Purge(ctx, addr, ch.vh.Name(), q.Name())
	if err != nil {
		return 0, remoteErr(ch.vh, q, node, err)
	}
	return n, nil
}

// declareOkRemote is the queue.declare-ok of a queue another node holds, with its counts
// there.
func (ch *channel) declareOkRemote(q *vhost.Queue) error {
	f, node, addr, err := ch.remote(q)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(f.ctx, forwardCallTimeout)
	defer cancel()
	st, err := f.client.Stats(ctx, addr, ch.vh.Name(), q.Name())
	if err != nil {
		return remoteErr(ch.vh, q, node, err)
	}
	ch.send(&amqpwire.QueueDeclareOk{Queue: q.Name(), MessageCount: st.Messages, ConsumerCount: st.Consumers})
	return nil
}
