package exchange

import (
	"errors"
	"fmt"
	"testing"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

func newHashRouter(t testing.TB, args ...any) MessageRouter {
	t.Helper()
	d := Definition{Name: "chx", Kind: KindConsistentHash, Args: table(t, args...)}
	if err := d.Validate("/"); err != nil {
		t.Fatal(err)
	}
	r, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	return r.(MessageRouter)
}

// routeOne routes with RouteMessage and returns the one destination's name.
func routeOne(t testing.TB, r MessageRouter, keys []string, p *amqpwire.Properties) string {
	t.Helper()
	out := r.RouteMessage(keys, p, nil)
	if len(out) != 1 {
		t.Fatalf("RouteMessage(%q) = %v, want one destination", keys, out)
	}
	return out[0].Name
}

// The binding key is a weight: a positive integer as Erlang's list_to_integer reads it, with
// RabbitMQ's texts for anything else.
func TestConsistentHashBindingKeyIsAWeight(t *testing.T) {
	r := newHashRouter(t)
	for key, want := range map[string]string{
		"abc":                   `The binding key must be an integer: <<"abc">>`,
		"":                      `The binding key must be an integer: <<>>`,
		"1.5":                   `The binding key must be an integer: <<"1.5">>`,
		" 2":                    `The binding key must be an integer: <<" 2">>`,
		"0":                     "The binding key must be greater than 0",
		"-1":                    "The binding key must be greater than 0",
		"-99999999999999999999": "The binding key must be greater than 0",
		"99999999999999999999":  "The binding key must be at most 2147483647 (a weight)",
	} {
		_, err := r.Bind(binding.Binding{Source: "chx", Dest: q("a"), RoutingKey: key})
		if err == nil || err.Error() != want || !errors.Is(err, binding.ErrInvalidBinding) {
			t.Errorf("Bind with key %q: %v, want %q (ErrInvalidBinding)", key, err, want)
		}
	}
	for _, key := range []string{"1", "+3", "007"} {
		bind(t, r, q("q"+key), key, nil)
	}
	if r.Len() != 3 {
		t.Errorf("Len = %d, want 3", r.Len())
	}
}

// Weights 1 and 3 over 10 000 fixed routing keys: the second queue gets about three quarters.
// The keys are fixed and the hash is deterministic, so the counts are the same on every run;
// the tolerance only absorbs the choice of hash.
func TestConsistentHashWeights(t *testing.T) {
	r := newHashRouter(t)
	bind(t, r, q("light"), "1", nil)
	bind(t, r, q("heavy"), "3", nil)
	counts := map[string]int{}
	for i := range 10_000 {
		counts[routeOne(t, r, []string{fmt.Sprintf("order-%d", i)}, nil)]++
	}
	if h := counts["heavy"]; h < 7_000 || h > 8_000 {
		t.Errorf("heavy (weight 3) got %d of 10000, light %d; want about 7500", h, counts["light"])
	}
}

// The same key always goes to the same queue, and adding a queue moves only the keys that the
// new queue takes, not a reshuffle.
func TestConsistentHashIsConsistent(t *testing.T) {
	r := newHashRouter(t)
	for _, n := range []string{"a", "b", "c"} {
		bind(t, r, q(n), "10", nil)
	}
	before := map[string]string{}
	for i := range 3000 {
		k := fmt.Sprint("k", i)
		before[k] = routeOne(t, r, []string{k}, nil)
		if again := routeOne(t, r, []string{k}, nil); again != before[k] {
			t.Fatalf("key %s went to %s, then %s", k, before[k], again)
		}
	}
	bind(t, r, q("d"), "10", nil)
	moved := 0
	for k, was := range before {
		now := routeOne(t, r, []string{k}, nil)
		if now != was {
			moved++
			if now != "d" {
				t.Fatalf("key %s moved from %s to %s, not to the new queue", k, was, now)
			}
		}
	}
	if moved < 500 || moved > 1000 {
		t.Errorf("%d of 3000 keys moved to the fourth queue, want about 750", moved)
	}
	// Unbinding it puts every key back where it was.
	if !unbind(r, q("d"), "10", nil) {
		t.Fatal("unbind d")
	}
	for k, was := range before {
		if now := routeOne(t, r, []string{k}, nil); now != was {
			t.Fatalf("after unbinding d, key %s goes to %s, was %s", k, now, was)
		}
	}
}

// Only the first routing key counts (RabbitMQ hashes the head of the list): CC keys do not
// change the queue, nor add one.
func TestConsistentHashFirstRoutingKey(t *testing.T) {
	r := newHashRouter(t)
	for _, n := range []string{"a", "b", "c", "d"} {
		bind(t, r, q(n), "1", nil)
	}
	for i := range 100 {
		k := fmt.Sprint("key", i)
		want := routeOne(t, r, []string{k}, nil)
		if got := routeOne(t, r, []string{k, "cc1", "cc2"}, nil); got != want {
			t.Fatalf("with CC keys, %s went to %s, without to %s", k, got, want)
		}
	}
}

// hash-header and hash-property replace the routing key; a message without the header or
// property still goes to one queue (always the same), as with RabbitMQ.
func TestConsistentHashHeaderAndProperty(t *testing.T) {
	for _, tc := range []struct {
		arg, value string
		props      func(i int) *amqpwire.Properties
	}{
		{"hash-header", "user", func(i int) *amqpwire.Properties {
			return &amqpwire.Properties{Flags: amqpwire.FlagHeaders, Headers: table(t, "user", fmt.Sprint("u", i))}
		}},
		{"hash-property", "message_id", func(i int) *amqpwire.Properties {
			return &amqpwire.Properties{Flags: amqpwire.FlagMessageID, MessageID: fmt.Sprint("m", i)}
		}},
		{"hash-property", "correlation_id", func(i int) *amqpwire.Properties {
			return &amqpwire.Properties{Flags: amqpwire.FlagCorrelationID, CorrelationID: fmt.Sprint("c", i)}
		}},
		{"hash-property", "timestamp", func(i int) *amqpwire.Properties {
			return &amqpwire.Properties{Flags: amqpwire.FlagTimestamp, Timestamp: uint64(1_700_000_000 + i)}
		}},
	} {
		t.Run(tc.value, func(t *testing.T) {
			r := newHashRouter(t, tc.arg, tc.value)
			for _, n := range []string{"a", "b", "c", "d"} {
				bind(t, r, q(n), "1", nil)
			}
			seen := map[string]bool{}
			for i := range 200 {
				p := tc.props(i)
				got := routeOne(t, r, []string{"same-key"}, p)
				if again := routeOne(t, r, []string{fmt.Sprint("other", i)}, p); again != got {
					t.Fatalf("message %d went to %s with one routing key and %s with another", i, got, again)
				}
				seen[got] = true
			}
			if len(seen) != 4 {
				t.Errorf("200 distinct values reached %d of 4 queues", len(seen))
			}
			missing := routeOne(t, r, []string{"k1"}, nil)
			for i := range 50 {
				if got := routeOne(t, r, []string{fmt.Sprint("k", i)}, &amqpwire.Properties{}); got != missing {
					t.Fatalf("messages without the %s went to %s and %s, want one queue", tc.value, missing, got)
				}
			}
		})
	}
}

func TestConsistentHashArguments(t *testing.T) {
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"hash-property", "foo"}, "Unsupported property: foo"},
		{[]any{"hash-property", "message_id", "hash-header", "h"}, "hash-header and hash-property are mutually exclusive"},
		{[]any{"hash-header", int32(5)}, "invalid type 'signedint' for arg 'hash-header' in exchange 'chx' in vhost '/'"},
		{[]any{"hash-property", true}, "invalid type 'bool' for arg 'hash-property' in exchange 'chx' in vhost '/'"},
	} {
		d := Definition{Name: "chx", Kind: KindConsistentHash, Args: table(t, tc.args...)}
		err := d.Validate("/")
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Validate(%v) = %v, want %q", tc.args, err, tc.want)
		}
	}
	// Other kinds do not look at these arguments.
	d := Definition{Name: "x", Kind: KindDirect, Args: table(t, "hash-property", "foo")}
	if err := d.Validate("/"); err != nil {
		t.Errorf("direct exchange with hash-property: %v", err)
	}
}

