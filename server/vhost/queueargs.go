package vhost

import (
	"fmt"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/server/queue"
)

// queueArgs are a queue's x-arguments, validated as RabbitMQ validates them
// (rabbit_amqqueue:check_declare_arguments) and turned into what the queue acts on.
type queueArgs struct {
	features queue.Features
	// dlx is the dead-letter exchange, when dlxSet; dlrk replaces the routing key when dlrkSet.
	dlx     string
	dlxSet  bool
	dlrk    string
	dlrkSet bool
	// expires is x-expires: an unused queue is deleted after it; 0 is never.
	expires time.Duration
	// overflowSet says x-overflow was given (a policy's overflow applies only otherwise).
	overflowSet bool
	// ack are the acknowledgement timeouts (acktimeout.go).
	ack ackTimeoutArgs
}

// maxExpiry is RabbitMQ's largest TTL or expiry in milliseconds: ten years.
const maxExpiry = 315360000000

// argError is RabbitMQ's 406 for an invalid queue argument.
func argError(key, queue, vhost, reason string) error {
	return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0,
		"invalid arg '%s' for queue '%s' in vhost '%s': %s", key, queue, vhost, reason)
}

// intArg reads an integer argument of any AMQP integer type; for other types it returns
// RabbitMQ 3.10's detail text, quotes included.
func intArg(v any) (int64, string) {
	n, ok := asInt(v)
	if !ok {
		return 0, `"expected integer, got ` + binding.TypeName(v) + `"`
	}
	return n, ""
}

// CheckQueueArgs validates the x-arguments of a queue declare of name in vhost, returning
// RabbitMQ's 406 for the first invalid one.
func CheckQueueArgs(name, vhost string, args amqpwire.Table) error {
	_, err := parseQueueArgs(name, vhost, args)
	return err
}

