package exchange

import (
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
// exchange. RabbitMQ accepts any positive integer; weights are bucket counts, so this bound
// keeps the sum of a few thousand bindings far from overflowing.
const maxHashWeight = 1<<31 - 1

// hashOn says what a consistent-hash exchange hashes: the first routing key (the default), a
// header, or one of three properties.
type hashOn struct {
	header   string // hash-header, when set
	property string // hash-property, when set: message_id, correlation_id or timestamp
}

// consistentHash routes each message to one destination chosen by a jump consistent hash
// (Lamping and Veach) of the message's first routing key, a header or a property, over buckets
// numbered in binding order, each binding owning as many consecutive buckets as its weight (its
// routing key, a positive integer), as rabbitmq_consistent_hash_exchange does. A message whose
// header or property is absent hashes a fixed value, so all of them go to one destination (as
// RabbitMQ's do) rather than nowhere. The hash is FNV-1a, stable across restarts and nodes, but
// not RabbitMQ's erlang:phash2: the same key may pick a different queue than RabbitMQ picks.
// Route reads an immutable snapshot through an atomic pointer and allocates nothing.
type consistentHash struct {
	guardedTable
	on   hashOn
	ring atomic.Pointer[hashRing]
	// slots are the bindings in the order they were made; ring is rebuilt from them.
	slots []hashSlot
}

type hashSlot struct {
	dest         binding.Destination
	key, argsKey string
	weight       int64
}

// hashRing is a snapshot of the slots: destination i owns the buckets [upper[i-1], upper[i]).
type hashRing struct {
	dests []binding.Destination
	upper []int64
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
	w, err := hashWeight(b.RoutingKey)
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
	if c.done {
		x.slots = append(x.slots, hashSlot{dest: c.dest, key: c.key, argsKey: argsKey, weight: w})
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
		x.slots = slices.DeleteFunc(x.slots, func(s hashSlot) bool {
			return s.dest == c.dest && s.key == b.RoutingKey && s.argsKey == argsKey
		})
		x.rebuild()
	}
	return c.done
}

func (x *consistentHash) RemoveDestination(d binding.Destination) []binding.Binding {
	x.mu.Lock()
	defer x.mu.Unlock()
	removed := x.table.removeDest(d)
	if len(removed) > 0 {
		x.slots = slices.DeleteFunc(x.slots, func(s hashSlot) bool { return s.dest == d })
		x.rebuild()
	}
	return removed
}

// rebuild publishes a new ring from the slots; the caller holds the write lock. Later
// bindings' buckets move down by the weight of a removed one, as RabbitMQ's do.
func (x *consistentHash) rebuild() {
	r := &hashRing{dests: make([]binding.Destination, len(x.slots)), upper: make([]int64, len(x.slots))}
	var total int64
	for i, s := range x.slots {
		total += s.weight
		r.dests[i], r.upper[i] = s.dest, total
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
	total := r.upper[len(r.upper)-1]
	bucket := jumpHash(x.hash(routingKey, hasKey, p), total)
	i, _ := slices.BinarySearch(r.upper, bucket+1)
	return append(out, r.dests[i])
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

// sum finishes the hash with a 64-bit mixer (splitmix64's), so that keys differing only in
// their last bytes still seed jumpHash far apart.
func (h fnv) sum() uint64 {
	z := uint64(h)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// jumpHash is Lamping and Veach's jump consistent hash: the bucket in [0, n) of key, such that
// growing n moves only the keys that land in the new buckets.
func jumpHash(key uint64, n int64) int64 {
	var b, j int64 = -1, 0
	for j < n {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return b
}
