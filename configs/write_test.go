package configs

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// withoutPos is defs with every position cleared, for comparing loads of different files.
func withoutPos(defs *Definitions) *Definitions {
	c := *defs
	clear := func(n int, pos func(int) *Pos) {
		for i := range n {
			*pos(i) = Pos{}
		}
	}
	c.Vhosts, c.Users, c.Permissions = append([]Vhost(nil), defs.Vhosts...), append([]User(nil), defs.Users...), append([]Permission(nil), defs.Permissions...)
	c.Exchanges, c.Queues = append([]Exchange(nil), defs.Exchanges...), append([]Queue(nil), defs.Queues...)
	c.Bindings, c.Policies = append([]Binding(nil), defs.Bindings...), append([]Policy(nil), defs.Policies...)
	clear(len(c.Vhosts), func(i int) *Pos { return &c.Vhosts[i].Pos })
	clear(len(c.Users), func(i int) *Pos { return &c.Users[i].Pos })
	clear(len(c.Permissions), func(i int) *Pos { return &c.Permissions[i].Pos })
	clear(len(c.Exchanges), func(i int) *Pos { return &c.Exchanges[i].Pos })
	clear(len(c.Queues), func(i int) *Pos { return &c.Queues[i].Pos })
	clear(len(c.Bindings), func(i int) *Pos { return &c.Bindings[i].Pos })
	clear(len(c.Policies), func(i int) *Pos { return &c.Policies[i].Pos })
	c.TopicPermissions = append([]TopicPermission(nil), defs.TopicPermissions...)
	clear(len(c.TopicPermissions), func(i int) *Pos { return &c.TopicPermissions[i].Pos })
	return &c
}

// roundTrip writes defs and loads the output back.
func roundTrip(t *testing.T, defs *Definitions) (*Definitions, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := defs.WriteYAML(&buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "out.yaml")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := LoadDefinitions(p)
	if err != nil {
		t.Fatalf("written definitions do not load: %v\n%s", err, buf.String())
	}
	return back, buf.String()
}

const everything = `# not in sorted order, on purpose
vhosts:
  - {name: /shop, description: "the shop: orders & payments"}
  - {name: "/"}
users:
  - {name: ops, password-hash: "` + appHash + `", tags: [administrator, monitoring]}
  - {name: app, password-hash: "YK3bT7mbnT3WpQZmGYVvnZPqYD9WoRHjsaQ4JTpWtFj/ee2N4g4BEP48uYdeN8Y6+m8bDp1RNS6UkmXYh2GkSuzOg4E=", hashing-algorithm: rabbit_password_hashing_sha512}
permissions:
  - {user: app, vhost: /shop, configure: "app.*", write: "*", read: "{orders,payments}.*"}
  - {user: app, vhost: /, configure: "", write: "", read: "*"}
exchanges:
  - {name: orders, vhost: /shop, type: topic, arguments: {alternate-exchange: unrouted}}
  - {name: unrouted, vhost: /shop, type: fanout, durable: false, auto-delete: true, internal: true}
  - {name: dlx, vhost: /shop, type: direct}
  - {name: "yes", vhost: /shop, type: headers}
queues:
  - name: orders.work
    vhost: /shop
    arguments:
      x-max-length: 10000
      x-max-length-bytes: 10MiB
      x-message-ttl: 90s
      x-expires: 3600000
      x-dead-letter-exchange: dlx
      x-dead-letter-routing-key: dead
      x-overflow: reject-publish-dlx
      x-max-priority: 10
      x-single-active-consumer: true
      x-queue-mode: lazy
      custom-int: -7
      custom-big: 9007199254740993
      custom-float: 2.5
      custom-whole-float: 3.0
      custom-tiny: 1.0e-9
      custom-huge: 1.0e+300
      custom-inf: .inf
      custom-neg-inf: -.inf
      custom-string-number: "123"
      custom-string-bool: "true"
      custom-string-yes: "yes"
      custom-empty: ""
      custom-multiline: "line one\nline two\n"
      custom-unicode: "héllo – 世界"
      custom-colon: "a: b # not a comment"
      custom-date: 2001-12-14
      custom-false: false
      custom-list: [1, "two", 3.5, false, [nested], {k: v}]
      custom-empty-list: []
      custom-map: {b: 2, a: {deep: [x]}}
      custom-empty-map: {}
  - {name: unrouted, vhost: /shop, durable: false, auto-delete: true}
  - {name: orders.dead, vhost: /shop}
  - {name: "0x10", vhost: /}
bindings:
  - {vhost: /shop, source: orders, destination: orders.work, routing-key: "order.*"}
  - {vhost: /shop, source: orders, destination: orders.work, routing-key: "order.*", arguments: {x-match: any}}
  - {vhost: /shop, source: orders, destination: unrouted, destination-type: exchange}
  - {vhost: /shop, source: unrouted, destination: unrouted}
  - {vhost: /shop, source: dlx, destination: orders.dead, routing-key: dead}
  - {vhost: /shop, source: amq.topic, destination: orders.work, routing-key: "#"}
  - {vhost: /, source: amq.direct, destination: "0x10", routing-key: "null"}
policies:
  - name: ttl
    vhost: /shop
    pattern: "orders.*"
    apply-to: queues
    priority: -3
    definition: {message-ttl: 60s, expires: 3600000, max-length: 1000, max-length-bytes: 1000000, overflow: reject-publish,
                 dead-letter-exchange: dlx, dead-letter-routing-key: dead, delivery-limit: 5, max-priority: 10}
  - {name: ae, vhost: /shop, pattern: "*", apply-to: exchanges, priority: 7, definition: {alternate-exchange: unrouted}}
  - {name: lim, vhost: /, pattern: "*", definition: {max-length-bytes: 64MiB, dead-letter-exchange: ""}}
prune: true
`

