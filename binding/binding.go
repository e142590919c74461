package binding

import (
	"crypto/sha256"
	"slices"
	"strings"

	"github.com/warrenmq/warren/amqpwire"
)

// Binding links the exchange named Source to a queue or exchange. Within one exchange a
// binding is identified by (Dest, RoutingKey, ArgsKey(Args)): RabbitMQ compares binding
// arguments too, so the same queue may be bound twice with one key and different arguments.
type Binding struct {
	Source     string // exchange name
	Dest       Destination
	RoutingKey string
	Args       amqpwire.Table
}

// ArgsKey returns a canonical string for a binding's arguments: argument sets with the same
// fields give the same key whatever their order on the wire, as RabbitMQ sorts binding
// arguments by key before comparing them. Values keep their wire types ('I' 1 and 'l' 1 are
// different arguments, as in RabbitMQ); the order of fields inside nested tables is kept. The
// empty table gives "". The error is the table's, when it is malformed.
func ArgsKey(args amqpwire.Table) (string, error) {
	if len(args) == 0 {
		return "", nil
	}
	type field struct {
		key string
		val any
	}
	var buf [8]field
	fields := buf[:0]
	err := args.Each(func(k string, v any) error {
		fields = append(fields, field{k, v})
		return nil
	})
	if err != nil {
		return "", err
	}
	// Stable, so repeated keys keep their wire order, like Erlang's lists:keysort.
	slices.SortStableFunc(fields, func(a, b field) int { return strings.Compare(a.key, b.key) })
	var t amqpwire.Table
	for _, f := range fields {
		if t, err = amqpwire.AppendField(t, f.key, f.val); err != nil {
			return "", err
		}
	}
	return string(t), nil
}

// ArgsHash returns the SHA-256 of ArgsKey(args): a fixed-size name for a binding's arguments,
// stable across processes and versions, for storage keys. Equal argument sets give equal hashes.
func ArgsHash(args amqpwire.Table) ([sha256.Size]byte, error) {
	k, err := ArgsKey(args)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256([]byte(k)), nil
}
