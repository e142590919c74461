package conformance

// Validation of the queue and consume arguments of the features in ttl_test.go, dlx_test.go,
// limits_test.go, priority_test.go and consumers_ext_test.go
// (https://www.rabbitmq.com/docs/queues#optional-arguments). The texts are RabbitMQ 3.10's
// (rabbit_amqqueue check_*_arg, rabbit_channel for x-dead-letter-exchange). The tests assert the
// text up to the argument's name and log the rest when it differs.

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// argError is an invalid argument and RabbitMQ 3.10's reply text for it; %[1]s in text is the
// queue name.
type argError struct {
	name string
	args amqp.Table
	arg  string
	text string
}

// invalidArg is RabbitMQ's text for an argument whose validator failed.
func invalidArg(arg, detail string) string {
	return "PRECONDITION_FAILED - invalid arg '" + arg + "' for queue '%[1]s' in vhost '/': " + detail
}

var queueArgErrors = []argError{
	{"x-message-ttl negative", amqp.Table{"x-message-ttl": int32(-1)}, "x-message-ttl", invalidArg("x-message-ttl", "{value_negative,-1}")},
	{"x-message-ttl string", amqp.Table{"x-message-ttl": "100"}, "x-message-ttl", invalidArg("x-message-ttl", `"expected integer, got longstr"`)},
	{"x-message-ttl double", amqp.Table{"x-message-ttl": float64(100)}, "x-message-ttl", invalidArg("x-message-ttl", `"expected integer, got double"`)},
	// The largest TTL is 315360000000 ms, ten years (not 2^32-1, the limit of old releases).
	{"x-message-ttl too large", amqp.Table{"x-message-ttl": int64(315360000001)}, "x-message-ttl", invalidArg("x-message-ttl", "{value_too_large,315360000001}")},
	{"x-expires zero", amqp.Table{"x-expires": int32(0)}, "x-expires", invalidArg("x-expires", "{value_zero,0}")},
	{"x-expires negative", amqp.Table{"x-expires": int32(-5)}, "x-expires", invalidArg("x-expires", "{value_negative,-5}")},
	{"x-expires string", amqp.Table{"x-expires": "x"}, "x-expires", invalidArg("x-expires", `"expected integer, got longstr"`)},
	{"x-expires too large", amqp.Table{"x-expires": int64(315360000001)}, "x-expires", invalidArg("x-expires", "{value_too_large,315360000001}")},
	{"x-max-length negative", amqp.Table{"x-max-length": int32(-1)}, "x-max-length", invalidArg("x-max-length", "{value_negative,-1}")},
	{"x-max-length string", amqp.Table{"x-max-length": "x"}, "x-max-length", invalidArg("x-max-length", `"expected integer, got longstr"`)},
	{"x-max-length-bytes negative", amqp.Table{"x-max-length-bytes": int32(-1)}, "x-max-length-bytes", invalidArg("x-max-length-bytes", "{value_negative,-1}")},
	{"x-max-length-bytes string", amqp.Table{"x-max-length-bytes": "x"}, "x-max-length-bytes", invalidArg("x-max-length-bytes", `"expected integer, got longstr"`)},
	{"x-overflow unknown", amqp.Table{"x-overflow": "bogus"}, "x-overflow", invalidArg("x-overflow", "invalid_overflow")},
	{"x-overflow integer", amqp.Table{"x-overflow": int32(1)}, "x-overflow", invalidArg("x-overflow", "{unacceptable_type,signedint}")},
	{"x-max-priority 256", amqp.Table{"x-max-priority": int32(256)}, "x-max-priority", invalidArg("x-max-priority", "{max_value_exceeded,256}")},
	{"x-max-priority 2^40", amqp.Table{"x-max-priority": int64(1) << 40}, "x-max-priority", invalidArg("x-max-priority", "{max_value_exceeded,1099511627776}")},
	{"x-max-priority negative", amqp.Table{"x-max-priority": int32(-1)}, "x-max-priority", invalidArg("x-max-priority", "{value_negative,-1}")},
	{"x-max-priority string", amqp.Table{"x-max-priority": "5"}, "x-max-priority", invalidArg("x-max-priority", `"expected integer, got longstr"`)},
	{"x-max-priority bool", amqp.Table{"x-max-priority": true}, "x-max-priority", invalidArg("x-max-priority", `"expected integer, got bool"`)},
	{"x-dead-letter-exchange integer", amqp.Table{"x-dead-letter-exchange": int32(1)}, "x-dead-letter-exchange",
		"PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '%[1]s' in vhost '/'"},
	{"x-dead-letter-routing-key without a DLX", amqp.Table{"x-dead-letter-routing-key": "k"}, "x-dead-letter-routing-key",
		invalidArg("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")},
	{"x-dead-letter-routing-key integer", amqp.Table{"x-dead-letter-exchange": "x", "x-dead-letter-routing-key": int32(1)}, "x-dead-letter-routing-key",
		invalidArg("x-dead-letter-routing-key", "{unacceptable_type,signedint}")},
	{"x-single-active-consumer string", amqp.Table{"x-single-active-consumer": "true"}, "x-single-active-consumer",
		invalidArg("x-single-active-consumer", "{unacceptable_type,longstr}")},
	{"x-single-active-consumer integer", amqp.Table{"x-single-active-consumer": int32(1)}, "x-single-active-consumer",
		invalidArg("x-single-active-consumer", "{unacceptable_type,signedint}")},
	// RabbitMQ 3.10 refuses x-delivery-limit on classic queues whatever its value ("... in vhost
	// '/' of queue type rabbit_classic_queue"); Warren accepts a non-negative integer, so only
	// invalid values are common ground, and only up to the argument's name.
	{"x-delivery-limit negative", amqp.Table{"x-delivery-limit": int32(-1)}, "x-delivery-limit",
		"PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue '%[1]s' in vhost '/' of queue type rabbit_classic_queue"},
	{"x-delivery-limit string", amqp.Table{"x-delivery-limit": "x"}, "x-delivery-limit",
		"PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue '%[1]s' in vhost '/' of queue type rabbit_classic_queue"},
}

