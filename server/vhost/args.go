package vhost

import (
	"fmt"
	"reflect"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

// queueArgKeys are the queue arguments RabbitMQ compares when a queue is redeclared
// (rabbit_amqqueue declare_args); other arguments may differ freely.
var queueArgKeys = []string{
	"x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
	"x-max-length", "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes",
	"x-max-priority", "x-overflow", "x-queue-mode", "x-single-active-consumer", "x-queue-type",
	"x-delivery-limit", "x-queue-master-locator", "x-queue-leader-locator",
	argDedup, argCacheSize, argCacheTTL, argDedupHeader, // Warren's and LavinMQ's, not RabbitMQ's
	// Warren's own (x-consumer-timeout is not compared, as in RabbitMQ 3.12 and 3.13).
	"x-delivery-timeout", "x-delivery-timeout-action",
}

// inequivalent is RabbitMQ's 406 for a redeclare whose flag differs.
func inequivalent(arg, kind, name, vhost string, received, current any) error {
	return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0,
		"inequivalent arg '%s' for %s '%s' in vhost '%s': received '%v' but current is '%v'",
		arg, kind, name, vhost, received, current)
}

// argsEquivalent compares the listed keys of two argument tables as RabbitMQ does.
func argsEquivalent(keys []string, kind, name, vhost string, received, current amqpwire.Table) error {
	for _, k := range keys {
		rv, rok, err := received.Get(k)
		if err != nil {
			return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "invalid arguments table: %v", err)
		}
		cv, cok, _ := current.Get(k)
		if rok == cok && (!rok || argEqual(rv, cv)) {
			continue
		}
		// RabbitMQ's wording (rabbit_misc:assert_args_equivalence): plain values when both sides
		// have one, "the value 'v' of type 't'" against "none" otherwise.
		received, current := "'"+argText(rv)+"'", "'"+argText(cv)+"'"
		if !rok || !cok {
			received, current = describeArg(rv, rok), describeArg(cv, cok)
		}
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0,
			"inequivalent arg '%s' for %s '%s' in vhost '%s': received %s but current is %s",
			k, kind, name, vhost, received, current)
	}
	return nil
}

func describeArg(v any, ok bool) string {
	if !ok {
		return "none"
	}
	return fmt.Sprintf("the value '%s' of type '%s'", argText(v), binding.TypeName(v))
}

// argText prints an argument value as RabbitMQ's equivalence errors do: strings as they are,
// anything else as the Erlang term.
func argText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return binding.FormatValue(v)
}

// argEqual compares argument values; integers of any width compare by value, as do floats.
func argEqual(a, b any) bool {
	if ai, ok := asInt(a); ok {
		bi, ok := asInt(b)
		return ok && ai == bi
	}
	return reflect.DeepEqual(a, b)
}

// asInt widens any AMQP integer type.
func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case uint8:
		return int64(n), true
	case int16:
		return int64(n), true
	case uint16:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint32:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

// StringArg returns a string argument (longstr); ok is false when absent or another type.
func StringArg(args amqpwire.Table, key string) (string, bool) {
	v, ok, err := args.Get(key)
	if err != nil || !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}
