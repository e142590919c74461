package exchange

import (
	"sync"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

// headers routes on the message's headers table, ignoring the routing key: each binding's
// arguments are an x-match pattern (0-9-1 §3.1.3.4; binding.HeadersMatcher has RabbitMQ's exact
// rules). Route decodes the headers once and tries the bindings of each destination until one
// matches, so a destination is appended once and not tested further.
type headers struct {
	guardedTable
	groups []headersGroup              // one per destination
	index  map[binding.Destination]int // destination → position in groups
	sets   sync.Pool                   // of *binding.HeaderSet, reused across Route calls
}

type headersGroup struct {
	dest     binding.Destination
	matchers []headersMatcher
}

type headersMatcher struct {
	key, argsKey string // the binding's identity within its destination
	m            *binding.HeadersMatcher
}

func newHeaders() *headers {
	return &headers{index: make(map[binding.Destination]int)}
}

func (x *headers) Bind(b binding.Binding) (bool, error) {
	// Compiling validates x-match, as RabbitMQ's validate_binding does, before anything changes.
	m, err := binding.CompileHeaders(b.Args)
	if err != nil {
		return false, err
	}
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.add(b, argsKey)
	if !c.done {
		return false, nil
	}
	i, ok := x.index[c.dest]
	if !ok {
		i = len(x.groups)
		x.groups = append(x.groups, headersGroup{dest: c.dest})
		x.index[c.dest] = i
	}
	g := &x.groups[i]
	g.matchers = append(g.matchers, headersMatcher{key: c.key, argsKey: argsKey, m: m})
	return true, nil
}

func (x *headers) Unbind(b binding.Binding) bool {
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.remove(b, argsKey)
	if !c.done {
		return false
	}
	i := x.index[c.dest]
	g := &x.groups[i]
	for j, hm := range g.matchers {
		if hm.key == b.RoutingKey && hm.argsKey == argsKey {
			last := len(g.matchers) - 1
			g.matchers[j] = g.matchers[last]
			g.matchers[last] = headersMatcher{}
			g.matchers = g.matchers[:last]
			break
		}
	}
	if c.destEdge {
		x.dropGroup(c.dest)
	}
	return true
}

// dropGroup removes the group of d, moving the last group into its place.
func (x *headers) dropGroup(d binding.Destination) {
	i, ok := x.index[d]
	if !ok {
		return
	}
	last := len(x.groups) - 1
	if i != last {
		x.groups[i] = x.groups[last]
		x.index[x.groups[i].dest] = i
	}
	x.groups[last] = headersGroup{}
	x.groups = x.groups[:last]
	delete(x.index, d)
}

func (x *headers) Route(_ string, h amqpwire.Table, out []binding.Destination) []binding.Destination {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.groups) == 0 {
		return out
	}
	hs, _ := x.sets.Get().(*binding.HeaderSet)
	if hs == nil {
		hs = new(binding.HeaderSet)
	}
	// Malformed headers leave hs empty: amqpwire refuses them before a message gets here.
	_ = hs.Reset(h)
	for i := range x.groups {
		g := &x.groups[i]
		for _, hm := range g.matchers {
			if hm.m.MatchSet(hs) {
				out = append(out, g.dest)
				break
			}
		}
	}
	x.sets.Put(hs)
	return out
}

func (x *headers) RemoveDestination(d binding.Destination) []binding.Binding {
	x.mu.Lock()
	defer x.mu.Unlock()
	removed := x.table.removeDest(d)
	x.dropGroup(d)
	return removed
}
