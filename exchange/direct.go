package exchange

import (
	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

// direct routes a message to the destinations bound with exactly its routing key. 0-9-1
// §3.1.3.1: "A message queue binds to the exchange using a routing key, K. [...] The message is
// passed to the message queue if K = R."
type direct struct {
	guardedTable
	routes map[string][]binding.Destination // routing key → distinct destinations
}

func newDirect() *direct {
	return &direct{routes: make(map[string][]binding.Destination)}
}

func (x *direct) Bind(b binding.Binding) (bool, error) {
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.add(b, argsKey)
	if c.pairEdge {
		x.routes[c.key] = append(x.routes[c.key], c.dest)
	}
	return c.done, nil
}

func (x *direct) Unbind(b binding.Binding) bool {
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.remove(b, argsKey)
	if c.pairEdge {
		x.drop(c.key, c.dest)
	}
	return c.done
}

// drop removes d from the destinations of key. The caller holds the write lock, so no reader
// sees the slice change.
func (x *direct) drop(key string, d binding.Destination) {
	if ds := removeDestFrom(x.routes[key], d); ds != nil {
		x.routes[key] = ds
	} else {
		delete(x.routes, key)
	}
}

func (x *direct) Route(routingKey string, _ amqpwire.Table, out []binding.Destination) []binding.Destination {
	x.mu.RLock()
	out = append(out, x.routes[routingKey]...)
	x.mu.RUnlock()
	return out
}

func (x *direct) RemoveDestination(d binding.Destination) []binding.Binding {
	x.mu.Lock()
	defer x.mu.Unlock()
	removed := x.table.removeDest(d)
	for i, b := range removed {
		// Sorted by routing key: drop each key once.
		if i == 0 || removed[i-1].RoutingKey != b.RoutingKey {
			x.drop(b.RoutingKey, d)
		}
	}
	return removed
}