// Removing a destination drops all its buckets; an empty exchange routes nowhere.
// Which queue a key reaches does not depend on the order the bindings were made: a restart
// restores them in another order, and the keys must stay where they were.
func TestConsistentHashIndependentOfBindingOrder(t *testing.T) {
	a, b := newHashRouter(t), newHashRouter(t)
	names := []string{"q0", "q1", "q2", "q3", "q4"}
	for i, n := range names {
		bind(t, a, q(n), fmt.Sprint(1+i), nil)
	}
	for i := len(names) - 1; i >= 0; i-- {
		bind(t, b, q(names[i]), fmt.Sprint(1+i), nil)
	}
	for i := range 2000 {
		k := []string{fmt.Sprint("key-", i)}
		if x, y := routeOne(t, a, k, nil), routeOne(t, b, k, nil); x != y {
			t.Fatalf("key %s: %s when bound in one order, %s in the other", k[0], x, y)
		}
	}
}

func TestConsistentHashRemoveDestination(t *testing.T) {
	r := newHashRouter(t)
	bind(t, r, q("a"), "2", nil)
	bind(t, r, q("b"), "1", nil)
	bind(t, r, q("a"), "5", nil)
	if got := r.RemoveDestination(q("a")); len(got) != 2 {
		t.Fatalf("RemoveDestination(a) = %v, want its two bindings", got)
	}
	for i := range 100 {
		if got := routeOne(t, r, []string{fmt.Sprint(i)}, nil); got != "b" {
			t.Fatalf("after removing a, key %d went to %s", i, got)
		}
	}
	unbind(r, q("b"), "1", nil)
	if out := r.RouteMessage([]string{"k"}, nil, nil); len(out) != 0 {
		t.Errorf("empty exchange routed to %v", out)
	}
}
