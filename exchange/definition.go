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
// same, then alternate-exchange must be absent from both or present in both with equal values
// (rabbit_misc:assert_args_equivalence: the same type class, integers or floats, and ==, or
// else identical terms; so int32 7 equals int64 7, a longstr equals a byte array with the same
// bytes, but 7 does not equal 7.0). The first difference gives an *InequivalentError whose text
// is RabbitMQ's explanation, the part after "PRECONDITION_FAILED - ", e.g. "inequivalent arg
// 'type' for exchange 'logs' in vhost '/': received 'fanout' but current is 'direct'". A
// malformed arguments table gives the table's error.
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
	for _, key := range [...]string{alternateExchange} {
		cur, curOK, err := d.Args.Get(key)
		if err != nil {
			return err
		}
		recv, recvOK, err := other.Args.Get(key)
		if err != nil {
			return err
		}
		switch {
		case curOK && recvOK:
			if !argsEquivalent(cur, recv) {
				return fail(key, quoteValue(recv), quoteValue(cur))
			}
		case curOK != recvOK:
			return fail(key, describeArg(recv, recvOK), describeArg(cur, curOK))
		}
	}
	return nil
}

const alternateExchange = "alternate-exchange"

// argsEquivalent is rabbit_misc:assert_args_equivalence1 for two present values: equal by
// Erlang's == within a type class (every integer width and decimal, or float and double), or
// identical Erlang terms (a longstr and a byte array with the same bytes; a timestamp and a long
// with the same number). Both come down to binding.EqualValues, except that == would also let
// an integer equal a float, which neither rule allows.
func argsEquivalent(a, b any) bool {
	isFloat := func(v any) bool {
		t := amqpwire.TypeOf(v)
		return t == 'f' || t == 'd'
	}
	return isFloat(a) == isFloat(b) && binding.EqualValues(a, b)
}

// quoteValue prints a present argument as rabbit_misc:val does for a bare value: 'ae', '7'.
func quoteValue(v any) string {
	switch v := v.(type) {
	case string:
		return "'" + v + "'"
	case []byte:
		return "'" + string(v) + "'"
	}
	return "'" + binding.FormatValue(v) + "'"
}

// describeArg prints an argument present on one side only, as rabbit_misc:val does for a
// {Type, Value} pair: the value 'ae' of type 'longstr', or none.
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

// Validate checks the arguments of an exchange about to be created, as RabbitMQ's
// exchange.declare does before creating one (a redeclare only checks Equivalent):
// alternate-exchange, when present, must be a longstr; a consistent-hash exchange's
// hash-header and hash-property must be longstrs, not both, and hash-property one of
// message_id, correlation_id and timestamp ("Unsupported property: x" otherwise). The error matches ErrInvalidArgument
// and its text is RabbitMQ's, e.g. "invalid type 'long' for arg 'alternate-exchange' in
// exchange 'logs' in vhost '/'" (406 PRECONDITION_FAILED).
func (d Definition) Validate(vhost string) error {
	typeError := func(key string, v any) error {
		return &invalidArgumentError{"invalid type '" + binding.TypeName(v) + "' for arg '" +
			key + "' in exchange '" + d.Name + "' in vhost '" + vhost + "'"}
	}
	v, ok, err := d.Args.Get(alternateExchange)
	if err != nil {
		return err
	}
	if _, isString := v.(string); ok && !isString {
		return typeError(alternateExchange, v)
	}
	if d.Kind != KindConsistentHash {
		return nil
	}
	// rabbit_exchange_type_consistent_hash:validate. RabbitMQ fails with 541 INTERNAL_ERROR
	// on a hash-header or hash-property that is not a longstr; Warren says what is wrong.
	var set [2]bool
	for i, key := range [...]string{hashHeaderArg, hashPropertyArg} {
		v, ok, err := d.Args.Get(key)
		if err != nil {
			return err
		}
		if _, isString := v.(string); ok && !isString {
			return typeError(key, v)
		}
		set[i] = ok
	}
	if set[0] && set[1] {
		return &invalidArgumentError{"hash-header and hash-property are mutually exclusive"}
	}
	if p, ok := d.StringArg(hashPropertyArg); ok {
		switch p {
		case "message_id", "correlation_id", "timestamp":
		default:
			return &invalidArgumentError{"Unsupported property: " + p}
		}
	}
	return nil
}

// StringArg returns the argument key when it is present and a longstr.
func (d Definition) StringArg(key string) (string, bool) {
	v, ok, err := d.Args.Get(key)
	if err != nil || !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

// AlternateExchange returns the name in the alternate-exchange argument, where unroutable
// messages go, if there is one and it is a longstr.
func (d Definition) AlternateExchange() (string, bool) {
	return d.StringArg(alternateExchange)
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
