package exchange

import (
	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

// Definition is what exchange.declare says about an exchange.
type Definition struct {
	Name, Kind                    string
	Durable, AutoDelete, Internal bool
	Args                          amqpwire.Table
}

// Equivalent checks a redeclare, other, against the existing exchange d, as RabbitMQ's
// rabbit_exchange:assert_equivalence does: type, durable, auto_delete and internal must be the
// same, then each compared argument must be absent from both or present in both with the same
// type class (every integer width is one class, float and double another, each other type its
// own) and an equal value. The first difference gives an *InequivalentError whose text is
// RabbitMQ's explanation, the part after "PRECONDITION_FAILED - ", e.g.
// "inequivalent arg 'type' for exchange 'logs' in vhost '/': received 'fanout' but current is
// 'direct'". A malformed arguments table gives the table's error.
func (d Definition) Equivalent(vhost string, other Definition) error {
	fail := func(arg, received, current string) error {
		return &InequivalentError{Arg: arg, Exchange: d.Name, VHost: vhost, Received: received, Current: current}
	}
	quoteBool := func(b bool) string {
		if b {
			return "'true'"
		}
		return "'false'"
	}
	switch {
	case other.Kind != d.Kind:
		return fail("type", "'"+other.Kind+"'", "'"+d.Kind+"'")
	case other.Durable != d.Durable:
		return fail("durable", quoteBool(other.Durable), quoteBool(d.Durable))
	case other.AutoDelete != d.AutoDelete:
		return fail("auto_delete", quoteBool(other.AutoDelete), quoteBool(d.AutoDelete))
	case other.Internal != d.Internal:
		return fail("internal", quoteBool(other.Internal), quoteBool(d.Internal))
	}
	// The arguments RabbitMQ compares (rabbit_exchange:assert_args_equivalence): "the spec
	// says arguments are compared for semantic equivalence", and the only one that means
	// something to the built-in kinds is alternate-exchange.
	for _, key := range [...]string{"alternate-exchange"} {
		cur, curOK, err := d.Args.Get(key)
		if err != nil {
			return err
		}
		recv, recvOK, err := other.Args.Get(key)
		if err != nil {
			return err
		}
		same := curOK == recvOK
		if curOK && recvOK {
			same = typeClass(cur) == typeClass(recv) && binding.EqualValues(cur, recv)
		}
		if !same {
			return fail(key, describeArg(recv, recvOK), describeArg(cur, curOK))
		}
	}
	return nil
}

// typeClass is rabbit_misc:type_class: the integer types (and decimal) form one class, float
// and double another, and every other type is a class of its own.
func typeClass(v any) byte {
	switch t := amqpwire.TypeOf(v); t {
	case 'b', 'B', 's', 'u', 'I', 'i', 'l', 'D':
		return 'l'
	case 'f', 'd':
		return 'd'
	default:
		return t
	}
}

// describeArg prints an argument as rabbit_misc:val does.
func describeArg(v any, ok bool) string {
	if !ok {
		return "none"
	}
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		s = binding.FormatValue(v)
	}
	return "the value '" + s + "' of type '" + binding.TypeName(v) + "'"
}

// Predeclared returns the exchanges every vhost is created with, as RabbitMQ's rabbit_vhost
// declares them: the default exchange "" (direct), amq.direct, amq.topic, amq.match and
// amq.headers (headers: 0-9-1's PDF names the first, its XML the second), amq.fanout, and the
// internal topic exchange amq.rabbitmq.trace that firehose tracing publishes to. All are
// durable, none auto-delete, none with arguments. Each call returns a new slice.
func Predeclared() []Definition {
	return []Definition{
		{Name: "", Kind: KindDirect, Durable: true},
		{Name: "amq.direct", Kind: KindDirect, Durable: true},
		{Name: "amq.topic", Kind: KindTopic, Durable: true},
		{Name: "amq.match", Kind: KindHeaders, Durable: true},
		{Name: "amq.headers", Kind: KindHeaders, Durable: true},
		{Name: "amq.fanout", Kind: KindFanout, Durable: true},
		{Name: "amq.rabbitmq.trace", Kind: KindTopic, Durable: true, Internal: true},
	}
}
