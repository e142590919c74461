package exchange

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

// random routes each message to one of its bindings' destinations picked uniformly at random,
// ignoring the routing key, as rabbitmq_random_exchange (x-random) does: a destination bound
// twice, with two keys, is twice as likely. x-local-random (RabbitMQ 4.0) is the same on one
// node, where every queue is local, except that its bindings must have an empty key (and, the
// vhost checks, lead to a classic queue). Route reads an immutable snapshot through an atomic
// pointer and allocates nothing.
type random struct {
	guardedTable
	local bool
	dests atomic.Pointer[[]binding.Destination] // one entry per binding; never changed in place
}

func newRandom(local bool) *random {
	return &random{local: local}
}

func (x *random) snapshot() []binding.Destination {
	if p := x.dests.Load(); p != nil {
		return *p
	}
	return nil
}

func (x *random) Bind(b binding.Binding) (bool, error) {
	if x.local && b.RoutingKey != "" {
		return false, invalidBinding("Non empty binding '" + b.RoutingKey + "' key not permitted")
	}
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.add(b, argsKey)
	if c.done {
		ds := append(slices.Clip(x.snapshot()), c.dest) // always a new array
		x.dests.Store(&ds)
	}
	return c.done, nil
}

func (x *random) Unbind(b binding.Binding) bool {
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.remove(b, argsKey)
	if c.done {
		// One entry per binding: drop one of d's.
		ds := removeDestFrom(slices.Clone(x.snapshot()), c.dest)
		x.dests.Store(&ds)
	}
	return c.done
}

func (x *random) RemoveDestination(d binding.Destination) []binding.Binding {
	x.mu.Lock()
	defer x.mu.Unlock()
	removed := x.table.removeDest(d)
	if len(removed) > 0 {
		ds := slices.DeleteFunc(slices.Clone(x.snapshot()), func(e binding.Destination) bool { return e == d })
		x.dests.Store(&ds)
	}
	return removed
}

func (x *random) Route(_ string, _ amqpwire.Table, out []binding.Destination) []binding.Destination {
	ds := x.snapshot()
	if len(ds) == 0 {
		return out
	}
	return append(out, ds[rand.IntN(len(ds))])
}

// RouteMessage implements MessageRouter: one destination per message, however many routing
// keys (CC, BCC) it has.
func (x *random) RouteMessage(_ []string, _ *amqpwire.Properties, out []binding.Destination) []binding.Destination {
	return x.Route("", nil, out)
}
