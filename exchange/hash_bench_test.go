package exchange

import (
	"fmt"
	"testing"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

func hashBenchRouter(t testing.TB, args ...any) MessageRouter {
	r := newHashRouter(t, args...)
	for i := range 16 {
		bind(t, r, q(fmt.Sprint("q", i)), fmt.Sprint(1+i%4), nil)
	}
	return r
}

func BenchmarkConsistentHashRoute(b *testing.B) {
	r := hashBenchRouter(b)
	keys := make([][]string, 1024)
	for i := range keys {
		keys[i] = []string{fmt.Sprint("order-", i)}
	}
	out := make([]binding.Destination, 0, 4)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		out = r.RouteMessage(keys[i%len(keys)], nil, out[:0])
	}
}

func BenchmarkConsistentHashHeaderRoute(b *testing.B) {
	r := hashBenchRouter(b, "hash-header", "tenant")
	props := make([]amqpwire.Properties, 1024)
	for i := range props {
		props[i] = amqpwire.Properties{Flags: amqpwire.FlagHeaders, Headers: table(b, "a", int32(1), "tenant", fmt.Sprint("t", i))}
	}
	keys := []string{"rk"}
	out := make([]binding.Destination, 0, 4)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		out = r.RouteMessage(keys, &props[i%len(props)], out[:0])
	}
}

func BenchmarkRandomRoute(b *testing.B) {
	r := newRouter(b, KindRandom).(MessageRouter)
	for i := range 16 {
		bind(b, r, q(fmt.Sprint("q", i)), "", nil)
	}
	keys := []string{"rk"}
	out := make([]binding.Destination, 0, 4)
	b.ReportAllocs()
	for b.Loop() {
		out = r.RouteMessage(keys, nil, out[:0])
	}
}

// Routing through the new kinds allocates nothing once out has room: the hot path of every
// publish to them.
func TestHashAndRandomRouteAllocateNothing(t *testing.T) {
	byKey := hashBenchRouter(t)
	byHeader := hashBenchRouter(t, "hash-header", "tenant")
	byID := hashBenchRouter(t, "hash-property", "message_id")
	rnd := newRouter(t, KindRandom).(MessageRouter)
	bind(t, rnd, q("a"), "", nil)
	bind(t, rnd, q("b"), "", nil)
	p := &amqpwire.Properties{Flags: amqpwire.FlagHeaders | amqpwire.FlagMessageID, MessageID: "m-1",
		Headers: table(t, "x", "y", "tenant", "acme")}
	keys := []string{"order-1", "cc"}
	out := make([]binding.Destination, 0, 4)
	for name, r := range map[string]MessageRouter{"routing key": byKey, "header": byHeader, "property": byID, "random": rnd} {
		if n := testing.AllocsPerRun(200, func() { out = r.RouteMessage(keys, p, out[:0]) }); n != 0 {
			t.Errorf("%s: %v allocations per route, want 0", name, n)
		}
	}
}
