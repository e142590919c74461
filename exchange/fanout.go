package exchange

import (
	"slices"
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

// fanout routes every message to every bound destination, whatever the routing key
// (0-9-1 §3.1.3.2). Route reads an immutable snapshot of the destinations through an atomic
// pointer and takes no lock; binds copy the slice, which stays small.
type fanout struct {
	guardedTable
	dests atomic.Pointer[[]binding.Destination] // distinct destinations; never changed in place
}

func newFanout() *fanout {
	return &fanout{}
}

func (x *fanout) snapshot() []binding.Destination {
	if p := x.dests.Load(); p != nil {
		return *p
	}
	return nil
}

func (x *fanout) Bind(b binding.Binding) (bool, error) {
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.add(b, argsKey)
	if c.destEdge {
		old := x.snapshot()
		ds := append(slices.Clip(old), c.dest) // always a new array
		x.dests.Store(&ds)
	}
	return c.done, nil
}

func (x *fanout) Unbind(b binding.Binding) bool {
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.remove(b, argsKey)
	if c.destEdge {
		x.drop(c.dest)
	}
	return c.done
}

func (x *fanout) drop(d binding.Destination) {
	ds := removeDestFrom(slices.Clone(x.snapshot()), d)
	x.dests.Store(&ds)
}

func (x *fanout) Route(_ string, _ amqpwire.Table, out []binding.Destination) []binding.Destination {
	return append(out, x.snapshot()...)
}

func (x *fanout) RemoveDestination(d binding.Destination) []binding.Binding {
	x.mu.Lock()
	defer x.mu.Unlock()
	removed := x.table.removeDest(d)
	if len(removed) > 0 {
		x.drop(d)
	}
	return removed
}
