// Package binding holds the value that links an exchange to a queue or to another exchange,
// the canonical form of its arguments, the topic trie that topic exchanges route with, and the
// x-match header matcher of headers exchanges. It knows nothing of exchange metadata, storage
// or sockets.
package binding

// DestKind says whether a binding's destination is a queue or an exchange.
type DestKind uint8

// Destination kinds. The zero value is not a valid kind.
const (
	DestQueue DestKind = iota + 1
	DestExchange
)

// String returns "queue" or "exchange", the words RabbitMQ uses in its reply texts.
func (k DestKind) String() string {
	switch k {
	case DestQueue:
		return "queue"
	case DestExchange:
		return "exchange"
	}
	return "unknown"
}

// Destination names the queue or exchange a binding delivers to. It is comparable and can be
// used as a map key.
type Destination struct {
	Kind DestKind
	Name string
}

// String returns the destination as RabbitMQ names a resource in its reply texts without the
// vhost, e.g. "queue 'q1'".
func (d Destination) String() string {
	return d.Kind.String() + " '" + d.Name + "'"
}

// compareDest orders destinations by kind, then name.
func compareDest(a, b Destination) int {
	switch {
	case a.Kind < b.Kind:
		return -1
	case a.Kind > b.Kind:
		return 1
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}
