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

// KnownKind reports whether NewRouter accepts kind.
func KnownKind(kind string) bool {
	switch kind {
	case KindDirect, KindFanout, KindTopic, KindHeaders:
		return true
	}
	return false
}

// NewRouter returns an empty router for an exchange of the given kind. An unknown kind gives
// an error matching ErrUnknownKind whose text is RabbitMQ's "unknown exchange type 'x'" (the
// broker sends it as 503 COMMAND_INVALID).
func NewRouter(kind string) (Router, error) {
	switch kind {
	case KindDirect:
		return newDirect(), nil
	case KindFanout:
		return newFanout(), nil
	case KindTopic:
		return newTopic(), nil
	case KindHeaders:
		return newHeaders(), nil
	}
	return nil, &unknownKindError{kind}
}
