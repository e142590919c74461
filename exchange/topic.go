package exchange

import (
	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

// topic routes by pattern: binding keys are '.'-separated words where "*" matches one word and
// "#" zero or more (0-9-1 §3.1.3.3; binding.Topic has the exact rules). The trie holds each
// (key, destination) pair once, while bindings that differ only in their arguments share it.
type topic struct {
	guardedTable
	trie *binding.Topic
}

func newTopic() *topic {
	return &topic{trie: binding.NewTopic()}
}

func (x *topic) Bind(b binding.Binding) (bool, error) {
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.add(b, argsKey)
	if c.pairEdge {
		x.trie.Add(c.key, c.dest)
	}
	return c.done, nil
}

func (x *topic) Unbind(b binding.Binding) bool {
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.remove(b, argsKey)
	if c.pairEdge {
		x.trie.Remove(c.key, c.dest)
	}
	return c.done
}

func (x *topic) Route(routingKey string, _ amqpwire.Table, out []binding.Destination) []binding.Destination {
	x.mu.RLock()
	out = x.trie.Match(routingKey, out)
	x.mu.RUnlock()
	return out
}

func (x *topic) RemoveDestination(d binding.Destination) []binding.Binding {
	x.mu.Lock()
	defer x.mu.Unlock()
	removed := x.table.removeDest(d)
	for _, b := range removed {
		// Keys repeated with other arguments are already gone: Remove reports false.
		x.trie.Remove(b.RoutingKey, d)
	}
	return removed
}