// wantArgError asserts a 406 whose text matches RabbitMQ's up to the argument's name, logs the
// difference after it, and waits for the channel to close.
func wantArgError(t *testing.T, err error, closes <-chan *amqp.Error, arg, text string) {
	t.Helper()
	prefix := text[:strings.Index(text, "'"+arg+"'")+len(arg)+2]
	wantError(t, err, amqp.PreconditionFailed, prefix)
	var aerr *amqp.Error
	if errors.As(err, &aerr) && aerr.Reason != text {
		t.Logf("reply text %q; RabbitMQ 3.10 says %q", aerr.Reason, text)
	}
	wantClosed(t, closes, amqp.PreconditionFailed, prefix)
}

func TestQueueArgumentValidation(t *testing.T) {
	t.Parallel()
	for _, c := range queueArgErrors {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, ch := connChannel(t)
			closes := notifyClose(ch)
			q := uniqueName(t, "q")
			_, err := ch.QueueDeclare(q, false, false, false, false, c.args)
			if err == nil {
				deleteQueueLater(t, q)
				t.Fatalf("declare with %v succeeded, want 406", c.args)
			}
			wantArgError(t, err, closes, c.arg, fmt.Sprintf(c.text, q))
		})
	}
}

func TestConsumeArgumentValidation(t *testing.T) {
	t.Parallel()
	for _, c := range []argError{
		{"x-priority string", amqp.Table{"x-priority": "5"}, "x-priority", invalidArg("x-priority", `"expected integer, got longstr"`)},
		{"x-priority bool", amqp.Table{"x-priority": true}, "x-priority", invalidArg("x-priority", `"expected integer, got bool"`)},
		{"x-cancel-on-ha-failover string", amqp.Table{"x-cancel-on-ha-failover": "yes"}, "x-cancel-on-ha-failover",
			invalidArg("x-cancel-on-ha-failover", "{unacceptable_type,longstr}")},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, admin := connChannel(t)
			q := declareQueue(t, admin, nil)
			ch := channel(t, conn)
			closes := notifyClose(ch)
			_, err := ch.Consume(q, "", false, false, false, false, c.args)
			if err == nil {
				t.Fatalf("consume with %v succeeded, want 406", c.args)
			}
			wantArgError(t, err, closes, c.arg, fmt.Sprintf(c.text, q))
		})
	}
}

// The edges of the valid ranges, and every integer width, are accepted.
func TestArgumentsAccepted(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	for _, args := range []amqp.Table{
		{"x-max-priority": int32(0)}, {"x-max-priority": int32(1)}, {"x-max-priority": uint8(255)},
		{"x-max-priority": int8(10)}, {"x-max-priority": int16(10)}, {"x-max-priority": int64(10)},
		{"x-message-ttl": int32(0)}, {"x-message-ttl": int64(315360000000)}, {"x-message-ttl": uint8(5)},
		{"x-expires": int32(1)}, {"x-expires": int64(315360000000)},
		{"x-max-length": int32(0)}, {"x-max-length": int64(1) << 40}, {"x-max-length-bytes": int32(0)},
		{"x-overflow": "drop-head"}, {"x-overflow": "reject-publish"}, {"x-overflow": "reject-publish-dlx"},
		{"x-single-active-consumer": true}, {"x-single-active-consumer": false},
		{"x-dead-letter-exchange": ""}, {"x-dead-letter-exchange": uniqueName(t, "not-declared")},
		{"x-dead-letter-exchange": "amq.direct", "x-dead-letter-routing-key": ""},
	} {
		if _, err := ch.QueueDeclare(uniqueName(t, "q"), false, true, true, false, args); err != nil {
			t.Fatalf("declare with %v: %v", args, err)
		}
	}
	q := declareQueue(t, ch, nil)
	for _, args := range []amqp.Table{
		{"x-priority": int32(-5)}, {"x-priority": int64(1) << 40}, {"x-priority": int8(3)},
		{"x-cancel-on-ha-failover": true}, {"x-cancel-on-ha-failover": false},
	} {
		if _, err := channel(t, conn).Consume(q, "", false, false, false, false, args); err != nil {
			t.Errorf("consume with %v: %v", args, err)
		}
	}
}

