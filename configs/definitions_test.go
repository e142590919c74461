package configs

import (
	"reflect"
	"testing"
)

// hash is a valid sha256 hash (of "change-me").
const appHash = "KNwWGyycXO7ZhOVuEQ9Ms2s7EtOVOTXH30I99xQjBxtaxePU"

func TestParseDefinitionsDefaults(t *testing.T) {
	defs, err := ParseDefinitions("defs.yaml", []byte(`
queues:
  - name: jobs
exchanges:
  - {name: events, type: topic}
bindings:
  - {source: events, destination: jobs}
policies:
  - {name: ttl, pattern: "jobs*", definition: {message-ttl: 60s, max-length-bytes: 10MiB, expires: 3600000}}
users:
  - {name: app, password-hash: "`+appHash+`"}
permissions:
  - {user: app}
`))
	if err != nil {
		t.Fatal(err)
	}
	i := func(v int64) *int64 { return &v }
	want := &Definitions{
		Queues:      []Queue{{Pos: Pos{File: "defs.yaml", Line: 3, Col: 5, Item: "queues[0]"}, Vhost: "/", Name: "jobs", Durable: true}},
		Exchanges:   []Exchange{{Pos: Pos{File: "defs.yaml", Line: 5, Col: 5, Item: "exchanges[0]"}, Vhost: "/", Name: "events", Type: "topic", Durable: true}},
		Bindings:    []Binding{{Pos: Pos{File: "defs.yaml", Line: 7, Col: 5, Item: "bindings[0]"}, Vhost: "/", Source: "events", Destination: "jobs", DestinationType: "queue"}},
		Policies:    []Policy{{Pos: Pos{File: "defs.yaml", Line: 9, Col: 5, Item: "policies[0]"}, Vhost: "/", Name: "ttl", Pattern: "jobs*", ApplyTo: "all", Definition: PolicyDefinition{MessageTTL: i(60000), MaxLengthBytes: i(10 << 20), Expires: i(3600000)}}},
		Users:       []User{{Pos: Pos{File: "defs.yaml", Line: 11, Col: 5, Item: "users[0]"}, Name: "app", PasswordHash: appHash, HashingAlgorithm: sha256Algorithm}},
		Permissions: []Permission{{Pos: Pos{File: "defs.yaml", Line: 13, Col: 5, Item: "permissions[0]"}, User: "app", Vhost: "/"}},
	}
	if !reflect.DeepEqual(defs, want) {
		t.Errorf("got  %+v\nwant %+v", defs, want)
	}
}

