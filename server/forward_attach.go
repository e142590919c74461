package server

import (
	"time"

	"github.com/warrenmq/warren/server/vhost"
)

// reattach attaches cs again, on a goroutine of its own, to wherever its queue is now. A
// quorum queue's consumer waits, retrying with backoff, while the queue has no reachable
// holder (a leader election, a node restarting). A classic queue's holder never changes:
// if it cannot be reached the consumer is cancelled (basic.cancel), as RabbitMQ cancels
// the consumers of a classic queue whose node went down. A queue deleted meanwhile
// cancels the consumer too.
func (f *forwarding) reattach(cs *consumer) {
	ch := cs.ch
	ch.mu.Lock()
	if cs.attaching || cs.cancelled || ch.released {
		ch.mu.Unlock()
		return
	}
	cs.attaching = true
	ch.mu.Unlock()
	f.mu.Lock()
	if f.ctx.Err() != nil {
		f.mu.Unlock()
		return
	}
	f.wg.Add(1)
	f.mu.Unlock()
	go func() {
		defer f.wg.Done()
		// done clears attaching; unless stop, only if the consumer is attached (an
		// attachment that ended at once, before attaching was cleared, is retried).
		done := func(stop bool) bool {
			ch.mu.Lock()
			defer ch.mu.Unlock()
			if !stop && cs.remote && cs.fw == nil && !cs.cancelled && !ch.released {
				return false
			}
			cs.attaching = false
			return true
		}
		retry := cs.q.Type() == "quorum"
		wait := reattachFirst
		for {
			err := f.attach(cs, nil)
			if err == nil {
				if done(false) {
					return
				}
				continue
			}
			if !retry || !ch.vh.HasQueue(cs.q.Name()) {
				done(true)
				ch.log.Warn().Err(err).Str("queue", cs.q.Name()).Str("consumer", cs.tag).
					Msg("consumer cancelled: its queue cannot be reached")
				cs.CancelledByServer()
				return
			}
			ch.log.Debug().Err(err).Str("queue", cs.q.Name()).Dur("retry_in", wait).Msg("re-attaching consumer")
			select {
			case <-f.ctx.Done():
				done(true)
				return
			case <-time.After(wait):
			}
			ch.mu.Lock()
			stop := cs.cancelled || ch.released
			ch.mu.Unlock()
			if stop {
				done(true)
				return
			}
			wait = min(2*wait, reattachMax)
		}
	}()
}

// QueueMoved re-attaches this node's consumers of q to its new holder, after the quorum
// wiring set q's Remote (SetRemote) to it: a subscription on the old holder is closed, and
// the unacked deliveries of the old attachment are forgotten (the new holder redelivers
// them; their acks are ignored). Consumers of a local core that went away were detached
// from it already. Without forwarding it does nothing.
func (s *Server) QueueMoved(v *vhost.Vhost, q *vhost.Queue) {
	f := s.fwd
	if f == nil {
		return
	}
	for _, cs := range s.consumersOf(v, q) {
		ch := cs.ch
		ch.mu.Lock()
		if cs.cancelled || ch.released || (!cs.remote && q.Remote() == "") {
			ch.mu.Unlock()
			continue
		}
		old := cs.fw
		if old != nil {
			old.gone = true
			cs.fw = nil
		}
		wasLocal := !cs.remote
		cs.remote = true
		kicks := ch.forgetLocked(func(r *unackedRec) bool {
			if old != nil && r.fw != nil && r.fw.a == old {
				return true
			}
			return wasLocal && r.cs == cs && r.fw == nil
		})
		ch.mu.Unlock()
		kickQueues(kicks)
		if old != nil && old.sub != nil {
			old.sub.Close()
		}
		f.reattach(cs)
	}
}

// consumersOf lists the consumers of q on this node's channels.
func (s *Server) consumersOf(v *vhost.Vhost, q *vhost.Queue) []*consumer {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var out []*consumer
	for _, c := range conns {
		if !c.opened.Load() || c.vh != v {
			continue
		}
		c.chmu.Lock()
		chs := make([]*channel, 0, len(c.channels))
		for _, ch := range c.channels {
			chs = append(chs, ch)
		}
		c.chmu.Unlock()
		for _, ch := range chs {
			ch.mu.Lock()
			for _, cs := range ch.consumers {
				if cs.q == q {
					out = append(out, cs)
				}
			}
			ch.mu.Unlock()
		}
	}
	return out
}
