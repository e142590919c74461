package configs

import (
	"reflect"
	"strings"
	"testing"
)

func i64(v int64) *int64 { return &v }

// Topic permissions and limits are read from a definitions file, written back by WriteYAML
// the same, and checked against the users and vhosts defined.
func TestTopicPermissionsAndLimitsInYAML(t *testing.T) {
	const text = `
vhosts:
  - {name: /shop, limits: {max-connections: 10, max-queues: 0}}
users:
  - {name: app, password-hash: "", limits: {max-connections: -1, max-channels: 5}}
permissions:
  - {user: app, vhost: /shop, configure: "*", write: "*", read: "*"}
topic-permissions:
  - {user: app, vhost: /shop, exchange: events, write: "^{username}\\.", read: ""}
`
	defs, err := ParseDefinitions("defs.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := defs.Validate(); err != nil {
		t.Fatal(err)
	}
	want := &Definitions{
		Vhosts:           []Vhost{{Name: "/shop", Limits: VhostLimits{MaxConnections: i64(10), MaxQueues: i64(0)}}},
		Users:            []User{{Name: "app", HashingAlgorithm: sha256Algorithm, Limits: UserLimits{MaxConnections: i64(-1), MaxChannels: i64(5)}}},
		Permissions:      []Permission{{User: "app", Vhost: "/shop", Configure: "*", Write: "*", Read: "*"}},
		TopicPermissions: []TopicPermission{{User: "app", Vhost: "/shop", Exchange: "events", Write: `^{username}\.`}},
	}
	if got := withoutPos(defs); !reflect.DeepEqual(got, want) {
		t.Fatalf("parsed %+v\nwant %+v", got, want)
	}
	back, out := roundTrip(t, defs)
	if got := withoutPos(back); !reflect.DeepEqual(got, want) {
		t.Errorf("written and loaded back as %+v\n%s", got, out)
	}
	for _, part := range []string{"topic-permissions:", "max-channels: 5", "max-queues: 0"} {
		if !strings.Contains(out, part) {
			t.Errorf("WriteYAML output lacks %q:\n%s", part, out)
		}
	}

	_, err = ParseDefinitions("bad.yaml", []byte(`
users:
  - {name: app, password-hash: "", limits: {max-queues: 1, max-channels: x}}
topic-permissions:
  - {user: app, exchange: events, write: "(", colour: red}
  - {exchange: events}
`))
	wantProblems(t, err,
		`bad.yaml:3:45: users[0].limits: unknown key "max-queues"; expected one of: max-connections, max-channels`,
		`bad.yaml:3:74: users[0].limits.max-channels: expected an integer, got "x"`,
		"bad.yaml:5:42: topic-permissions[0].write: invalid regular expression \"(\": error parsing regexp: missing closing ): `(`",
		`bad.yaml:5:47: topic-permissions[0]: unknown key "colour"; expected one of: user, vhost, exchange, write, read`,
		`bad.yaml:6:5: topic-permissions[1]: missing required key "user"`,
	)

	dup := &Definitions{
		Users: []User{{Name: "app", HashingAlgorithm: sha256Algorithm}},
		TopicPermissions: []TopicPermission{{User: "app", Vhost: "/", Exchange: "x"}, {User: "app", Vhost: "/", Exchange: "x"},
			{User: "nobody", Vhost: "/nowhere", Exchange: "x"}},
	}
	wantProblems(t, dup.Validate(),
		`topic permission for user "app" on exchange "x" in vhost "/" is already defined at `,
		`topic permission for unknown user "nobody"`,
		`vhost "/nowhere" is not defined`,
	)
}

// RabbitMQ's export carries topic permissions, user limits and vhost limits (as runtime
// parameters of the vhost-limits component); all are imported.
func TestImportRabbitMQTopicPermissionsAndLimits(t *testing.T) {
	defs, err := ImportRabbitMQ("defs.json", []byte(`{
  "users": [{"name": "u", "password_hash": "", "tags": "", "limits": {"max-connections": 2}}],
  "vhosts": [{"name": "/"}, {"name": "other"}],
  "topic_permissions": [{"user": "u", "vhost": "/", "exchange": "amq.topic", "write": "^a", "read": ".*"}],
  "parameters": [
    {"vhost": "/", "component": "vhost-limits", "name": "limits", "value": {"max-queues": 3}},
    {"vhost": "third", "component": "vhost-limits", "name": "limits", "value": {"max-connections": 1}}
  ]
}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Definitions{
		Users:            []User{{Name: "u", HashingAlgorithm: sha256Algorithm, Limits: UserLimits{MaxConnections: i64(2)}}},
		Vhosts:           []Vhost{{Name: "/", Limits: VhostLimits{MaxQueues: i64(3)}}, {Name: "other"}, {Name: "third", Limits: VhostLimits{MaxConnections: i64(1)}}},
		TopicPermissions: []TopicPermission{{User: "u", Vhost: "/", Exchange: "amq.topic", Write: "^a", Read: ".*"}},
	}
	if got := withoutPos(defs); !reflect.DeepEqual(got, want) {
		t.Errorf("imported %+v\nwant %+v", got, want)
	}
}