func TestWriteYAMLRoundTrip(t *testing.T) {
	paths := writeFiles(t, "in.yaml", everything)
	in, err := LoadDefinitions(paths...)
	if err != nil {
		t.Fatal(err)
	}
	back, out := roundTrip(t, in)
	want := withoutPos(in)
	want.Sort()
	if got := withoutPos(back); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip differs\n got %#v\nwant %#v\nYAML:\n%s", got, want, out)
	}
	// Every argument type survives, as the same Go type.
	var args map[string]any
	for _, q := range back.Queues {
		if q.Name == "orders.work" {
			args = q.Arguments
		}
	}
	for key, want := range map[string]any{
		"custom-int": int64(-7), "custom-big": int64(9007199254740993), "custom-float": 2.5, "custom-whole-float": 3.0,
		"custom-tiny": 1e-9, "custom-huge": 1e300, "custom-inf": math.Inf(1), "custom-neg-inf": math.Inf(-1),
		"custom-string-number": "123", "custom-string-bool": "true", "custom-string-yes": "yes", "custom-empty": "",
		"custom-multiline": "line one\nline two\n", "custom-date": "2001-12-14", "custom-false": false,
		"custom-list":       []any{int64(1), "two", 3.5, false, []any{"nested"}, map[string]any{"k": "v"}},
		"custom-empty-list": []any{}, "custom-empty-map": map[string]any{},
		"x-message-ttl": int64(90000), "x-max-length-bytes": int64(10 << 20), "x-single-active-consumer": true,
	} {
		if !reflect.DeepEqual(args[key], want) {
			t.Errorf("%s = %#v (%T); want %#v (%T)", key, args[key], args[key], want, want)
		}
	}
	// Writing is deterministic, and what was read back writes the same bytes.
	_, again := roundTrip(t, back)
	if again != out {
		t.Errorf("second write differs:\n%s\nfirst:\n%s", again, out)
	}
}

func TestWriteYAMLShape(t *testing.T) {
	i := func(v int64) *int64 { return &v }
	defs := &Definitions{
		Queues: []Queue{
			{Vhost: "/", Name: "b", Durable: true},
			{Vhost: "/", Name: "a", Durable: false, Arguments: map[string]any{"x-max-length-bytes": int64(64 << 20), "x-max-length": 5}},
		},
		Exchanges: []Exchange{{Vhost: "/", Name: "e", Type: "direct", Durable: true}},
		Bindings: []Binding{
			{Vhost: "/", Source: "e", Destination: "b", DestinationType: "queue", RoutingKey: "k2"},
			{Vhost: "/", Source: "e", Destination: "b", DestinationType: "queue", RoutingKey: "k1"},
			{Vhost: "/", Source: "e", Destination: "a", DestinationType: "queue"},
		},
		Policies: []Policy{{Vhost: "/", Name: "p", Pattern: "*", ApplyTo: "all", Definition: PolicyDefinition{MaxLengthBytes: i(1000)}}},
	}
	var buf bytes.Buffer
	if err := defs.WriteYAML(&buf); err != nil {
		t.Fatal(err)
	}
	want := `exchanges:
  - name: e
    vhost: /
    type: direct
queues:
  - name: a
    vhost: /
    durable: false
    arguments:
      x-max-length: 5
      x-max-length-bytes: 64MiB
  - name: b
    vhost: /
bindings:
  - vhost: /
    source: e
    destination: a
  - vhost: /
    source: e
    destination: b
    routing-key: k1
  - vhost: /
    source: e
    destination: b
    routing-key: k2
policies:
  - name: p
    vhost: /
    pattern: '*'
    definition:
      max-length-bytes: 1000
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
	if defs.Queues[0].Name != "b" {
		t.Error("WriteYAML sorted the caller's definitions")
	}
	bad := &Definitions{Queues: []Queue{{Vhost: "/", Name: "q", Arguments: map[string]any{"x": []any{struct{}{}}}}}}
	if err := bad.WriteYAML(&buf); err == nil || !strings.Contains(err.Error(), `queue "q" in vhost "/": argument x: [0]: values of type struct {} cannot be written`) {
		t.Errorf("unwritable argument: %v", err)
	}
}
