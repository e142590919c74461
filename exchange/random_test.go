package exchange

import (
	"fmt"
	"testing"

	"github.com/warrenmq/warren/binding"
)

// x-random sends each message to exactly one bound destination, whatever its routing keys;
// over many messages every destination gets some.
func TestRandomPicksOneDestination(t *testing.T) {
	r := newRouter(t, KindRandom).(MessageRouter)
	if out := r.RouteMessage([]string{"k"}, nil, nil); len(out) != 0 {
		t.Fatalf("unbound x-random routed to %v", out)
	}
	bind(t, r, q("a"), "ignored", nil)
	bind(t, r, q("b"), "", nil)
	bind(t, r, ex("c"), "x.y", nil)
	seen := map[string]int{}
	for i := range 3000 {
		out := r.RouteMessage([]string{fmt.Sprint(i), "cc"}, nil, nil)
		if len(out) != 1 {
			t.Fatalf("message %d routed to %v, want one destination", i, out)
		}
		seen[out[0].Name]++
	}
	for _, n := range []string{"a", "b", "c"} {
		// Each has probability 1/3: 1000 expected; below 700 is beyond 15 standard deviations.
		if seen[n] < 700 {
			t.Errorf("destination %s got %d of 3000 messages: %v", n, seen[n], seen)
		}
	}
	r.RemoveDestination(q("a"))
	unbind(r, ex("c"), "x.y", nil)
	for range 100 {
		if out := r.RouteMessage(nil, nil, nil); len(out) != 1 || out[0].Name != "b" {
			t.Fatalf("with only b bound, routed to %v", out)
		}
	}
}

// x-local-random refuses a binding with a key, with RabbitMQ 4.0's text.
func TestLocalRandomRefusesKeys(t *testing.T) {
	r := newRouter(t, KindLocalRandom)
	_, err := r.Bind(binding.Binding{Source: "x", Dest: q("a"), RoutingKey: "k"})
	if err == nil || err.Error() != "Non empty binding 'k' key not permitted" {
		t.Errorf("Bind with key: %v", err)
	}
	bind(t, r, q("a"), "", nil)
	if out := r.Route("anything", nil, nil); len(out) != 1 || out[0].Name != "a" {
		t.Errorf("Route = %v, want a", out)
	}
}

// Publishers route through the new kinds while other goroutines bind and unbind (run under
// -race): every message still reaches exactly one destination while one stays bound.
func TestConcurrentRouteAndBindHashRandom(t *testing.T) {
	for _, kind := range []string{KindConsistentHash, KindRandom} {
		t.Run(kind, func(t *testing.T) {
			r := newRouter(t, kind).(MessageRouter)
			bind(t, r, q("stable"), "1", nil)
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					d := q(fmt.Sprint("w", i%10))
					_, _ = r.Bind(binding.Binding{Source: "x", Dest: d, RoutingKey: "2"})
					if i%3 == 0 {
						r.RemoveDestination(d)
					} else {
						r.Unbind(binding.Binding{Source: "x", Dest: d, RoutingKey: "2"})
					}
				}
			}()
			var out []binding.Destination
			for i := range 5000 {
				out = r.RouteMessage([]string{fmt.Sprint(i)}, nil, out[:0])
				if len(out) != 1 {
					t.Fatalf("routed to %v, want one destination", out)
				}
			}
			close(stop)
			<-done
		})
	}
}
