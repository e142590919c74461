package configs

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// reporter reports a problem with the key at keys inside one item ("arguments",
// "x-max-length"); nil keys mean the item itself.
type reporter func(keys []string, msg string)

// maxExpiry is the largest TTL or expiry in milliseconds, ten years, as in RabbitMQ.
const maxExpiry = 315360000000

var (
	exchangeTypes = []string{"direct", "fanout", "topic", "headers", "x-consistent-hash", "x-random", "x-local-random", "x-delayed-message"}
	overflows     = []string{"drop-head", "reject-publish", "reject-publish-dlx"}
	// deliveryTimeoutActions are x-delivery-timeout-action's values.
	deliveryTimeoutActions = []string{"requeue", "dead-letter"}
	// digestSizes are the hashing algorithms and their digests' lengths in bytes.
	digestSizes = map[string]int{sha256Algorithm: 32, "rabbit_password_hashing_sha512": 64, "rabbit_password_hashing_md5": 16}
	algorithms  = []string{sha256Algorithm, "rabbit_password_hashing_sha512", "rabbit_password_hashing_md5"}
)

func checkName(report reporter, what, name string) {
	switch {
	case name == "":
		report([]string{"name"}, "name must not be empty")
	case strings.HasPrefix(name, "amq."):
		report([]string{"name"}, fmt.Sprintf("%s name %q is reserved", what, name))
	}
}

func (v Vhost) check(report reporter) {
	if v.Name == "" {
		report([]string{"name"}, "name must not be empty")
	}
}

func (u User) check(report reporter) {
	if u.Name == "" {
		report([]string{"name"}, "name must not be empty")
	}
	size, ok := digestSizes[u.HashingAlgorithm]
	if !ok {
		report([]string{"hashing-algorithm"}, oneOf("hashing-algorithm", u.HashingAlgorithm, algorithms...))
		return
	}
	if u.PasswordHash == "" {
		return // a user who cannot log in with a password, as RabbitMQ's made without one
	}
	if raw, err := base64.StdEncoding.DecodeString(u.PasswordHash); err != nil || len(raw) != 4+size {
		report([]string{"password-hash"}, fmt.Sprintf("password-hash is not a %s hash (expected base64 of %d bytes)", u.HashingAlgorithm, 4+size))
	}
}

func (p Permission) check(report reporter) {
	if p.User == "" {
		report([]string{"user"}, "user must not be empty")
	}
	for _, pat := range []struct{ key, p string }{{"configure", p.Configure}, {"write", p.Write}, {"read", p.Read}} {
		if _, err := CompilePattern(pat.p); err != nil {
			report([]string{pat.key}, err.Error())
		}
	}
}

func (x Exchange) check(report reporter) {
	checkName(report, "exchange", x.Name)
	if msg := oneOf("exchange type", x.Type, exchangeTypes...); msg != "" {
		report([]string{"type"}, msg)
	}
	if v, ok := x.Arguments["alternate-exchange"]; ok {
		if _, isString := v.(string); !isString {
			report([]string{"arguments", "alternate-exchange"}, "expected a string, got "+describeValue(v))
		}
	}
	if x.Type == "x-delayed-message" {
		v, ok := x.Arguments["x-delayed-type"]
		if kind, isString := v.(string); !ok || !isString || oneOf("x-delayed-type", kind, exchangeTypes[:4]...) != "" {
			report([]string{"arguments", "x-delayed-type"}, "a delayed-message exchange needs x-delayed-type: one of "+strings.Join(exchangeTypes[:4], ", "))
		}
	}
}

func (q Queue) check(report reporter) {
	checkName(report, "queue", q.Name)
	checkQueueArgs(report, q.Arguments)
	if t, _ := q.Arguments["x-queue-type"].(string); t == "quorum" {
		// RabbitMQ's rules for quorum queues (the server checks the refused arguments).
		if !q.Durable {
			report([]string{"durable"}, "a quorum queue must be durable")
		}
		if q.AutoDelete {
			report([]string{"auto-delete"}, "a quorum queue cannot be auto-delete")
		}
	}
}

