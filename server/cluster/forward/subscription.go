package forward

import (
	"context"
	"fmt"
	"sync"
)

// Handler receives a subscription's deliveries, on the stream's reader goroutine: it must
// not block for long (the AMQP layer writes them into its connection's buffer).
type Handler interface {
	// Deliver may still run while Close runs on another goroutine: a delivery that comes
	// after Close must be dropped (A requeues it when it handles the close).
	Deliver(d *Delivery)
	// Ended runs once, when no more deliveries will come: nil after Cancel or Close; the
	// node's reason when it ended the consumer (a *amqpwire.ChannelError such as 404 for a
	// deleted queue: the AMQP layer sends basic.cancel to a client that announced
	// consumer_cancel_notify); an error wrapping ErrStreamBroken when the stream broke, in
	// which case the node requeued every unacknowledged delivery.
	Ended(err error)
}

// Subscription is a forwarded consumer.
type Subscription struct {
	cc      *clientConn
	id      uint64
	h       Handler
	started chan error

	mu      sync.Mutex
	running bool // the node added the consumer and Consume returned it (or will)
	ended   bool
}

// Consume starts a consumer on queue on the node at addr, delivering to h. It returns once
// the node has added it (or refused: 404, 405 RESOURCE_LOCKED for an exclusive consumer, ...).
func (c *Client) Consume(ctx context.Context, addr, vhost, queue string, opts ConsumeOptions, h Handler) (*Subscription, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	s := &Subscription{cc: cc, h: h, started: make(chan error, 1)}
	cc.mu.Lock()
	if cc.dead != nil {
		cc.mu.Unlock()
		return nil, cc.dead
	}
	cc.nextID++
	s.id = cc.nextID
	cc.subs[s.id] = s
	cc.mu.Unlock()
	f := frame{typ: tConsume, id: s.id, n1: opts.Prefetch, n2: opts.Credit, vhost: vhost, queue: queue,
		exchange: opts.Tag, args: opts.Arguments}
	if opts.NoAck {
		f.flags |= fNoAck
	}
	if opts.Exclusive {
		f.flags |= fExclusive
	}
	if err := cc.w.send(&f); err != nil {
		cc.forget(s.id)
		return nil, err
	}
	select {
	case err := <-s.started:
		if err != nil {
			cc.forget(s.id)
			return nil, err
		}
		return s, nil
	case <-ctx.Done():
		s.mu.Lock()
		if s.running {
			s.mu.Unlock()
			return s, nil
		}
		s.ended = true
		s.mu.Unlock()
		s.Close()
		return nil, fmt.Errorf("forward consume on %s: %w", addr, ctx.Err())
	}
}

func (cc *clientConn) forget(id uint64) {
	cc.mu.Lock()
	delete(cc.subs, id)
	cc.mu.Unlock()
}

// start records the node's answer to the consume.
func (s *Subscription) start(err error) {
	s.mu.Lock()
	if err == nil && !s.ended {
		s.running = true
	}
	s.mu.Unlock()
	select {
	case s.started <- err:
	default:
	}
}

// end reports the end of the deliveries, once, to the handler of a subscription Consume
// returned; one that had not started fails Consume instead.
func (s *Subscription) end(err error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	running := s.running
	s.mu.Unlock()
	if !running {
		if err == nil {
			err = fmt.Errorf("forward: consumer ended before it started")
		}
		select {
		case s.started <- err:
		default:
		}
		return
	}
	s.h.Ended(err)
}

func (s *Subscription) settle(id uint64, multiple bool, op SettleOp) error {
	f := frame{typ: tSettle, id: s.id, id2: id, flags: byte(op)}
	if multiple {
		f.flags |= fMultiple
	}
	return s.cc.w.send(&f)
}

// Ack acknowledges delivery id (and, with multiple, every earlier one).
func (s *Subscription) Ack(id uint64, multiple bool) error { return s.settle(id, multiple, Ack) }

// Nack is basic.nack: requeue, or dead-letter/drop.
func (s *Subscription) Nack(id uint64, multiple, requeue bool) error {
	if requeue {
		return s.settle(id, multiple, Requeue)
	}
	return s.settle(id, multiple, Discard)
}

// Reject is basic.reject.
func (s *Subscription) Reject(id uint64, requeue bool) error { return s.Nack(id, false, requeue) }

// Credit lets the node send n more deliveries (for a subscription with
// ConsumeOptions.Credit).
func (s *Subscription) Credit(n uint32) error {
	return s.cc.w.send(&frame{typ: tCredit, id: s.id, n1: n})
}

// Cancel is basic.cancel: the node stops delivering (Ended(nil) follows its answer);
// unacknowledged deliveries may still be settled, until Close.
func (s *Subscription) Cancel() error {
	return s.cc.w.send(&frame{typ: tCancel, id: s.id})
}

// Close ends the subscription as a closing channel does: the node removes the consumer and
// requeues whatever is unacknowledged. Ended(nil) runs if it had not yet.
func (s *Subscription) Close() {
	s.cc.forget(s.id)
	_ = s.cc.w.send(&frame{typ: tClose, id: s.id})
	s.end(nil)
}
