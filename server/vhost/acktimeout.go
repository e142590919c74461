package vhost

import (
	"fmt"

	"github.com/warrenmq/warren/binding"
)

// Acknowledgement timeouts of a queue's deliveries. The queue only carries the settings: the
// channels that hold the deliveries own the timers (server/consumertimeout.go).
//
//   - x-consumer-timeout (policy key consumer-timeout), RabbitMQ 3.12's: a delivery left
//     unacknowledged longer closes its channel with 406, which requeues everything the channel
//     held. Of an argument and a policy, the lower value applies, as in RabbitMQ.
//   - x-delivery-timeout (policy key delivery-timeout), Warren's: a delivery left
//     unacknowledged longer is taken back alone, requeued or, with x-delivery-timeout-action
//     dead-letter (policy key delivery-timeout-action), dead-lettered with reason
//     delivery_timeout; the channel and its other deliveries carry on. The lower value
//     applies; the argument's action wins over the policy's.

// Delivery timeout actions (x-delivery-timeout-action).
const (
	DeliveryTimeoutRequeue    = "requeue"
	DeliveryTimeoutDeadLetter = "dead-letter"
)

// AckTimeouts are a queue's acknowledgement timeouts in milliseconds; a negative value is not
// set (the broker's consumer timeout applies; no delivery timeout).
type AckTimeouts struct {
	Consumer   int64
	Delivery   int64
	DeadLetter bool // a late delivery is dead-lettered rather than requeued
}

// ackTimeoutArgs are the declared (or effective) timeouts of a queue; part of queueArgs.
type ackTimeoutArgs struct {
	consumer, delivery int64 // -1: not set
	deadLetter         bool
	actionSet          bool // x-delivery-timeout-action was given
}

var noAckTimeouts = ackTimeoutArgs{consumer: -1, delivery: -1}

// AckTimeouts returns the queue's effective acknowledgement timeouts.
func (q *Queue) AckTimeouts() AckTimeouts {
	a := q.cur().ack
	return AckTimeouts{Consumer: a.consumer, Delivery: a.delivery, DeadLetter: a.deadLetter}
}

// parseAckTimeouts reads the timeout arguments of m; fail makes RabbitMQ's 406 for a key.
func parseAckTimeouts(m map[string]any, fail func(key, reason string) error) (ackTimeoutArgs, error) {
	a := noAckTimeouts
	for _, arg := range []struct {
		key string
		dst *int64
		min int64
	}{{"x-consumer-timeout", &a.consumer, 0}, {"x-delivery-timeout", &a.delivery, 1}} {
		v, ok := m[arg.key]
		if !ok {
			continue
		}
		n, bad := intArg(v)
		switch {
		case bad != "":
			return a, fail(arg.key, bad)
		case n < 0:
			return a, fail(arg.key, fmt.Sprintf("{value_negative,%d}", n))
		case n < arg.min:
			return a, fail(arg.key, fmt.Sprintf("{value_zero,%d}", n))
		case n > maxExpiry:
			return a, fail(arg.key, fmt.Sprintf("{value_too_large,%d}", n))
		}
		*arg.dst = n
	}
	if v, ok := m["x-delivery-timeout-action"]; ok {
		s, isString := v.(string)
		if !isString {
			return a, fail("x-delivery-timeout-action", "{unacceptable_type,"+binding.TypeName(v)+"}")
		}
		switch s {
		case DeliveryTimeoutRequeue:
		case DeliveryTimeoutDeadLetter:
			a.deadLetter = true
		default:
			return a, fail("x-delivery-timeout-action", "invalid_delivery_timeout_action")
		}
		a.actionSet = true
	}
	return a, nil
}

// withPolicy combines the declared timeouts with a policy's: the lower value wins, the
// argument's action wins.
func (a ackTimeoutArgs) withPolicy(d *PolicyDef) ackTimeoutArgs {
	lower := func(pol *int64, cur int64) int64 {
		if pol != nil && (cur < 0 || *pol < cur) {
			return *pol
		}
		return cur
	}
	a.consumer = lower(d.ConsumerTimeout, a.consumer)
	a.delivery = lower(d.DeliveryTimeout, a.delivery)
	if d.DeliveryTimeoutAction != nil && !a.actionSet {
		a.deadLetter = *d.DeliveryTimeoutAction == DeliveryTimeoutDeadLetter
	}
	return a
}
