package vhost

import (
	"fmt"
	"sort"
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/queue"
)

func testVhost(t *testing.T) *Vhost {
	t.Helper()
	return New("/", zerolog.Nop(), nil, queue.Window{})
}

func mustDeclareX(t *testing.T, v *Vhost, name, kind string, args map[string]any) {
	t.Helper()
	d := exchange.Definition{Name: name, Kind: kind}
	if args != nil {
		tb, err := amqpwire.NewTable(args)
		if err != nil {
			t.Fatal(err)
		}
		d.Args = tb
	}
	if err := v.DeclareExchange(d, false); err != nil {
		t.Fatalf("declare exchange %s: %v", name, err)
	}
}

func mustDeclareQ(t *testing.T, v *Vhost, name string) {
	t.Helper()
	if _, err := v.DeclareQueue(nil, QueueDecl{Name: name}); err != nil {
		t.Fatalf("declare queue %s: %v", name, err)
	}
}

func mustBind(t *testing.T, v *Vhost, src string, kind binding.DestKind, dst, key string) {
	t.Helper()
	if err := v.Bind(nil, binding.Binding{Source: src, Dest: binding.Destination{Kind: kind, Name: dst}, RoutingKey: key}); err != nil {
		t.Fatalf("bind %s -> %s: %v", src, dst, err)
	}
}

func routeNames(t *testing.T, v *Vhost, x string, keys ...string) []string {
	t.Helper()
	xr, err := v.Exchange(x)
	if err != nil {
		t.Fatal(err)
	}
	var s Scratch
	var names []string
	for _, q := range v.route(xr, keys, nil, &s) {
		names = append(names, q.name)
	}
	sort.Strings(names)
	return names
}

func TestRouteReachesEachQueueOnce(t *testing.T) {
	for _, n := range []int{3, linearDedupe + 40} {
		t.Run(fmt.Sprint(n, " queues"), func(t *testing.T) {
			v := testVhost(t)
			mustDeclareX(t, v, "top", "topic", nil)
			mustDeclareX(t, v, "fan", "fanout", nil)
			for i := 0; i < n; i++ {
				q := fmt.Sprintf("q%03d", i)
				mustDeclareQ(t, v, q)
				// Three paths to every queue: two topic bindings and one via the fanout.
				mustBind(t, v, "top", binding.DestQueue, q, "a.*")
				mustBind(t, v, "top", binding.DestQueue, q, "#")
				mustBind(t, v, "fan", binding.DestQueue, q, "")
			}
			mustBind(t, v, "top", binding.DestExchange, "fan", "a.b")
			got := routeNames(t, v, "top", "a.b", "a.c") // plus a CC-style second key
			if len(got) != n {
				t.Fatalf("routed to %d queues, want %d each once: %v", len(got), n, got)
			}
			for i := 1; i < len(got); i++ {
				if got[i] == got[i-1] {
					t.Fatalf("queue %s reached twice", got[i])
				}
			}
		})
	}
}

func TestRouteExchangeCycleEnds(t *testing.T) {
	v := testVhost(t)
	mustDeclareX(t, v, "x1", "fanout", nil)
	mustDeclareX(t, v, "x2", "fanout", nil)
	mustDeclareQ(t, v, "q")
	mustBind(t, v, "x1", binding.DestExchange, "x2", "")
	mustBind(t, v, "x2", binding.DestExchange, "x1", "")
	mustBind(t, v, "x2", binding.DestQueue, "q", "")
	if got := routeNames(t, v, "x1", "k"); fmt.Sprint(got) != "[q]" {
		t.Errorf("route = %v, want [q]", got)
	}
}

func TestRouteAlternateExchange(t *testing.T) {
	v := testVhost(t)
	mustDeclareX(t, v, "ae", "fanout", nil)
	mustDeclareX(t, v, "main", "direct", map[string]any{"alternate-exchange": "ae"})
	mustDeclareQ(t, v, "routed")
	mustDeclareQ(t, v, "unrouted")
	mustBind(t, v, "main", binding.DestQueue, "routed", "k")
	mustBind(t, v, "ae", binding.DestQueue, "unrouted", "")
	if got := routeNames(t, v, "main", "k"); fmt.Sprint(got) != "[routed]" {
		t.Errorf("routable: %v, want [routed] only", got)
	}
	if got := routeNames(t, v, "main", "other"); fmt.Sprint(got) != "[unrouted]" {
		t.Errorf("unroutable: %v, want [unrouted] via the alternate exchange", got)
	}
}

func TestDeleteQueueRemovesBindingsAndAutoDeletesExchange(t *testing.T) {
	v := testVhost(t)
	if err := v.DeclareExchange(exchange.Definition{Name: "auto", Kind: "direct", AutoDelete: true}, false); err != nil {
		t.Fatal(err)
	}
	mustDeclareQ(t, v, "q")
	mustBind(t, v, "auto", binding.DestQueue, "q", "k")
	if _, err := v.DeleteQueue(nil, "q", false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Exchange("auto"); err == nil {
		t.Error("auto-delete exchange survived losing its last binding")
	}
}
