package exchange

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

// The exchange arguments of a consistent-hash exchange (rabbitmq_consistent_hash_exchange):
// what to hash instead of the routing key.
const (
	hashHeaderArg   = "hash-header"
	hashPropertyArg = "hash-property"
)

// maxHashWeight is the largest weight (binding key) Warren accepts on a consistent-hash
// exchange. RabbitMQ accepts any positive integer, and makes that many buckets; Warren keeps
// weights as numbers, but a larger one has no use and is most likely a mistake.
const maxHashWeight = 1<<31 - 1

// hashOn says what a consistent-hash exchange hashes: the first routing key (the default), a
// header, or one of three properties.
type hashOn struct {
	header   string // hash-header, when set
	property string // hash-property, when set: message_id, correlation_id or timestamp
}

// consistentHash routes each message to one destination chosen by weighted rendezvous hashing
// (highest random weight) of the message's first routing key, a header or a property: every
// binding scores the key, weight / -ln(u) with u uniform in (0, 1) from a hash of the key and
// the binding, and the highest score wins. A binding's share is its weight (its routing key, a
// positive integer) over the sum, as with rabbitmq_consistent_hash_exchange; adding a binding
// moves only the keys the new one wins, and removing it moves them back. Unlike RabbitMQ's
// jump-hash ring, whose buckets follow the order bindings were made, nothing depends on that
// order, so a key keeps its queue across restarts (bindings are restored in another order). A
// message whose header or property is absent hashes a fixed value, so all of them go to one
// destination (as RabbitMQ's do) rather than nowhere. The hash is FNV-1a with a 64-bit mixer,
// not Erlang's phash2: a given key may pick another queue than RabbitMQ picks. Route reads an
// immutable snapshot through an atomic pointer, allocates nothing, and costs a mix per binding
// and a logarithm per distinct weight.
type consistentHash struct {
	guardedTable
	on   hashOn
	ring atomic.Pointer[hashRing]
}

// hashRing is a snapshot of the bindings, one entry per binding (its destination and the hash
// of its identity), grouped by weight: within a group the highest hash wins, so a route takes
// one logarithm per distinct weight rather than per binding.
type hashRing struct {
	dests  []binding.Destination
	ids    []uint64
	groups []weightGroup
}

type weightGroup struct {
	end    int // the group is entries [previous group's end, end)
	weight float64
}

func newConsistentHash(on hashOn) *consistentHash {
	return &consistentHash{on: on}
}

// hashWeight parses a binding key as RabbitMQ's validate_binding does (list_to_integer: an
// optional sign and decimal digits) and refuses what it refuses, with its texts.
func hashWeight(key string) (int64, error) {
	tooBig := invalidBinding("The binding key must be at most " + strconv.Itoa(maxHashWeight) + " (a weight)")
	w, err := strconv.ParseInt(key, 10, 64)
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		if key[0] == '-' {
			return 0, invalidBinding("The binding key must be greater than 0")
		}
		return 0, tooBig
	}
	switch {
	case err != nil:
		return 0, invalidBinding("The binding key must be an integer: " + erlangBinary(key))
	case w < 1:
		return 0, invalidBinding("The binding key must be greater than 0")
	case w > maxHashWeight:
		return 0, tooBig
	}
	return w, nil
}

// erlangBinary prints s as Erlang's ~p prints a binary: <<>> when empty, else <<"s">> with
// quotes and backslashes escaped.
func erlangBinary(s string) string {
	if s == "" {
		return "<<>>"
	}
	return "<<" + strconv.Quote(s) + ">>"
}

// invalidBindingError is a binding refused by the exchange kind, matching
// binding.ErrInvalidBinding; its text is RabbitMQ's, sent after "PRECONDITION_FAILED - ".
type invalidBindingError struct{ text string }

func (e *invalidBindingError) Error() string { return e.text }

func (e *invalidBindingError) Unwrap() error { return binding.ErrInvalidBinding }

func invalidBinding(text string) error { return &invalidBindingError{text} }

func (x *consistentHash) Bind(b binding.Binding) (bool, error) {
	if _, err := hashWeight(b.RoutingKey); err != nil {
		return false, err
	}
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.add(b, argsKey)
	if c.done {
		x.rebuild()
	}
	return c.done, nil
}

