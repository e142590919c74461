package vhost

import (
	"fmt"
	"slices"
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
	// dedup are the deduplication arguments (dedup.go).
	dedup dedupArgs
	// ack are the acknowledgement timeouts (acktimeout.go).
	ack ackTimeoutArgs
	// quorum says x-queue-type is quorum; limitSet that x-delivery-limit was given (a quorum
	// queue without one, or a policy's, gets DefaultQuorumDeliveryLimit).
	quorum   bool
	limitSet bool
}

// DefaultQuorumDeliveryLimit is the x-delivery-limit of a quorum queue declared without one
// (and without a policy's), as in RabbitMQ 4.x; RabbitMQ 3.10 has no default. A negative
// x-delivery-limit turns the limit off, as in 4.x.
const DefaultQuorumDeliveryLimit = 20

// Queue types (x-queue-type) Warren knows. RabbitMQ names them by module in its errors.
const (
	typeClassic = "classic"
	typeQuorum  = "quorum"
)

// quorumRefusedArgs are the arguments of other queue types that RabbitMQ 3.10.8 refuses on a
// quorum queue with "invalid arg '…' for queue '…' in vhost '…' of queue type
// rabbit_quorum_queue" (unknown x- arguments pass).
var quorumRefusedArgs = []string{
	"x-max-priority", "x-queue-mode", "x-queue-master-locator", "x-queue-version",
	"x-max-age", "x-initial-cluster-size", "x-stream-max-segment-size-bytes",
}

// untypedQueueArgKeys are queueArgKeys but x-queue-type, for comparing two classic queues.
var untypedQueueArgKeys = slices.DeleteFunc(slices.Clone(queueArgKeys), func(k string) bool { return k == "x-queue-type" })

// classicType says args declare a classic queue: x-queue-type classic or none. RabbitMQ 3.10.8
// lets the two redeclare each other; anything else compares as any argument does.
func classicType(args amqpwire.Table) bool {
	v, ok, err := args.Get("x-queue-type")
	return err == nil && (!ok || v == typeClassic)
}

// Type is the queue's type as RabbitMQ names it in listings: classic or quorum.
func (qa *queueArgs) Type() string {
	if qa.quorum {
		return typeQuorum
	}
	return typeClassic
}

// withTypeDefaults applies what the queue type implies once arguments and policy are
// combined: a quorum queue's default delivery limit.
func (qa queueArgs) withTypeDefaults(policyLimit bool) queueArgs {
	if qa.quorum && !qa.limitSet && !policyLimit {
		qa.features.DeliveryLimit = DefaultQuorumDeliveryLimit
	}
	return qa
}

// checkQuorumDeclare is RabbitMQ's check of a new quorum queue's properties
// (rabbit_quorum_queue:declare, in its order), after its arguments passed.
func checkQuorumDeclare(d QueueDecl, vhost string) error {
	prop := func(p string) error {
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0,
			"invalid property '%s' for queue '%s' in vhost '%s'", p, d.Name, vhost)
	}
	switch {
	case d.AutoDelete:
		return prop("auto-delete")
	case d.Exclusive:
		return prop("exclusive-owner")
	case !d.Durable:
		return prop("non-durable")
	}
	return nil
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
	if v, ok := m["x-queue-type"]; ok {
		s, isString := v.(string)
		if !isString {
			return fail("x-queue-type", "{unacceptable_type,"+binding.TypeName(v)+"}")
		}
		switch s {
		case typeClassic:
		case typeQuorum:
			qa.quorum, qa.features.Quorum = true, true
		default:
			// RabbitMQ 3.10 has streams; Warren refuses them (and anything else) rather
			// than make a classic queue the application did not ask for.
			return fail("x-queue-type", `"unsupported queue type '`+s+`'"`)
		}
	}
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
	if qa.quorum {
		for _, key := range quorumRefusedArgs {
			if _, ok := m[key]; ok {
				return qa, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0,
					"invalid arg '%s' for queue '%s' in vhost '%s' of queue type rabbit_quorum_queue", key, name, vhost)
			}
		}
		if v, ok := m["x-delivery-limit"]; ok {
			// A negative limit turns it off (RabbitMQ 4.x); 3.10.8 accepts any value here.
			n, bad := intArg(v)
			if bad != "" {
				return fail("x-delivery-limit", bad)
			}
			qa.limitSet = true
			qa.features.DeliveryLimit = int(max(min(n, 1<<40), -1))
			delete(m, "x-delivery-limit")
		}
		if _, _, err := nonNeg("x-quorum-initial-group-size"); err != nil {
			return qa, err
		}
		if v, ok := m["x-dead-letter-strategy"]; ok {
			if s, _ := v.(string); s != "at-most-once" && s != "at-least-once" {
				return fail("x-dead-letter-strategy", "invalid_dlx_strategy")
			}
		}
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
			qa.limitSet = qa.limitSet || lim.key == "x-delivery-limit"
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
	if qa.dedup, err = parseDedupArgs(m, func(key, reason string) error { return argError(key, name, vhost, reason) }); err != nil {
		return qa, err
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