// parseQueueArgs validates args for the queue name in vhost.
func parseQueueArgs(name, vhost string, args amqpwire.Table) (queueArgs, error) {
	qa := queueArgs{features: queue.Features{MaxLength: -1, MaxBytes: -1, DeliveryLimit: -1}, ack: noAckTimeouts}
	m, err := args.Map()
	if err != nil {
		return qa, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "invalid arguments table: %v", err)
	}
	fail := func(key, reason string) (queueArgs, error) { return qa, argError(key, name, vhost, reason) }
	nonNeg := func(key string) (int64, bool, error) {
		v, ok := m[key]
		if !ok {
			return 0, false, nil
		}
		n, bad := intArg(v)
		if bad != "" {
			_, err := fail(key, bad)
			return 0, false, err
		}
		if n < 0 {
			_, err := fail(key, fmt.Sprintf("{value_negative,%d}", n))
			return 0, false, err
		}
		return n, true, nil
	}
	if v, ok := m["x-expires"]; ok {
		n, bad := intArg(v)
		switch {
		case bad != "":
			return fail("x-expires", bad)
		case n == 0:
			return fail("x-expires", "{value_zero,0}")
		case n < 0:
			return fail("x-expires", fmt.Sprintf("{value_negative,%d}", n))
		case n > maxExpiry:
			return fail("x-expires", fmt.Sprintf("{value_too_large,%d}", n))
		}
		qa.expires = time.Duration(n) * time.Millisecond
	}
	if v, ok := m["x-message-ttl"]; ok {
		n, bad := intArg(v)
		switch {
		case bad != "":
			return fail("x-message-ttl", bad)
		case n < 0:
			return fail("x-message-ttl", fmt.Sprintf("{value_negative,%d}", n))
		case n > maxExpiry:
			return fail("x-message-ttl", fmt.Sprintf("{value_too_large,%d}", n))
		}
		qa.features.MessageTTL = time.Duration(n) * time.Millisecond
		qa.features.HasTTL = true
	}
	if v, ok := m["x-dead-letter-exchange"]; ok {
		s, isString := v.(string)
		if !isString {
			// RabbitMQ 3.10 words this one check differently from the others.
			return qa, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0,
				"invalid type '%s' for arg 'x-dead-letter-exchange' in queue '%s' in vhost '%s'", binding.TypeName(v), name, vhost)
		}
		qa.dlx, qa.dlxSet = s, true
	}
	if v, ok := m["x-dead-letter-routing-key"]; ok {
		s, isString := v.(string)
		if !isString {
			return fail("x-dead-letter-routing-key", "{unacceptable_type,"+binding.TypeName(v)+"}")
		}
		if !qa.dlxSet {
			return fail("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")
		}
		qa.dlrk, qa.dlrkSet = s, true
	}
	for _, lim := range []struct {
		key string
		dst *int
	}{{"x-max-length", &qa.features.MaxLength}, {"x-max-length-bytes", &qa.features.MaxBytes}, {"x-delivery-limit", &qa.features.DeliveryLimit}} {
		n, ok, err := nonNeg(lim.key)
		if err != nil {
			return qa, err
		}
		if ok {
			*lim.dst = int(min(n, 1<<40))
		}
	}
	for _, key := range []string{"x-max-in-memory-length", "x-max-in-memory-bytes"} {
		if _, _, err := nonNeg(key); err != nil {
			return qa, err
		}
	}
	if n, ok, err := nonNeg("x-max-priority"); err != nil {
		return qa, err
	} else if ok {
		if n > 255 {
			return fail("x-max-priority", fmt.Sprintf("{max_value_exceeded,%d}", n))
		}
		qa.features.MaxPriority = uint8(n)
	}
	if v, ok := m["x-overflow"]; ok {
		s, isString := v.(string)
		if !isString {
			return fail("x-overflow", "{unacceptable_type,"+binding.TypeName(v)+"}")
		}
		qa.overflowSet = true
		switch s {
		case "drop-head":
			qa.features.Overflow = queue.DropHead
		case "reject-publish":
			qa.features.Overflow = queue.RejectPublish
		case "reject-publish-dlx":
			qa.features.Overflow = queue.RejectPublishDLX
		default:
			return fail("x-overflow", "invalid_overflow")
		}
	}
	if v, ok := m["x-queue-mode"]; ok {
		s, isString := v.(string)
		if !isString {
			return fail("x-queue-mode", "{unacceptable_type,"+binding.TypeName(v)+"}")
		}
		if s != "default" && s != "lazy" {
			return fail("x-queue-mode", "invalid_queue_mode")
		}
	}
	if v, ok := m["x-single-active-consumer"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return fail("x-single-active-consumer", "{unacceptable_type,"+binding.TypeName(v)+"}")
		}
		qa.features.SingleActiveConsumer = b
	}
	if qa.ack, err = parseAckTimeouts(m, func(key, reason string) error { return argError(key, name, vhost, reason) }); err != nil {
		return qa, err
	}
	return qa, nil
}

// ConsumerArgs validates basic.consume's arguments as RabbitMQ does
// (rabbit_amqqueue:check_consume_arguments) and returns x-priority. x-cancel-on-ha-failover is
// accepted and has nothing to do: there is no mirroring to fail over.
func ConsumerArgs(queue, vhost string, args amqpwire.Table) (int32, error) {
	var prio int32
	if v, ok, err := args.Get("x-priority"); err != nil {
		return 0, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "invalid arguments table: %v", err)
	} else if ok {
		n, bad := intArg(v)
		if bad != "" {
			return 0, argError("x-priority", queue, vhost, bad)
		}
		prio = int32(max(min(n, 1<<31-1), -1<<31))
	}
	if v, ok, _ := args.Get("x-cancel-on-ha-failover"); ok {
		if _, isBool := v.(bool); !isBool {
			return 0, argError("x-cancel-on-ha-failover", queue, vhost, "{unacceptable_type,"+binding.TypeName(v)+"}")
		}
	}
	return prio, nil
}
