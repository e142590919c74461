package server

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/vhost"
	"github.com/warrenmq/warren/store"
)

// reopen starts a broker on the store in dir, as a restart does.
func reopen(t *testing.T, dir string) *Server {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s := New(Config{Store: st})
	if err := s.Recover(); err != nil {
		t.Fatal(err)
	}
	return s
}

func userNames(s *Server) []string {
	var out []string
	for _, u := range s.Users() {
		out = append(out, u.Name)
	}
	return out
}

// Deleting the default user guest through the API lasts over a restart, as in RabbitMQ (whose
// first boot writes guest into its database): guest does not come back.
func TestDeletedDefaultUserStaysDeleted(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	if got := userNames(s); !slices.Equal(got, []string{"guest"}) {
		t.Fatalf("users = %v, want the default guest", got)
	}
	if _, err := s.PutUser("admin", UserChange{Password: ptr("pw"), Tags: []string{"administrator"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser("guest"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.access.p.Load().login("guest", "guest"); ok {
		t.Fatal("guest still logs in after its deletion")
	}
	if err := s.cfg.Store.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir)
	if got := userNames(s); !slices.Equal(got, []string{"admin"}) {
		t.Fatalf("users after a restart = %v, want only admin", got)
	}
	if _, ok := s.access.p.Load().login("admin", "pw"); !ok {
		t.Fatal("admin cannot log in after a restart")
	}
}

func ptr[T any](v T) *T { return &v }

// A reload that makes the files declare an object the API made hands it to the files: a later
// reload without it removes it, as for any object the files declared.
func TestReloadTakesOverAPIObjects(t *testing.T) {
	s := New(Config{})
	if _, err := s.PutUser("app", UserChange{Password: ptr("api-pw"), Tags: []string{}}); err != nil {
		t.Fatal(err)
	}
	hash, err := configs.HashPassword("file-pw", "")
	if err != nil {
		t.Fatal(err)
	}
	withApp := &configs.Definitions{Users: []configs.User{{Name: "app", PasswordHash: hash}}}
	if _, err := s.ApplyDefinitions(withApp); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.access.p.Load().login("app", "file-pw"); !ok {
		t.Fatal("the files' app does not log in with the files' password")
	}
	if u, _ := s.User("app"); !u.FromFiles {
		t.Error("app is not the files' after the reload")
	}
	if _, err := s.PutUser("app", UserChange{Password: ptr("other"), Tags: []string{}}); !isRefused(err) {
		t.Errorf("changing the files' user through the API: %v, want a refusal", err)
	}
	if _, err := s.ApplyDefinitions(&configs.Definitions{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.User("app"); ok {
		t.Error("app is still there after the files dropped it")
	}
	// guest, which the API's first change copied into the API layer, stays.
	if _, ok := s.User("guest"); !ok {
		t.Error("guest went with a reload")
	}
}

func isRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// Patterns are RabbitMQ's regular expressions, honoured through Warren's globs: common shapes
// are taken, others refused with a reason, invalid ones refused.
func TestPermissionPatterns(t *testing.T) {
	s := New(Config{})
	for _, re := range []string{".*", "^app\\.", "^(a|b)$", "", "^$", "orders"} {
		if _, err := s.PutPermission("/", "guest", re, re, re); err != nil {
			t.Errorf("pattern %q: %v", re, err)
		}
	}
	for _, re := range []string{"^[a-z]+$", "\\d", "(", "a+"} {
		if _, err := s.PutPermission("/", "guest", re, ".*", ".*"); !isRefused(err) {
			t.Errorf("pattern %q: %v, want a refusal", re, err)
		}
	}
	if _, err := s.PutPermission("/", "guest", "^app\\.", ".*", ".*"); err != nil {
		t.Fatal(err)
	}
	p := s.access.p.Load().permissions("guest", "/")
	if !p.Configure.Match("app.q") || p.Configure.Match("other.app.q") {
		t.Errorf("^app\\. became %q, which does not match as RabbitMQ would", p.Configure)
	}
	if got := s.Permissions(); len(got) != 1 || got[0].Configure != "^app\\." {
		t.Errorf("permissions = %+v, want the regex as given", got)
	}
}

// The drift report tells the files' objects from the API's and from what clients declared.
func TestDefinitionsDrift(t *testing.T) {
	s := New(Config{})
	files := &configs.Definitions{
		Queues:   []configs.Queue{{Vhost: "/", Name: "fq", Durable: true}},
		Policies: []configs.Policy{{Vhost: "/", Name: "fp", Pattern: "f*", ApplyTo: "all", Definition: configs.PolicyDefinition{MaxLength: ptr(int64(5))}}},
	}
	if _, err := s.ApplyDefinitions(files); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPolicy("/", "ap", PolicyChange{Pattern: "^a", Definition: map[string]any{"max-length": 1}}); err != nil {
		t.Fatal(err)
	}
	d, err := s.DefinitionsDrift()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.OnlyInFiles) != 0 || len(d.Different) != 0 {
		t.Errorf("drift right after applying the files: %+v", d)
	}
	if len(d.OnlyLive) == 0 || d.OnlyLive[0].Kind != "policy" || d.OnlyLive[0].Name != "ap" {
		t.Errorf("only live = %+v, want the API's policy ap", d.OnlyLive)
	}
	// The files change on disk: the queue's arguments differ, a new queue is missing live.
	changed := *files
	changed.Queues = []configs.Queue{{Vhost: "/", Name: "fq", Durable: true, Arguments: map[string]any{"x-max-length": 3}},
		{Vhost: "/", Name: "new", Durable: true}}
	s.SetDefinitionsLoader(func() (*configs.Definitions, error) { return &changed, nil })
	if d, err = s.DefinitionsDrift(); err != nil {
		t.Fatal(err)
	}
	if len(d.Different) != 1 || d.Different[0].Name != "fq" || len(d.OnlyInFiles) != 1 || d.OnlyInFiles[0].Name != "new" {
		t.Errorf("drift after the files changed: %+v", d)
	}
}

// An import is checked before it changes anything: a bad item later in the file leaves the
// users and vhosts before it unmade.
func TestImportIsCheckedFirst(t *testing.T) {
	for name, bad := range map[string]string{
		"policy key":    `"policies":[{"vhost":"/","name":"p","pattern":".*","definition":{"ha-mode":"all"}}]`,
		"pattern":       `"permissions":[{"user":"u","vhost":"v","configure":"[a-z]+","write":".*","read":".*"}]`,
		"user limits":   `"users":[{"name":"u2","password_hash":"","tags":"","limits":{"max-queues":1}}]`,
		"vhost limits":  `"parameters":[{"vhost":"v","component":"vhost-limits","name":"limits","value":{"max-connections":"x"}}]`,
		"binding":       `"bindings":[{"source":"amq.direct","vhost":"v","destination":"nowhere","destination_type":"queue","routing_key":"k","arguments":{}}]`,
		"parameters":    `"parameters":[{"vhost":"/","component":"shovel","name":"s","value":{}}]`,
		"password hash": `"users":[{"name":"u3","password_hash":"not base64!","tags":""}]`,
		"missing vhost": `"queues":[{"name":"q","vhost":"nope","durable":true,"auto_delete":false,"arguments":{}}]`,
	} {
		s := New(Config{})
		doc := `{"users":[{"name":"u","password_hash":"","tags":"management"}],"vhosts":[{"name":"v"}],` + bad + `}`
		if strings.Count(doc, `"users"`) > 1 {
			doc = `{"vhosts":[{"name":"v"}],` + bad + `}`
		}
		if err := s.ImportDefinitions([]byte(doc), "", "guest"); !isRefused(err) {
			t.Errorf("%s: import error %v, want a refusal", name, err)
		}
		if _, ok := s.User("u"); ok {
			t.Errorf("%s: the refused import made user u", name)
		}
		if s.vhost("v") != nil {
			t.Errorf("%s: the refused import made vhost v", name)
		}
	}
}

// A reload leaves the API's policies in force on the queues they match.
func TestReloadKeepsAPIPolicyApplied(t *testing.T) {
	s := New(Config{})
	if _, err := s.vhost("/").DeclareQueue(nil, vhost.QueueDecl{Name: "app.q", Durable: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPolicy("/", "ap", PolicyChange{Pattern: "^app\\.", Definition: map[string]any{"max-length": 1}}); err != nil {
		t.Fatal(err)
	}
	policyOf := func() string {
		for _, q := range s.vhost("/").Queues() {
			if q.Name == "app.q" {
				return q.Policy
			}
		}
		return "(no queue)"
	}
	if got := policyOf(); got != "ap" {
		t.Fatalf("policy of app.q = %q, want ap", got)
	}
	files := &configs.Definitions{Policies: []configs.Policy{{Vhost: "/", Name: "fp", Pattern: "other*", ApplyTo: "all",
		Definition: configs.PolicyDefinition{MaxLength: ptr(int64(5))}}}}
	for range 2 {
		if _, err := s.ApplyDefinitions(files); err != nil {
			t.Fatal(err)
		}
		if got := policyOf(); got != "ap" {
			t.Fatalf("policy of app.q after a reload = %q, want the API's ap", got)
		}
	}
}

// A deleted vhost does not come back at the next start: its durable queues, exchanges and
// bindings leave the store with it.
func TestDeletedVhostStaysDeleted(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	if _, err := s.PutVhost("shop", "", nil, "guest"); err != nil {
		t.Fatal(err)
	}
	v := s.vhost("shop")
	if err := v.DeclareExchange(exchange.Definition{Name: "orders", Kind: "topic", Durable: true}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := v.DeclareQueue(nil, vhost.QueueDecl{Name: "paid", Durable: true}); err != nil {
		t.Fatal(err)
	}
	if err := v.Bind(nil, binding.Binding{Source: "orders", Dest: binding.Destination{Kind: binding.DestQueue, Name: "paid"}, RoutingKey: "#"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVhost("shop"); err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Store.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir)
	if s.vhost("shop") != nil {
		t.Fatal("the deleted vhost came back after a restart")
	}
	if got := s.Permissions(); len(got) != 1 || got[0].Vhost != "/" {
		t.Errorf("permissions after a restart = %+v, want guest's on / only", got)
	}
	if err := s.DeleteVhost("/"); !isRefused(err) {
		t.Errorf("deleting /: %v, want a refusal", err)
	}
}

// Drift covers limits and topic permissions: the files' match the live broker after a
// reload, and a change of either in the files shows as different.
func TestDefinitionsDriftLimitsAndTopicPermissions(t *testing.T) {
	s := New(Config{})
	files := &configs.Definitions{
		Vhosts:           []configs.Vhost{{Name: "v", Limits: configs.VhostLimits{MaxQueues: ptr(int64(2))}}},
		Users:            []configs.User{{Name: "u", HashingAlgorithm: "rabbit_password_hashing_sha256", Limits: configs.UserLimits{MaxChannels: ptr(int64(3))}}},
		TopicPermissions: []configs.TopicPermission{{User: "u", Vhost: "v", Exchange: "x", Write: "^a", Read: ".*"}},
	}
	if _, err := s.ApplyDefinitions(files); err != nil {
		t.Fatal(err)
	}
	d, err := s.DefinitionsDrift()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.OnlyInFiles) != 0 || len(d.Different) != 0 || len(d.OnlyLive) != 0 {
		t.Errorf("drift right after applying the files: %+v", d)
	}
	changed := *files
	changed.Vhosts = []configs.Vhost{{Name: "v", Limits: configs.VhostLimits{MaxQueues: ptr(int64(4))}}}
	changed.TopicPermissions = []configs.TopicPermission{{User: "u", Vhost: "v", Exchange: "x", Write: "^b", Read: ".*"}}
	s.SetDefinitionsLoader(func() (*configs.Definitions, error) { return &changed, nil })
	if d, err = s.DefinitionsDrift(); err != nil {
		t.Fatal(err)
	}
	kinds := []string{}
	for _, it := range d.Different {
		kinds = append(kinds, it.Kind+" "+it.Name)
	}
	if !slices.Equal(kinds, []string{"topic-permission u on x", "vhost v"}) {
		t.Errorf("different = %v, want the topic permission and the vhost's limits", kinds)
	}
}
