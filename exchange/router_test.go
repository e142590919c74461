package exchange

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

func q(name string) binding.Destination {
	return binding.Destination{Kind: binding.DestQueue, Name: name}
}

func ex(name string) binding.Destination {
	return binding.Destination{Kind: binding.DestExchange, Name: name}
}

// table builds a table with fields in the given order: key, value, key, value, ...
func table(t testing.TB, kv ...any) amqpwire.Table {
	t.Helper()
	var tb amqpwire.Table
	for i := 0; i < len(kv); i += 2 {
		var err error
		if tb, err = amqpwire.AppendField(tb, kv[i].(string), kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

func newRouter(t testing.TB, kind string) Router {
	t.Helper()
	r, err := NewRouter(kind)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func bind(t testing.TB, r Router, d binding.Destination, key string, args amqpwire.Table) {
	t.Helper()
	added, err := r.Bind(binding.Binding{Source: "x", Dest: d, RoutingKey: key, Args: args})
	if err != nil || !added {
		t.Fatalf("Bind(%v, %q, %v) = %v, %v", d, key, args, added, err)
	}
}

func unbind(r Router, d binding.Destination, key string, args amqpwire.Table) bool {
	return r.Unbind(binding.Binding{Source: "x", Dest: d, RoutingKey: key, Args: args})
}

// routeNames routes and returns the destinations' names sorted, failing on a repeat.
func routeNames(t testing.TB, r Router, key string, headers amqpwire.Table) []string {
	t.Helper()
	out := r.Route(key, headers, nil)
	var s []string
	for _, d := range out {
		n := d.Name
		if d.Kind == binding.DestExchange {
			n = "x:" + n
		}
		s = append(s, n)
	}
	slices.Sort(s)
	if len(slices.Compact(slices.Clone(s))) != len(s) {
		t.Fatalf("Route(%q) returned a destination twice: %v", key, out)
	}
	return s
}

func TestNewRouter(t *testing.T) {
	for _, k := range []string{KindDirect, KindFanout, KindTopic, KindHeaders, KindConsistentHash, KindRandom, KindLocalRandom} {
		if !KnownKind(k) {
			t.Errorf("KnownKind(%q) = false", k)
		}
		if r, err := NewRouter(k); err != nil || r == nil || r.Len() != 0 {
			t.Errorf("NewRouter(%q) = %v, %v", k, r, err)
		}
	}
	for _, k := range []string{"", "x-delayed-message-not", "Direct", "match"} {
		if KnownKind(k) {
			t.Errorf("KnownKind(%q) = true", k)
		}
		r, err := NewRouter(k)
		if r != nil || !errors.Is(err, ErrUnknownKind) {
			t.Errorf("NewRouter(%q) = %v, %v", k, r, err)
			continue
		}
		if want := "unknown exchange type '" + k + "'"; err.Error() != want {
			t.Errorf("NewRouter(%q) error %q, want %q", k, err, want)
		}
	}
}

// TestRouterBookkeeping runs the same binding identity rules through every kind.
func TestRouterBookkeeping(t *testing.T) {
	for _, kind := range []string{KindDirect, KindFanout, KindTopic, KindHeaders} {
		t.Run(kind, func(t *testing.T) {
			r := newRouter(t, kind)
			argsAB := table(t, "a", "1", "b", int32(2))
			argsBA := table(t, "b", int32(2), "a", "1")
			bind(t, r, q("q1"), "k", nil)
			bind(t, r, q("q1"), "k", argsAB)
			bind(t, r, q("q1"), "k2", nil)
			bind(t, r, ex("q1"), "k", nil) // same name, other kind
			bind(t, r, q("q2"), "k", nil)
			for _, b := range []binding.Binding{
				{Source: "x", Dest: q("q1"), RoutingKey: "k"},
				{Source: "x", Dest: q("q1"), RoutingKey: "k", Args: amqpwire.Table{}},
				{Source: "x", Dest: q("q1"), RoutingKey: "k", Args: argsBA}, // field order is not identity
			} {
				if added, err := r.Bind(b); added || err != nil {
					t.Errorf("rebinding %+v: added=%v err=%v", b, added, err)
				}
			}
			if r.Len() != 5 {
				t.Fatalf("Len = %d, want 5", r.Len())
			}
			if !r.HasDestination(q("q1")) || !r.HasDestination(ex("q1")) || r.HasDestination(q("q3")) {
				t.Error("HasDestination wrong")
			}
			got := r.Bindings()
			var desc []string
			for _, b := range got {
				if b.Source != "x" {
					t.Errorf("binding %+v lost its source", b)
				}
				desc = append(desc, fmt.Sprintf("%v/%s/%d", b.Dest, b.RoutingKey, len(b.Args)))
			}
			want := []string{"queue 'q1'/k/0", "queue 'q1'/k/" + fmt.Sprint(len(argsAB)), "queue 'q1'/k2/0",
				"queue 'q2'/k/0", "exchange 'q1'/k/0"}
			if !slices.Equal(desc, want) {
				t.Errorf("Bindings = %v, want %v", desc, want)
			}

			if unbind(r, q("q1"), "k", table(t, "a", "1")) || unbind(r, q("q3"), "k", nil) || unbind(r, q("q1"), "nope", nil) {
				t.Error("Unbind of an absent binding reported true")
			}
			if !unbind(r, q("q1"), "k", argsBA) || unbind(r, q("q1"), "k", argsAB) {
				t.Error("Unbind with reordered args: want true once")
			}
			if r.Len() != 4 {
				t.Fatalf("Len = %d, want 4", r.Len())
			}

			removed := r.RemoveDestination(q("q1"))
			if len(removed) != 2 || removed[0].RoutingKey != "k" || removed[1].RoutingKey != "k2" {
				t.Errorf("RemoveDestination = %+v", removed)
			}
			if r.RemoveDestination(q("q1")) != nil {
				t.Error("second RemoveDestination returned bindings")
			}
			if r.HasDestination(q("q1")) || r.Len() != 2 {
				t.Errorf("after RemoveDestination: has=%v len=%d", r.HasDestination(q("q1")), r.Len())
			}
			// Route never returns what was removed.
			for _, d := range r.Route("k", nil, nil) {
				if d == q("q1") {
					t.Error("removed destination still routed")
				}
			}
			// And everything can be bound again.
			bind(t, r, q("q1"), "k", nil)
		})
	}
}

func TestDirectRoute(t *testing.T) {
	r := newRouter(t, KindDirect)
	bind(t, r, q("a"), "info", nil)
	bind(t, r, q("b"), "info", nil)
	bind(t, r, q("b"), "info", table(t, "x", "y")) // same pair, other args: routed once
	bind(t, r, q("c"), "error", nil)
	bind(t, r, q("d"), "", nil)
	bind(t, r, ex("e"), "info", nil)
	cases := []struct{ key, want string }{
		{"info", "a b x:e"},
		{"error", "c"},
		{"", "d"},
		{"Info", ""},
		{"info.x", ""},
		{"#", ""},
		{"*", ""},
	}
	for _, c := range cases {
		if got := routeNames(t, r, c.key, nil); !slices.Equal(got, strings.Fields(c.want)) {
			t.Errorf("Route(%q) = %v, want %v", c.key, got, c.want)
		}
	}
	unbind(r, q("b"), "info", nil)
	if got := routeNames(t, r, "info", nil); !slices.Equal(got, []string{"a", "b", "x:e"}) {
		t.Errorf("b still has a binding with args: Route = %v", got)
	}
	unbind(r, q("b"), "info", table(t, "x", "y"))
	unbind(r, q("d"), "", nil)
	if got := routeNames(t, r, "info", nil); !slices.Equal(got, []string{"a", "x:e"}) {
		t.Errorf("Route(info) = %v", got)
	}
	if got := r.Route("", nil, nil); len(got) != 0 {
		t.Errorf("Route(\"\") = %v", got)
	}
	// Appends to what the caller passes.
	out := r.Route("error", nil, []binding.Destination{q("zz")})
	if len(out) != 2 || out[0] != q("zz") || out[1] != q("c") {
		t.Errorf("Route appending = %v", out)
	}
}

func TestFanoutRoute(t *testing.T) {
	r := newRouter(t, KindFanout)
	if got := r.Route("k", nil, nil); len(got) != 0 {
		t.Fatalf("empty fanout routed to %v", got)
	}
	bind(t, r, q("a"), "", nil)
	bind(t, r, q("a"), "other", nil) // fanout ignores keys: still once
	bind(t, r, q("b"), "whatever", nil)
	bind(t, r, ex("c"), "", nil)
	for _, key := range []string{"", "x", "a.b.#"} {
		if got := routeNames(t, r, key, table(t, "h", "1")); !slices.Equal(got, []string{"a", "b", "x:c"}) {
			t.Errorf("Route(%q) = %v", key, got)
		}
	}
	unbind(r, q("a"), "", nil)
	if got := routeNames(t, r, "", nil); !slices.Equal(got, []string{"a", "b", "x:c"}) {
		t.Errorf("a has another binding: Route = %v", got)
	}
	unbind(r, q("a"), "other", nil)
	if got := routeNames(t, r, "", nil); !slices.Equal(got, []string{"b", "x:c"}) {
		t.Errorf("Route = %v", got)
	}
	// A snapshot handed out before a change is not changed by it.
	before := r.Route("", nil, nil)
	r.RemoveDestination(q("b"))
	if len(before) != 2 || routeNames(t, r, "", nil)[0] != "x:c" {
		t.Errorf("before=%v after=%v", before, r.Route("", nil, nil))
	}
}

// TestTopicRouteArgsAliasing is RabbitMQ's t27 case: one queue bound twice with the same key
// and different arguments stays routed until both bindings are gone.
func TestTopicRouteArgsAliasing(t *testing.T) {
	r := newRouter(t, KindTopic)
	bind(t, r, q("t27"), "args-test", table(t, "foo", "bar"))
	bind(t, r, q("t27"), "args-test", table(t, "foo", "baz"))
	bind(t, r, q("t25"), "*", nil)
	bind(t, r, q("t25"), "#", nil)
	if got := routeNames(t, r, "args-test", nil); !slices.Equal(got, []string{"t25", "t27"}) {
		t.Fatalf("Route = %v", got)
	}
	unbind(r, q("t27"), "args-test", table(t, "foo", "baz"))
	if got := routeNames(t, r, "args-test", nil); !slices.Equal(got, []string{"t25", "t27"}) {
		t.Fatalf("after removing one alias: Route = %v", got)
	}
	unbind(r, q("t27"), "args-test", table(t, "foo", "bar"))
	if got := routeNames(t, r, "args-test", nil); !slices.Equal(got, []string{"t25"}) {
		t.Fatalf("after removing both: Route = %v", got)
	}
	unbind(r, q("t25"), "#", nil)
	if got := routeNames(t, r, "", nil); len(got) != 0 {
		t.Fatalf("Route(\"\") = %v; only * is left, which needs one word", got)
	}
	r.RemoveDestination(q("t25"))
	if got := routeNames(t, r, "x", nil); len(got) != 0 {
		t.Fatalf("Route after RemoveDestination = %v", got)
	}
}

func TestTopicRouteRabbitMQSuite(t *testing.T) {
	r := newRouter(t, KindTopic)
	keys := []string{"a.b.c", "a.*.c", "a.#.b", "a.b.b.c", "#", "#.#", "#.b", "*.*", "a.*",
		"*.b.c", "a.#", "a.#.#", "b.b.c", "a.b.b", "a.b", "b.c", "", "*.*.*", "vodka.martini",
		"a.b.c", "*.#", "#.*.#", "*.#.#", "#.#.#", "*", "#.b.#"}
	for i, k := range keys {
		bind(t, r, q(fmt.Sprintf("t%d", i+1)), k, nil)
	}
	cases := []struct{ key, want string }{
		{"a.b.c", "t1 t2 t5 t6 t10 t11 t12 t18 t20 t21 t22 t23 t24 t26"},
		{"", "t5 t6 t17 t24"},
		{"oneword", "t5 t6 t21 t22 t23 t24 t25"},
	}
	for _, c := range cases {
		want := strings.Fields(c.want)
		slices.Sort(want)
		if got := routeNames(t, r, c.key, nil); !slices.Equal(got, want) {
			t.Errorf("Route(%q) = %v, want %v", c.key, got, want)
		}
	}
}

func TestHeadersRoute(t *testing.T) {
	r := newRouter(t, KindHeaders)
	if got := r.Route("", table(t, "a", "1"), nil); len(got) != 0 {
		t.Fatalf("empty headers exchange routed to %v", got)
	}
	bind(t, r, q("all"), "", table(t, "x-match", "all", "format", "pdf", "type", "report"))
	bind(t, r, q("any"), "", table(t, "x-match", "any", "format", "pdf", "type", "report"))
	bind(t, r, q("any"), "other", table(t, "x-match", "all", "lang", "en")) // second binding, same queue
	bind(t, r, q("everything"), "", nil)
	bind(t, r, q("dead"), "", table(t, "x-match", "any-with-x", "x-first-death-reason", "expired"))
	bind(t, r, q("num"), "ignored-key", table(t, "n", int8(5)))
	bind(t, r, ex("present"), "", table(t, "x-match", "all", "flag", nil))

	cases := []struct {
		name    string
		key     string
		headers amqpwire.Table
		want    string
	}{
		{"no headers", "", nil, "everything"},
		{"all fields", "k", table(t, "type", "report", "format", "pdf"), "all any everything"},
		{"one field", "", table(t, "format", "pdf"), "any everything"},
		{"second binding of any", "", table(t, "lang", "en", "format", "pdf"), "any everything"},
		{"x- header", "", table(t, "x-first-death-reason", "expired"), "dead everything"},
		{"int width", "", table(t, "n", int64(5)), "everything num"},
		{"int vs float", "", table(t, "n", 5.0), "everything num"},
		{"void means present", "", table(t, "flag", false), "everything x:present"},
		{"routing key ignored", "anything", table(t, "format", "doc"), "everything"},
	}
	for _, c := range cases {
		if got := routeNames(t, r, c.key, c.headers); !slices.Equal(got, strings.Fields(c.want)) {
			t.Errorf("%s: Route = %v, want %v", c.name, got, c.want)
		}
	}

	// Invalid x-match: refused, nothing bound.
	n := r.Len()
	added, err := r.Bind(binding.Binding{Source: "x", Dest: q("bad"), Args: table(t, "x-match", "most")})
	if added || !errors.Is(err, binding.ErrInvalidBinding) {
		t.Fatalf("invalid x-match: added=%v err=%v", added, err)
	}
	if want := `Invalid x-match field value <<"most">>; expected all, any, all-with-x, or any-with-x`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if r.Len() != n || r.HasDestination(q("bad")) {
		t.Error("invalid binding was recorded")
	}

	// Removing one of two bindings of a queue keeps the other.
	unbind(r, q("any"), "", table(t, "type", "report", "format", "pdf", "x-match", "any"))
	if got := routeNames(t, r, "", table(t, "lang", "en", "format", "pdf")); !slices.Equal(got, []string{"any", "everything"}) {
		t.Errorf("after unbinding one: Route = %v", got)
	}
	r.RemoveDestination(q("any"))
	r.RemoveDestination(q("everything"))
	if got := routeNames(t, r, "", table(t, "lang", "en", "format", "pdf")); len(got) != 0 {
		t.Errorf("after RemoveDestination: Route = %v", got)
	}
	if got := routeNames(t, r, "", table(t, "flag", nil)); !slices.Equal(got, []string{"x:present"}) {
		t.Errorf("groups reindexed wrongly: Route = %v", got)
	}
}

func TestRouteAllocs(t *testing.T) {
	hdr := table(t, "format", "pdf")
	for _, kind := range []string{KindDirect, KindFanout, KindTopic, KindHeaders} {
		r := newRouter(t, kind)
		args := table(t, "x-match", "any", "format", "pdf")
		for i := range 8 {
			bind(t, r, q(fmt.Sprint(i)), "a.b", args)
		}
		out := make([]binding.Destination, 0, 16)
		r.Route("a.b", hdr, out) // warm the header-set pool
		allocs := testing.AllocsPerRun(200, func() {
			out = r.Route("a.b", hdr, out[:0])
		})
		if len(out) != 8 {
			t.Fatalf("%s: routed to %d", kind, len(out))
		}
		// Headers: amqpwire's Table.Each allocates the key, the value and its boxing for each
		// field it decodes; nothing else may.
		if max := map[string]float64{KindHeaders: 3}[kind]; allocs > max {
			t.Errorf("%s: Route allocates %.1f times, want at most %v", kind, allocs, max)
		}
	}
}

// TestConcurrentRouteAndBind has publishers route while other goroutines bind and unbind;
// run under -race. Destinations bound for the whole test must always be routed, and no
// destination may appear twice.
func TestConcurrentRouteAndBind(t *testing.T) {
	for _, kind := range []string{KindDirect, KindFanout, KindTopic, KindHeaders} {
		t.Run(kind, func(t *testing.T) {
			r := newRouter(t, kind)
			args := table(t, "x-match", "all", "k", "v")
			hdr := table(t, "k", "v")
			bind(t, r, q("stable"), "a.b", args)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for w := range 2 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						d := q(fmt.Sprintf("w%d-%d", w, i%10))
						r.Bind(binding.Binding{Source: "x", Dest: d, RoutingKey: "a.b", Args: args})
						if i%3 == 0 {
							r.RemoveDestination(d)
						} else {
							r.Unbind(binding.Binding{Source: "x", Dest: d, RoutingKey: "a.b", Args: args})
						}
						_ = r.Bindings()
					}
				})
			}
			var readers sync.WaitGroup
			for range 4 {
				readers.Go(func() {
					var out []binding.Destination
					for range 2000 {
						out = r.Route("a.b", hdr, out[:0])
						seen := make(map[binding.Destination]bool, len(out))
						for _, d := range out {
							if seen[d] {
								t.Errorf("%v routed twice", d)
								return
							}
							seen[d] = true
						}
						if !seen[q("stable")] {
							t.Errorf("stable destination missing from %v", out)
							return
						}
					}
				})
			}
			readers.Wait()
			close(stop)
			wg.Wait()
			if r.Len() != 1 {
				t.Errorf("Len = %d after all churn, want 1: %v", r.Len(), r.Bindings())
			}
		})
	}
}
