package exchange

import (
	"sync"

	"cmp"
	"slices"
	"strings"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

// bindingTable is the bookkeeping every kind shares: the bindings of one exchange grouped by
// destination, then by routing key, then by canonical arguments (binding.ArgsKey, which is
// also the arguments' canonical encoding, so nothing else is stored). Each router keeps its own
// routing structure beside it and guards both with its lock; bindingTable is not safe for
// concurrent use.
type bindingTable struct {
	source string
	byDest map[binding.Destination]*destBindings
	n      int
}

type destBindings struct {
	dest binding.Destination // with a name of its own, shared by the routing structures
	keys map[string][]string // routing key → argument keys
}

// change tells a router what an add or remove did, so that it can update its routing
// structure: whether the binding was new (or present), and whether it was the first (or last)
// one for its (destination, routing key) pair and for its destination.
type change struct {
	done     bool
	pairEdge bool                // first (add) or last (remove) binding with this destination and key
	destEdge bool                // first or last binding of this destination
	dest     binding.Destination // the table's copy, for the router's structures
	key      string              // the table's copy of the routing key
}

func (t *bindingTable) add(b binding.Binding, argsKey string) change {
	e := t.byDest[b.Dest]
	firstDest := e == nil
	if firstDest {
		if t.byDest == nil {
			t.byDest = make(map[binding.Destination]*destBindings)
		}
		// Names and keys may be slices of a frame buffer; keep copies of their own.
		b.Dest.Name = strings.Clone(b.Dest.Name)
		e = &destBindings{dest: b.Dest, keys: make(map[string][]string, 1)}
		t.byDest[b.Dest] = e
	}
	args, exists := e.keys[b.RoutingKey]
	if slices.Contains(args, argsKey) {
		return change{}
	}
	rk := b.RoutingKey
	if !exists {
		rk = strings.Clone(rk)
	}
	e.keys[rk] = append(args, argsKey)
	t.n++
	t.source = b.Source
	return change{done: true, pairEdge: !exists, destEdge: firstDest, dest: e.dest, key: rk}
}

func (t *bindingTable) remove(b binding.Binding, argsKey string) change {
	e := t.byDest[b.Dest]
	if e == nil {
		return change{}
	}
	args := e.keys[b.RoutingKey]
	i := slices.Index(args, argsKey)
	if i < 0 {
		return change{}
	}
	args = slices.Delete(args, i, i+1)
	t.n--
	c := change{done: true, dest: e.dest, key: b.RoutingKey}
	if len(args) > 0 {
		e.keys[b.RoutingKey] = args
		return c
	}
	delete(e.keys, b.RoutingKey)
	c.pairEdge = true
	if len(e.keys) == 0 {
		delete(t.byDest, b.Dest)
		c.destEdge = true
	}
	return c
}

func (t *bindingTable) has(d binding.Destination) bool {
	_, ok := t.byDest[d]
	return ok
}

// removeDest drops every binding to d and returns them sorted.
func (t *bindingTable) removeDest(d binding.Destination) []binding.Binding {
	e, ok := t.byDest[d]
	if !ok {
		return nil
	}
	delete(t.byDest, d)
	var out []binding.Binding
	for rk, args := range e.keys {
		for _, a := range args {
			out = append(out, t.binding(d, rk, a))
		}
		t.n -= len(args)
	}
	sortBindings(out)
	return out
}

func (t *bindingTable) list() []binding.Binding {
	out := make([]binding.Binding, 0, t.n)
	for d, e := range t.byDest {
		for rk, args := range e.keys {
			for _, a := range args {
				out = append(out, t.binding(d, rk, a))
			}
		}
	}
	sortBindings(out)
	return out
}

func (t *bindingTable) binding(d binding.Destination, rk, argsKey string) binding.Binding {
	var args amqpwire.Table
	if argsKey != "" {
		args = amqpwire.Table(argsKey)
	}
	return binding.Binding{Source: t.source, Dest: d, RoutingKey: rk, Args: args}
}

func sortBindings(bs []binding.Binding) {
	slices.SortFunc(bs, func(a, b binding.Binding) int {
		return cmp.Or(
			cmp.Compare(a.Dest.Kind, b.Dest.Kind),
			strings.Compare(a.Dest.Name, b.Dest.Name),
			strings.Compare(a.RoutingKey, b.RoutingKey),
			strings.Compare(string(a.Args), string(b.Args)),
		)
	})
}

// removeDestFrom deletes d from a slice of distinct destinations by moving the last one into
// its place, and returns the shortened slice (nil when empty).
func removeDestFrom(ds []binding.Destination, d binding.Destination) []binding.Destination {
	i := slices.Index(ds, d)
	if i < 0 {
		return ds
	}
	last := len(ds) - 1
	ds[i] = ds[last]
	ds[last] = binding.Destination{}
	if last == 0 {
		return nil
	}
	return ds[:last]
}

// guardedTable is the binding table and lock every router kind keeps. It supplies the Router
// methods that only read the table; each kind adds its routing structure beside it.
type guardedTable struct {
	mu    sync.RWMutex
	table bindingTable
}

// Bindings implements Router.
func (g *guardedTable) Bindings() []binding.Binding {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.table.list()
}

// Len implements Router.
func (g *guardedTable) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.table.n
}

// HasDestination implements Router.
func (g *guardedTable) HasDestination(d binding.Destination) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.table.has(d)
}
