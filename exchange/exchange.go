// Package exchange routes messages: one Router per exchange kind (direct.go, fanout.go,
// topic.go, headers.go) behind one small interface, the exchange Definition with RabbitMQ's
// redeclare equivalence check, and the exchanges every vhost starts with. A router returns
// destinations; it never holds queues or messages, and it does not follow exchange-to-exchange
// bindings (the broker walks those with a visited set).
package exchange

import (
	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

// The exchange kinds Warren implements.
const (
	KindDirect  = "direct"
	KindFanout  = "fanout"
	KindTopic   = "topic"
	KindHeaders = "headers"
	// KindConsistentHash is rabbitmq_consistent_hash_exchange's type (hash.go).
	KindConsistentHash = "x-consistent-hash"
	// KindRandom is rabbitmq_random_exchange's type, KindLocalRandom RabbitMQ 4.0's (random.go).
	KindRandom      = "x-random"
	KindLocalRandom = "x-local-random"
)

// Router holds the bindings of one exchange and routes by them. A binding's identity is
// (Dest, RoutingKey, binding.ArgsKey(Args)); Source is the exchange's name and is expected to
// be the same in every call. Routers are safe for concurrent use: any number of Route calls
// may run while Bind, Unbind and RemoveDestination change the bindings.
type Router interface {
	// Bind adds b. It returns false if the same binding already exists (then it is a no-op),
	// and an error if the arguments are refused (headers: an invalid x-match, matching
	// binding.ErrInvalidBinding) or malformed.
	Bind(b binding.Binding) (added bool, err error)
	// Unbind removes b, reporting false if there was no such binding.
	Unbind(b binding.Binding) (removed bool)
	// Route appends to out each destination the message goes to, at most once, and returns
	// the extended slice. Only headers exchanges look at headers, and only they ignore the
	// routing key. Route allocates only to grow out.
	Route(routingKey string, headers amqpwire.Table, out []binding.Destination) []binding.Destination
	// Bindings returns every binding, sorted by destination, routing key and arguments. Args
	// are in canonical form (binding.ArgsKey: fields sorted by key).
	Bindings() []binding.Binding
	// Len returns the number of bindings.
	Len() int
	// HasDestination reports whether any binding leads to d.
	HasDestination(d binding.Destination) bool
	// RemoveDestination drops every binding to d, for when that queue or exchange is deleted,
	// and returns them (sorted as Bindings sorts).
	RemoveDestination(d binding.Destination) []binding.Binding
}

// MessageRouter is a Router that routes a message once rather than once per routing key, and
// may look at its properties: the consistent-hash exchange (which hashes the first routing key,
// a header or a property) and the random kinds (one destination per message). The broker calls
// RouteMessage instead of Route for them. keys are the message's routing key, then CC and BCC.
// p may be nil: no properties. RouteMessage allocates only to grow out.
type MessageRouter interface {
	Router
	RouteMessage(keys []string, p *amqpwire.Properties, out []binding.Destination) []binding.Destination
}

// KnownKind reports whether NewRouter accepts kind.
func KnownKind(kind string) bool {
	switch kind {
	case KindDirect, KindFanout, KindTopic, KindHeaders, KindConsistentHash, KindRandom, KindLocalRandom:
		return true
	}
	return false
}

// NewRouter returns an empty router for an exchange of the given kind, with its default
// arguments (see New). An unknown kind gives an error matching ErrUnknownKind whose text is
// RabbitMQ's "unknown exchange type 'x'" (the broker sends it as 503 COMMAND_INVALID).
func NewRouter(kind string) (Router, error) {
	return New(Definition{Kind: kind})
}

// New returns an empty router for the exchange d, whose arguments may configure it (a
// consistent-hash exchange's hash-header or hash-property; d.Validate checks them first). An
// unknown kind gives an error matching ErrUnknownKind.
func New(d Definition) (Router, error) {
	switch kind := d.Kind; kind {
	case KindConsistentHash:
		h, _ := d.StringArg(hashHeaderArg)
		p, _ := d.StringArg(hashPropertyArg)
		return newConsistentHash(hashOn{header: h, property: p}), nil
	case KindRandom, KindLocalRandom:
		return newRandom(kind == KindLocalRandom), nil
	case KindDirect:
		return newDirect(), nil
	case KindFanout:
		return newFanout(), nil
	case KindTopic:
		return newTopic(), nil
	case KindHeaders:
		return newHeaders(), nil
	}
	return nil, &unknownKindError{d.Kind}
}
