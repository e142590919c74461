package server

import (
	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// txState holds a transactional channel's uncommitted work.
type txState struct {
	publishes []txPublish
	acks      []txAck
}

type txPublish struct {
	x         *vhost.Exchange
	msg       *queue.Message
	keys      []string
	mandatory bool
}

type txAck struct {
	mode settleMode
	recs []unackedRec
}

// takeAcks returns every delivery named by an uncommitted ack, nack or reject.
func (t *txState) takeAcks() []unackedRec {
	var recs []unackedRec
	for _, a := range t.acks {
		recs = append(recs, a.recs...)
	}
	t.acks = nil
	return recs
}

func (ch *channel) confirmSelect(m *amqpwire.ConfirmSelect) error {
	if ch.tx != nil {
		return errPrecondition("cannot switch from tx to confirm mode")
	}
	ch.confirm = true
	ch.stats.confirmMode.Store(true)
	if !m.NoWait {
		ch.send(&amqpwire.ConfirmSelectOk{})
	}
	return nil
}

func (ch *channel) txSelect(*amqpwire.TxSelect) error {
	if ch.confirm {
		return errPrecondition("cannot switch from confirm to tx mode")
	}
	if ch.tx == nil {
		ch.tx = &txState{}
		ch.stats.txMode.Store(true)
	}
	ch.send(&amqpwire.TxSelectOk{})
	return nil
}

func errNotTransactional() error {
	return errPrecondition("channel is not transactional")
}

// txCommit applies the transaction: publishes first, then acks, as RabbitMQ does.
func (ch *channel) txCommit() error {
	if ch.tx == nil {
		return errNotTransactional()
	}
	// commit-ok waits until the transaction's persistent messages are on disk.
	w := newCommitWait(ch)
	for _, p := range ch.tx.publishes {
		ch.deliverPublish(p.x, p.msg, p.keys, p.mandatory, w)
	}
	ch.tx.publishes = nil
	for _, a := range ch.tx.acks {
		ch.mu.Lock()
		kicks := ch.releaseCreditLocked(a.recs)
		ch.mu.Unlock()
		if a.mode == settleAck {
			ch.conn.srv.counters.acknowledged.Add(uint64(len(a.recs)))
			ch.stats.acked(a.recs)
		}
		applySettle(a.recs, a.mode)
		kickQueues(kicks)
	}
	ch.tx.acks = nil
	ch.stats.uncommitted.Store(0)
	ch.stats.acksUncommitted.Store(0)
	w.release()
	ch.paceAfterPublish()
	return nil
}

// txRollback discards uncommitted publishes and puts acked deliveries back to unacked.
func (ch *channel) txRollback() error {
	if ch.tx == nil {
		return errNotTransactional()
	}
	ch.tx.publishes = nil
	recs := ch.tx.takeAcks()
	ch.stats.uncommitted.Store(0)
	ch.stats.acksUncommitted.Store(0)
	ch.mu.Lock()
	ch.unacked.restore(recs)
	ch.rearmLocked(recs)
	ch.mu.Unlock()
	ch.send(&amqpwire.TxRollbackOk{})
	return nil
}