func TestParseDefinitionsReportsEveryProblem(t *testing.T) {
	_, err := ParseDefinitions("defs.yaml", []byte(`queues:
  - name: orders
    prefech: 10
  - name: orders.dead
    durable: "yes please"
    arguments: {x-max-length: ten, x-message-ttl: 5 mins, x-overflow: drop, x-max-priority: 300}
  - name: amq.mine
  - durable: true
  - name: excl
    exclusive: true
  - name: q
    arguments: {x-dead-letter-routing-key: k, x-expires: 0, weird: null}
exchanges:
  - {name: e, type: topc}
  - {name: amq.x, type: direct, arguments: {alternate-exchange: 5}}
  - {name: "", type: direct}
  - {name: e2, type: direct, durable: 1}
bindings:
  - {source: "", destination: q, destination-type: stream}
  - {source: e, destination: [q]}
policies:
  - {name: p, pattern: "[a", definition: {max-priority: 0, overflow: drop, message-ttl: -1}}
  - {name: p2, pattern: "*", apply-to: queues, definition: {alternate-exchange: ae}}
  - {name: p3, pattern: "*", apply-to: exchanges, definition: {max-length: 5}}
  - {name: p4, pattern: "*", definition: {}}
  - {name: p5, pattern: "*", definition: {max-length: 10.5, expires: "0s"}}
users:
  - {name: bob, password: secret}
  - {name: app, password-hash: "abc"}
  - {name: app2, password-hash: "`+appHash+`", hashing-algorithm: bcrypt, tags: monitoring}
permissions:
  - {user: app, configure: "{a", vhost: {}}
vhosts: {name: x}
prune: maybe
`))
	wantProblems(t, err,
		`defs.yaml:3:5: queues[0]: unknown key "prefech"; expected one of: name, vhost, durable, auto-delete, arguments`,
		`defs.yaml:5:14: queues[1].durable: expected a boolean, got "yes please"`,
		`defs.yaml:6:31: queues[1].arguments.x-max-length: expected an integer, got "ten"`,
		`defs.yaml:6:51: queues[1].arguments.x-message-ttl: duration "5 mins": time: unknown unit " mins" in duration "5 mins"`,
		`defs.yaml:6:71: queues[1].arguments.x-overflow: x-overflow "drop" is not one of drop-head, reject-publish, reject-publish-dlx`,
		`defs.yaml:6:93: queues[1].arguments.x-max-priority: x-max-priority 300 is above the maximum of 255`,
		`defs.yaml:7:11: queues[2].name: queue name "amq.mine" is reserved`,
		`defs.yaml:8:5: queues[3]: missing required key "name"`,
		`defs.yaml:10:5: queues[4].exclusive: exclusive queues belong to a connection and cannot be defined in a file`,
		"defs.yaml:12:44: queues[5].arguments.x-dead-letter-routing-key: x-dead-letter-routing-key requires x-dead-letter-exchange",
		"defs.yaml:12:58: queues[5].arguments.x-expires: x-expires 0 is below the minimum of 1",
		"defs.yaml:12:68: queues[5].arguments.weird: null is not allowed; remove the key or give it a value",
		`defs.yaml:14:21: exchanges[0].type: exchange type "topc" is not one of direct, fanout, topic, headers, x-consistent-hash, x-random, x-local-random, x-delayed-message`,
		`defs.yaml:15:12: exchanges[1].name: exchange name "amq.x" is reserved`,
		"defs.yaml:15:65: exchanges[1].arguments.alternate-exchange: expected a string, got 5",
		"defs.yaml:16:12: exchanges[2].name: name must not be empty",
		"defs.yaml:17:39: exchanges[3].durable: expected a boolean, got 1",
		`defs.yaml:19:14: bindings[0].source: the default exchange "" cannot be bound`,
		`defs.yaml:19:52: bindings[0].destination-type: destination-type "stream" is not one of queue, exchange`,
		"defs.yaml:20:30: bindings[1].destination: expected a string, got a list",
		`defs.yaml:22:24: policies[0].pattern: pattern "[a": glob: syntax error at 2: unexpected end of input`,
		"defs.yaml:22:57: policies[0].definition.max-priority: max-priority 0 is below the minimum of 1",
		`defs.yaml:22:70: policies[0].definition.overflow: overflow "drop" is not one of drop-head, reject-publish, reject-publish-dlx`,
		"defs.yaml:22:89: policies[0].definition.message-ttl: message-ttl -1 is below the minimum of 0",
		"defs.yaml:23:81: policies[1].definition.alternate-exchange: alternate-exchange applies to exchanges, but the policy applies to queues",
		"defs.yaml:24:76: policies[2].definition.max-length: max-length applies to queues, but the policy applies to exchanges",
		"defs.yaml:25:42: policies[3].definition: definition must set at least one key",
		"defs.yaml:26:55: policies[4].definition.max-length: expected an integer, got 10.5",
		"defs.yaml:26:70: policies[4].definition.expires: expires 0 is below the minimum of 1",
		`defs.yaml:28:5: users[0]: missing required key "password-hash"`,
		`defs.yaml:28:17: users[0].password: plain-text passwords are not allowed; put the output of "warren passwd" in password-hash`,
		"defs.yaml:29:32: users[1].password-hash: password-hash is not a rabbit_password_hashing_sha256 hash (expected base64 of 36 bytes)",
		`defs.yaml:30:104: users[2].hashing-algorithm: hashing-algorithm "bcrypt" is not one of rabbit_password_hashing_sha256, rabbit_password_hashing_sha512, rabbit_password_hashing_md5`,
		`defs.yaml:30:118: users[2].tags: expected a list, got "monitoring"`,
		"defs.yaml:32:28: permissions[0].configure: pattern \"{a\": glob: syntax error at 2: unclosed `{`",
		"defs.yaml:32:41: permissions[0].vhost: expected a string, got a mapping",
		"defs.yaml:33:9: vhosts: expected a list, got a mapping",
		`defs.yaml:34:8: prune: expected a boolean, got "maybe"`,
	)
}

func TestAnchorsMergeKeysAndRepeatedKeys(t *testing.T) {
	_, err := ParseDefinitions("defs.yaml", []byte(`
x-common: &common {vhost: /, durable: false, arguments: {x-max-length: 10}}
queues:
  - {<<: *common, name: a}
  - <<: *common
    name: b
    durable: true
`))
	// x-common is not a definitions key: anchors live inside known keys only.
	wantProblems(t, err, `defs.yaml:2:1: unknown key "x-common"; expected one of: vhosts, users, permissions, topic-permissions, exchanges, queues, bindings, policies, prune`)
	defs, err := ParseDefinitions("defs.yaml", []byte(`
queues:
  - &a {name: a, durable: false, arguments: {x-max-length: 10}}
  - {<<: *a, name: b}
  - <<: *a
    name: c
    durable: true
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Queue{
		{Pos: Pos{File: "defs.yaml", Line: 3, Col: 5, Item: "queues[0]"}, Vhost: "/", Name: "a", Arguments: map[string]any{"x-max-length": int64(10)}},
		{Pos: Pos{File: "defs.yaml", Line: 4, Col: 5, Item: "queues[1]"}, Vhost: "/", Name: "b", Arguments: map[string]any{"x-max-length": int64(10)}},
		{Pos: Pos{File: "defs.yaml", Line: 5, Col: 5, Item: "queues[2]"}, Vhost: "/", Name: "c", Durable: true, Arguments: map[string]any{"x-max-length": int64(10)}},
	}
	if !reflect.DeepEqual(defs.Queues, want) {
		t.Errorf("got  %+v\nwant %+v", defs.Queues, want)
	}
	_, err = ParseDefinitions("defs.yaml", []byte("queues:\n  - name: a\n    durable: true\n    name: b\n"))
	wantProblems(t, err, `defs.yaml:4:5: queues[0].name: key "name" is already set at defs.yaml:2:5`)
}