// Redeclaring a queue with another value of one of these arguments, or without it, is a 406
// naming the argument and both values.
func TestQueueArgumentInequivalent(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name            string
		declared, again amqp.Table
		text            string // %[1]s is the queue name
	}{
		{"x-message-ttl", amqp.Table{"x-message-ttl": int32(100)}, amqp.Table{"x-message-ttl": int32(200)},
			"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%[1]s' in vhost '/': received '200' but current is '100'"},
		{"x-message-ttl left out", amqp.Table{"x-message-ttl": int32(100)}, nil,
			"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%[1]s' in vhost '/': received none but current is the value '100' of type 'signedint'"},
		{"x-message-ttl added", nil, amqp.Table{"x-message-ttl": int32(100)},
			"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%[1]s' in vhost '/': received the value '100' of type 'signedint' but current is none"},
		{"x-expires", amqp.Table{"x-expires": int32(10000)}, amqp.Table{"x-expires": int32(20000)},
			"PRECONDITION_FAILED - inequivalent arg 'x-expires' for queue '%[1]s' in vhost '/': received '20000' but current is '10000'"},
		{"x-max-priority", amqp.Table{"x-max-priority": int32(5)}, amqp.Table{"x-max-priority": int32(6)},
			"PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue '%[1]s' in vhost '/': received '6' but current is '5'"},
		{"x-max-length-bytes", amqp.Table{"x-max-length-bytes": int32(10)}, amqp.Table{"x-max-length-bytes": int32(20)},
			"PRECONDITION_FAILED - inequivalent arg 'x-max-length-bytes' for queue '%[1]s' in vhost '/': received '20' but current is '10'"},
		{"x-overflow", amqp.Table{"x-overflow": "drop-head"}, amqp.Table{"x-overflow": "reject-publish"},
			"PRECONDITION_FAILED - inequivalent arg 'x-overflow' for queue '%[1]s' in vhost '/': received 'reject-publish' but current is 'drop-head'"},
		{"x-overflow default made explicit", nil, amqp.Table{"x-overflow": "drop-head"},
			"PRECONDITION_FAILED - inequivalent arg 'x-overflow' for queue '%[1]s' in vhost '/': received the value 'drop-head' of type 'longstr' but current is none"},
		{"x-dead-letter-exchange", amqp.Table{"x-dead-letter-exchange": "a"}, amqp.Table{"x-dead-letter-exchange": "b"},
			"PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue '%[1]s' in vhost '/': received 'b' but current is 'a'"},
		{"x-dead-letter-routing-key",
			amqp.Table{"x-dead-letter-exchange": "a", "x-dead-letter-routing-key": "k1"},
			amqp.Table{"x-dead-letter-exchange": "a", "x-dead-letter-routing-key": "k2"},
			"PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-routing-key' for queue '%[1]s' in vhost '/': received 'k2' but current is 'k1'"},
		{"x-single-active-consumer", amqp.Table{"x-single-active-consumer": true}, amqp.Table{"x-single-active-consumer": false},
			"PRECONDITION_FAILED - inequivalent arg 'x-single-active-consumer' for queue '%[1]s' in vhost '/': received 'false' but current is 'true'"},
		{"x-single-active-consumer left out", amqp.Table{"x-single-active-consumer": true}, nil,
			"PRECONDITION_FAILED - inequivalent arg 'x-single-active-consumer' for queue '%[1]s' in vhost '/': received none but current is the value 'true' of type 'bool'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, ch := connChannel(t)
			q := declareQueue(t, ch, c.declared)
			closes := notifyClose(ch)
			_, err := ch.QueueDeclare(q, false, false, false, false, c.again)
			text := fmt.Sprintf(c.text, q)
			wantError(t, err, amqp.PreconditionFailed, text)
			wantClosed(t, closes, amqp.PreconditionFailed, text)
		})
	}
}
