package vhost

import (
	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
)

// Scratch is the memory a publisher (a channel) reuses across Publish calls, so routing does
// not allocate. The zero value is ready; one Scratch serves one goroutine at a time.
type Scratch struct {
	dests  []binding.Destination
	work   []*Exchange
	seen   []*Exchange
	queues []*Queue
	seenQ  map[*Queue]struct{} // used once queues outgrows a linear scan
	// NoResend: a confirmed message routed to a quorum queue whose leadership moves is
	// refused at once (Moved says so), not resent. For a message another node forwarded:
	// that node resends it (resend.go).
	NoResend bool
	moved    bool
}

// Moved says the last Publish with s refused its message because a quorum queue's
// leadership moved away from this node (with NoResend).
func (s *Scratch) Moved() bool { return s.moved }

// linearDedupe is how many queues a route collects before it switches from scanning its result
// to a set, so a fanout to thousands of queues stays linear.
const linearDedupe = 16

// addQueue appends q to the result unless it is already there.
func (s *Scratch) addQueue(q *Queue) {
	if len(s.queues) < linearDedupe {
		if !containsQueueRec(s.queues, q) {
			s.queues = append(s.queues, q)
		}
		return
	}
	if len(s.queues) == linearDedupe {
		if s.seenQ == nil {
			s.seenQ = make(map[*Queue]struct{})
		}
		for _, x := range s.queues {
			s.seenQ[x] = struct{}{}
		}
	}
	if _, dup := s.seenQ[q]; !dup {
		s.seenQ[q] = struct{}{}
		s.queues = append(s.queues, q)
	}
}

// route returns the queues a message published to x with the given routing keys reaches,
// each once, following exchange-to-exchange bindings (with a visited set, so cycles end) and
// alternate exchanges (used when an exchange itself routes nowhere, as RabbitMQ does).
// The routing keys and properties are the message's; props may be nil (no properties).
func (v *Vhost) route(x *Exchange, keys []string, props *amqpwire.Properties, s *Scratch) []*Queue {
	s.queues = s.queues[:0]
	clear(s.seenQ)
	v.mu.RLock()
	defer v.mu.RUnlock()
	if x.def.Name == "" {
		// The default exchange: an implicit binding from every queue's name to the queue.
		for _, k := range keys {
			if q := v.queues[k]; q != nil {
				s.addQueue(q)
			}
		}
		return s.queues
	}
	s.work = append(s.work[:0], x)
	s.seen = append(s.seen[:0], x)
	for len(s.work) > 0 {
		cur := s.work[len(s.work)-1]
		s.work = s.work[:len(s.work)-1]
		s.dests = s.dests[:0]
		if mr, ok := cur.router.(exchange.MessageRouter); ok {
			s.dests = mr.RouteMessage(keys, props, s.dests)
		} else {
			var headers amqpwire.Table
			if props != nil {
				headers = props.Headers
			}
			for _, k := range keys {
				s.dests = cur.router.Route(k, headers, s.dests)
			}
		}
		if ae := cur.alternateExchange(); len(s.dests) == 0 && ae != "" {
			s.dests = append(s.dests, binding.Destination{Kind: binding.DestExchange, Name: ae})
		}
		for _, d := range s.dests {
			if d.Kind == binding.DestQueue {
				if q := v.queues[d.Name]; q != nil {
					s.addQueue(q)
				}
				continue
			}
			nx := v.exchanges[d.Name]
			if nx != nil && !containsExchange(s.seen, nx) {
				s.seen = append(s.seen, nx)
				s.work = append(s.work, nx)
			}
		}
	}
	return s.queues
}

func containsQueueRec(qs []*Queue, q *Queue) bool {
	for _, x := range qs {
		if x == q {
			return true
		}
	}
	return false
}

func containsExchange(xs []*Exchange, x *Exchange) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
