package configs

import (
	"reflect"
	"strconv"
	"testing"
)

func TestRegexToGlob(t *testing.T) {
	for re, want := range map[string]string{
		"":                       "",
		"^$":                     "",
		".*":                     "*",
		"^.*$":                   "*",
		"^":                      "*",
		"^foo":                   "foo*",
		"^foo$":                  "foo",
		`^foo\.bar$`:             "foo.bar",
		`^amq\.gen.*`:            "amq.gen*",
		"foo":                    "*foo*",
		"foo$":                   "*foo",
		"^(a|b)$":                "{a,b}",
		"^(?:a|b)$":              "{a,b}",
		`^(orders|payments)\..*`: "{orders,payments}.*",
		"^app.$":                 "app?",
		`^a\*b$`:                 `a\*b`,
		`^a\{b$`:                 `a\{b`,
		`^(a\,b|c)$`:             `{a\,b,c}`,
		`^price\$$`:              `price$`,
		"^tenant-(eu|us).*":      "tenant-{eu,us}*",
	} {
		got, err := regexToGlob(re)
		if err != nil || got != want {
			t.Errorf("regexToGlob(%q) = %q, %v; want %q", re, got, err, want)
			continue
		}
		if _, err := CompilePattern(got); err != nil {
			t.Errorf("%q translates to %q, which does not compile: %v", re, got, err)
		}
	}
	for _, re := range []string{"^[a-z]+$", "^a+", "^ab?$", `^\d+$`, "^((a|b)|c)$", "^(a|b)(c|d)$", "a|b", "^(a", "^a)", "^a{2}$", "^a*$", "a^b", `^a\`, "^a$b"} {
		want := "cannot translate regular expression " + strconv.Quote(re) + " to a glob; write the pattern by hand"
		if got, err := regexToGlob(re); err == nil || err.Error() != want {
			t.Errorf("regexToGlob(%q) = %q, %v; want error %s", re, got, err, want)
		}
	}
}

// export is the shape of `rabbitmqctl export_definitions` (3.12: tags as a list) with
// one of everything Warren takes.
const export = `{
  "rabbit_version": "3.12.4",
  "rabbitmq_version": "3.12.4",
  "product_name": "RabbitMQ",
  "users": [
    {"name": "guest", "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"], "limits": {}},
    {"name": "old", "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": "monitoring,management"}
  ],
  "vhosts": [{"name": "/"}, {"name": "shop", "metadata": {"description": "the shop", "tags": []}}],
  "permissions": [
    {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
    {"user": "old", "vhost": "shop", "configure": "^$", "write": "^orders\\..*", "read": "^(orders|payments)$"}
  ],
  "topic_permissions": [],
  "parameters": [],
  "global_parameters": [{"name": "cluster_name", "value": "rabbit@host"}],
  "policies": [
    {"vhost": "shop", "name": "dlx", "pattern": "^orders", "apply-to": "queues", "definition": {"dead-letter-exchange": "dlx", "message-ttl": 60000, "max-length-bytes": 1048576}, "priority": 1}
  ],
  "queues": [
    {"name": "orders", "vhost": "shop", "durable": true, "auto_delete": false, "arguments": {"x-queue-type": "classic", "x-max-priority": 5}},
    {"name": "tmp", "vhost": "shop", "durable": false, "auto_delete": true, "arguments": {}}
  ],
  "exchanges": [
    {"name": "dlx", "vhost": "shop", "type": "fanout", "durable": true, "auto_delete": false, "internal": false, "arguments": {}},
    {"name": "events", "vhost": "shop", "type": "topic", "durable": true, "auto_delete": false, "internal": true, "arguments": {"alternate-exchange": "dlx"}}
  ],
  "bindings": [
    {"source": "events", "vhost": "shop", "destination": "orders", "destination_type": "queue", "routing_key": "order.#", "arguments": {}},
    {"source": "events", "vhost": "shop", "destination": "dlx", "destination_type": "exchange", "routing_key": "", "arguments": {"x-match": "all", "n": 1.5}}
  ]
}`

func TestImportRabbitMQ(t *testing.T) {
	defs, err := ImportRabbitMQ("defs.json", []byte(export))
	if err != nil {
		t.Fatal(err)
	}
	if err := defs.Validate(); err != nil {
		t.Fatal(err)
	}
	i := func(v int64) *int64 { return &v }
	s := func(v string) *string { return &v }
	want := &Definitions{
		Vhosts: []Vhost{{Name: "/"}, {Name: "shop", Description: "the shop"}},
		Users: []User{
			{Name: "guest", PasswordHash: "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", HashingAlgorithm: sha256Algorithm, Tags: []string{"administrator"}},
			{Name: "old", PasswordHash: "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", HashingAlgorithm: sha256Algorithm, Tags: []string{"monitoring", "management"}},
		},
		Permissions: []Permission{
			{User: "guest", Vhost: "/", Configure: "*", Write: "*", Read: "*"},
			{User: "old", Vhost: "shop", Configure: "", Write: "orders.*", Read: "{orders,payments}"},
		},
		Policies: []Policy{{Vhost: "shop", Name: "dlx", Pattern: "orders*", ApplyTo: "queues", Priority: 1,
			Definition: PolicyDefinition{DeadLetterExchange: s("dlx"), MessageTTL: i(60000), MaxLengthBytes: i(1 << 20)}}},
		Queues: []Queue{
			{Vhost: "shop", Name: "orders", Durable: true, Arguments: map[string]any{"x-queue-type": "classic", "x-max-priority": int64(5)}},
			{Vhost: "shop", Name: "tmp", AutoDelete: true},
		},
		Exchanges: []Exchange{
			{Vhost: "shop", Name: "dlx", Type: "fanout", Durable: true},
			{Vhost: "shop", Name: "events", Type: "topic", Durable: true, Internal: true, Arguments: map[string]any{"alternate-exchange": "dlx"}},
		},
		Bindings: []Binding{
			{Vhost: "shop", Source: "events", Destination: "orders", DestinationType: "queue", RoutingKey: "order.#"},
			{Vhost: "shop", Source: "events", Destination: "dlx", DestinationType: "exchange", Arguments: map[string]any{"x-match": "all", "n": 1.5}},
		},
	}
	if got := withoutPos(defs); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if defs.Queues[1].Pos != (Pos{File: "defs.json", Line: 22, Col: 5, Item: "queues[1]"}) {
		t.Errorf("queue tmp at %v, want defs.json:22:5", defs.Queues[1].Pos)
	}
	// The import writes out as a definitions file that loads back the same.
	back, _ := roundTrip(t, defs)
	want.Sort()
	if got := withoutPos(back); !reflect.DeepEqual(got, want) {
		t.Errorf("written import loads back as %+v", got)
	}
}

func TestImportRabbitMQRefusesWhatWarrenCannotHonour(t *testing.T) {
	_, err := ImportRabbitMQ("defs.json", []byte(`{
  "users": [{"name": "u", "password_hash": "x", "tags": "", "limits": {"max-queues": 10}}],
  "permissions": [{"user": "u", "vhost": "/", "configure": "^[a-z]+$", "write": ".*", "read": "^(a|b)+$"}],
  "topic_permissions": [{"user": "u", "vhost": "/", "exchange": "amq.topic", "write": "(", "read": ".*"}],
  "parameters": [{"vhost": "/", "component": "federation-upstream", "name": "up", "value": {}}],
  "policies": [
    {"vhost": "/", "name": "ha-all", "pattern": ".*", "apply-to": "queues", "definition": {"ha-mode": "all", "queue-mode": "lazy"}, "priority": 0},
    {"vhost": "/", "name": "mixed", "pattern": ".*", "definition": {"ha-mode": "all", "max-length": -1}}
  ],
  "queues": [{"name": "q", "vhost": "/", "durable": "yes", "arguments": {"x-dead-letter-exchange": null}}],
  "bindings": [{"source": "", "vhost": "/", "destination": "q", "destination_type": "queue", "routing_key": "q", "arguments": {}}]
}`))
	wantProblems(t, err,
		`defs.json:2:44: users[0].password_hash: password-hash is not a rabbit_password_hashing_sha256 hash (expected base64 of 36 bytes)`,
		`defs.json:2:72: users[0].limits: unknown key "max-queues"; expected one of: max-connections, max-channels`,
		`defs.json:3:60: permissions[0].configure: cannot translate regular expression "^[a-z]+$" to a glob; write the pattern by hand`,
		`defs.json:3:95: permissions[0].read: cannot translate regular expression "^(a|b)+$" to a glob; write the pattern by hand`,
		"defs.json:4:87: topic_permissions[0].write: invalid regular expression \"(\": error parsing regexp: missing closing ): `(`",
		`defs.json:5:18: parameters[0]: runtime parameters (federation upstreams, shovels and the like) are not supported; only vhost-limits are`,
		`defs.json:7:92: policies[0].definition.ha-mode: policy "ha-all" in vhost "/": key "ha-mode" is not supported; Warren's policy keys are message-ttl, expires, max-length, max-length-bytes, overflow, dead-letter-exchange, dead-letter-routing-key, delivery-limit, max-priority, alternate-exchange, consumer-timeout, delivery-timeout, delivery-timeout-action`,
		`defs.json:7:110: policies[0].definition.queue-mode: policy "ha-all" in vhost "/": key "queue-mode" is not supported; Warren's policy keys are message-ttl, expires, max-length, max-length-bytes, overflow, dead-letter-exchange, dead-letter-routing-key, delivery-limit, max-priority, alternate-exchange, consumer-timeout, delivery-timeout, delivery-timeout-action`,
		`defs.json:8:69: policies[1].definition.ha-mode: policy "mixed" in vhost "/": key "ha-mode" is not supported; Warren's policy keys are message-ttl, expires, max-length, max-length-bytes, overflow, dead-letter-exchange, dead-letter-routing-key, delivery-limit, max-priority, alternate-exchange, consumer-timeout, delivery-timeout, delivery-timeout-action`,
		`defs.json:8:101: policies[1].definition.max-length: max-length -1 is below the minimum of 0`,
		`defs.json:10:53: queues[0].durable: expected a boolean, got "yes"`,
		`defs.json:10:100: queues[0].arguments.x-dead-letter-exchange: null is not allowed; remove the key or give it a value`,
		`defs.json:11:27: bindings[0].source: the default exchange "" cannot be bound`,
	)
	_, err = ImportRabbitMQ("defs.json", []byte("{\n  \"users\": [\n    {\"name\": \"u\",}\n  ]\n}"))
	wantProblems(t, err, `defs.json:3:19: invalid JSON: invalid character '}' looking for beginning of object key string`)
}

func TestLoadDefinitionsTakesRabbitMQJSON(t *testing.T) {
	paths := writeFiles(t, "rabbit.json", "{\n\t\"queues\": [{\"name\": \"q\", \"vhost\": \"shop\", \"durable\": true, \"auto_delete\": false, \"arguments\": {}}]\n}",
		"shop.yaml", "vhosts: [{name: shop}]\nbindings: [{vhost: shop, source: amq.direct, destination: q}]\n")
	defs, err := LoadDefinitions(paths...)
	if err != nil {
		t.Fatal(err)
	}
	if len(defs.Queues) != 1 || defs.Queues[0].Pos != (Pos{File: paths[0], Line: 2, Col: 13, Item: "queues[0]"}) {
		t.Errorf("queues %+v", defs.Queues)
	}
}