func (x *consistentHash) Unbind(b binding.Binding) bool {
	argsKey, err := binding.ArgsKey(b.Args)
	if err != nil {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.table.remove(b, argsKey)
	if c.done {
		x.rebuild()
	}
	return c.done
}

func (x *consistentHash) RemoveDestination(d binding.Destination) []binding.Binding {
	x.mu.Lock()
	defer x.mu.Unlock()
	removed := x.table.removeDest(d)
	if len(removed) > 0 {
		x.rebuild()
	}
	return removed
}

// rebuild publishes a new snapshot of the bindings; the caller holds the write lock.
func (x *consistentHash) rebuild() {
	bs := x.table.list()
	type entry struct {
		dest   binding.Destination
		id     uint64
		weight int64
	}
	es := make([]entry, len(bs))
	for i, b := range bs {
		w, _ := hashWeight(b.RoutingKey) // validated by Bind
		es[i] = entry{
			dest:   x.table.byDest[b.Dest].dest, // the table's copy of the name
			id:     newFNV().tag(byte(b.Dest.Kind)).str(b.Dest.Name).tag(0).str(b.RoutingKey).tag(0).str(string(b.Args)).sum(),
			weight: w,
		}
	}
	slices.SortStableFunc(es, func(a, b entry) int { return cmp.Compare(a.weight, b.weight) })
	r := &hashRing{dests: make([]binding.Destination, len(es)), ids: make([]uint64, len(es))}
	for i, e := range es {
		r.dests[i], r.ids[i] = e.dest, e.id
		if i == len(es)-1 || es[i+1].weight != e.weight {
			r.groups = append(r.groups, weightGroup{end: i + 1, weight: float64(e.weight)})
		}
	}
	x.ring.Store(r)
}

func (x *consistentHash) Route(routingKey string, headers amqpwire.Table, out []binding.Destination) []binding.Destination {
	p := amqpwire.Properties{Headers: headers}
	return x.pick(routingKey, true, &p, out)
}

// RouteMessage implements MessageRouter: the first routing key, as RabbitMQ hashes only that
// one of a message's routing keys (its own, then CC and BCC).
func (x *consistentHash) RouteMessage(keys []string, p *amqpwire.Properties, out []binding.Destination) []binding.Destination {
	if len(keys) == 0 {
		return x.pick("", false, p, out)
	}
	return x.pick(keys[0], true, p, out)
}

func (x *consistentHash) pick(routingKey string, hasKey bool, p *amqpwire.Properties, out []binding.Destination) []binding.Destination {
	r := x.ring.Load()
	if r == nil || len(r.dests) == 0 {
		return out
	}
	k := x.hash(routingKey, hasKey, p)
	best, bestScore, start := 0, -1.0, 0
	for _, g := range r.groups {
		// Within a group the weights are equal, so the highest hash has the highest score.
		top, topHash := start, mix(k^r.ids[start])
		for i := start + 1; i < g.end; i++ {
			if h := mix(k ^ r.ids[i]); h > topHash {
				top, topHash = i, h
			}
		}
		start = g.end
		// u in (0, 1) from the top 53 bits; -ln(u) > 0, so every score is positive.
		u := (float64(topHash>>11) + 0.5) / (1 << 53)
		if s := g.weight / -math.Log(u); s > bestScore {
			best, bestScore = top, s
		}
	}
	return append(out, r.dests[best])
}

// hash is the 64-bit hash of what the exchange hashes; an absent header or property hashes
// as the fixed value of hashing nothing with the "undefined" tag.
func (x *consistentHash) hash(routingKey string, hasKey bool, p *amqpwire.Properties) uint64 {
	h := newFNV()
	if p == nil {
		p = &amqpwire.Properties{} // does not escape: hash only reads it
	}
	switch {
	case x.on.header != "":
		typ, raw, ok, err := p.Headers.Raw(x.on.header)
		if err != nil || !ok {
			return h.tag('u').sum()
		}
		return h.tag(typ).bytes(raw).sum()
	case x.on.property != "":
		switch x.on.property {
		case "message_id":
			if p.Flags&amqpwire.FlagMessageID != 0 {
				return h.tag('S').str(p.MessageID).sum()
			}
		case "correlation_id":
			if p.Flags&amqpwire.FlagCorrelationID != 0 {
				return h.tag('S').str(p.CorrelationID).sum()
			}
		case "timestamp":
			if p.Flags&amqpwire.FlagTimestamp != 0 {
				return h.tag('T').u64(p.Timestamp).sum()
			}
		}
		return h.tag('u').sum()
	case !hasKey:
		return h.tag('u').sum()
	}
	return h.tag('S').str(routingKey).sum()
}

// fnv is FNV-1a, 64 bits, fed without allocating.
type fnv uint64

func newFNV() fnv { return 14695981039346656037 }

func (h fnv) tag(b byte) fnv { return (h ^ fnv(b)) * 1099511628211 }

func (h fnv) str(s string) fnv {
	for i := 0; i < len(s); i++ {
		h = (h ^ fnv(s[i])) * 1099511628211
	}
	return h
}

func (h fnv) bytes(b []byte) fnv {
	for _, c := range b {
		h = (h ^ fnv(c)) * 1099511628211
	}
	return h
}

func (h fnv) u64(v uint64) fnv {
	for i := 0; i < 8; i++ {
		h = (h ^ fnv(byte(v>>(8*i)))) * 1099511628211
	}
	return h
}

// sum finishes the hash with a 64-bit mixer, so that keys differing only in their last bytes
// still score the bindings independently.
func (h fnv) sum() uint64 { return mix(uint64(h)) }

// mix is splitmix64's finaliser: every input bit affects every output bit.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