// checkQueueArgs checks the queue arguments Warren acts on, as the server checks them in
// queue.declare; other arguments are kept as they are, as RabbitMQ keeps them.
func checkQueueArgs(report reporter, args map[string]any) {
	at := func(key string) []string { return []string{"arguments", key} }
	integer := func(key string, lo, hi int64) {
		v, ok := args[key]
		if !ok {
			return
		}
		n, isInt := asInt(v)
		if !isInt {
			report(at(key), "expected an integer, got "+describeValue(v))
		} else if msg := rangeMsg(key, n, lo, hi); msg != "" {
			report(at(key), msg)
		}
	}
	str := func(key string, choices ...string) {
		v, ok := args[key]
		if !ok {
			return
		}
		s, isString := v.(string)
		if !isString {
			report(at(key), "expected a string, got "+describeValue(v))
		} else if len(choices) > 0 {
			if msg := oneOf(key, s, choices...); msg != "" {
				report(at(key), msg)
			}
		}
	}
	integer("x-message-ttl", 0, maxExpiry)
	integer("x-expires", 1, maxExpiry)
	for _, key := range []string{"x-max-length", "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes"} {
		integer(key, 0, 1<<62)
	}
	str("x-queue-type", "classic", "quorum")
	if t, _ := args["x-queue-type"].(string); t == "quorum" {
		integer("x-delivery-limit", -1, 1<<62) // -1 turns a quorum queue's default limit off
	} else {
		integer("x-delivery-limit", 0, 1<<62)
	}
	integer("x-max-priority", 0, 255)
	integer("x-consumer-timeout", 0, maxExpiry)
	integer("x-delivery-timeout", 1, maxExpiry)
	str("x-delivery-timeout-action", deliveryTimeoutActions...)
	str("x-dead-letter-exchange")
	str("x-dead-letter-routing-key")
	if _, ok := args["x-dead-letter-routing-key"]; ok {
		if _, hasDLX := args["x-dead-letter-exchange"]; !hasDLX {
			report(at("x-dead-letter-routing-key"), "x-dead-letter-routing-key requires x-dead-letter-exchange")
		}
	}
	str("x-overflow", overflows...)
	str("x-queue-mode", "default", "lazy")
	if v, ok := args["x-single-active-consumer"]; ok {
		if _, isBool := v.(bool); !isBool {
			report(at("x-single-active-consumer"), "expected a boolean, got "+describeValue(v))
		}
	}
}

// asInt reads any Go integer type, for definitions built in code rather than loaded.
func asInt(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case int16:
		return int64(v), true
	case int8:
		return int64(v), true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	}
	return 0, false
}

func (b Binding) check(report reporter) {
	if b.Source == "" {
		report([]string{"source"}, `the default exchange "" cannot be bound`)
	}
	if b.Destination == "" {
		report([]string{"destination"}, "destination must not be empty")
	}
	if msg := oneOf("destination-type", b.DestinationType, "queue", "exchange"); msg != "" {
		report([]string{"destination-type"}, msg)
	}
}

func (p Policy) check(report reporter) {
	if p.Name == "" {
		report([]string{"name"}, "name must not be empty")
	}
	if _, err := CompilePattern(p.Pattern); err != nil {
		report([]string{"pattern"}, err.Error())
	}
	if msg := oneOf("apply-to", p.ApplyTo, "queues", "exchanges", "all"); msg != "" {
		report([]string{"apply-to"}, msg)
	}
	def := p.Definition
	at := func(key string) []string { return []string{"definition", key} }
	for _, f := range []struct {
		key    string
		v      *int64
		lo, hi int64
	}{
		{"message-ttl", def.MessageTTL, 0, maxExpiry}, {"expires", def.Expires, 1, maxExpiry},
		{"max-length", def.MaxLength, 0, 1 << 62}, {"max-length-bytes", def.MaxLengthBytes, 0, 1 << 62},
		{"delivery-limit", def.DeliveryLimit, 0, 1 << 62}, {"max-priority", def.MaxPriority, 1, 255},
		{"consumer-timeout", def.ConsumerTimeout, 0, maxExpiry}, {"delivery-timeout", def.DeliveryTimeout, 1, maxExpiry},
	} {
		if f.v != nil {
			if msg := rangeMsg(f.key, *f.v, f.lo, f.hi); msg != "" {
				report(at(f.key), msg)
			}
		}
	}
	if def.Overflow != nil {
		if msg := oneOf("overflow", *def.Overflow, overflows...); msg != "" {
			report(at("overflow"), msg)
		}
	}
	if def.DeliveryTimeoutAction != nil {
		if msg := oneOf("delivery-timeout-action", *def.DeliveryTimeoutAction, deliveryTimeoutActions...); msg != "" {
			report(at("delivery-timeout-action"), msg)
		}
	}
	queueKeys := def.queueKeys()
	switch {
	case queueKeys == nil && def.AlternateExchange == nil:
		report([]string{"definition"}, "definition must set at least one key")
	case p.ApplyTo == "queues" && def.AlternateExchange != nil:
		report(at("alternate-exchange"), "alternate-exchange applies to exchanges, but the policy applies to queues")
	case p.ApplyTo == "exchanges" && queueKeys != nil:
		report(at(queueKeys[0]), queueKeys[0]+" applies to queues, but the policy applies to exchanges")
	}
}

// queueKeys lists the keys set that apply to queues.
func (def PolicyDefinition) queueKeys() []string {
	var keys []string
	for _, f := range []struct {
		key string
		set bool
	}{
		{"message-ttl", def.MessageTTL != nil}, {"expires", def.Expires != nil}, {"max-length", def.MaxLength != nil},
		{"max-length-bytes", def.MaxLengthBytes != nil}, {"overflow", def.Overflow != nil},
		{"dead-letter-exchange", def.DeadLetterExchange != nil}, {"dead-letter-routing-key", def.DeadLetterRoutingKey != nil},
		{"delivery-limit", def.DeliveryLimit != nil}, {"max-priority", def.MaxPriority != nil},
		{"consumer-timeout", def.ConsumerTimeout != nil}, {"delivery-timeout", def.DeliveryTimeout != nil},
		{"delivery-timeout-action", def.DeliveryTimeoutAction != nil},
	} {
		if f.set {
			keys = append(keys, f.key)
		}
	}
	return keys
}
