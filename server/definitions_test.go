package server

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

func defsWith(bindings ...[2]string) *configs.Definitions {
	d := &configs.Definitions{
		Exchanges: []configs.Exchange{{Vhost: "/", Name: "x", Type: "direct", Durable: true}},
	}
	seen := map[string]bool{}
	for _, b := range bindings {
		if !seen[b[0]] {
			seen[b[0]] = true
			d.Queues = append(d.Queues, configs.Queue{Vhost: "/", Name: b[0], Durable: true})
		}
		d.Bindings = append(d.Bindings, configs.Binding{Vhost: "/", Source: "x", Destination: b[0],
			DestinationType: "queue", RoutingKey: b[1]})
	}
	return d
}

func routed(t *testing.T, s *Server, key string) []string {
	t.Helper()
	var names []string
	for _, b := range s.vhost("/").Bindings() {
		if b.Source == "x" && b.RoutingKey == key && b.Dest.Kind == binding.DestQueue {
			names = append(names, b.Dest.Name)
		}
	}
	slices.Sort(names)
	return names
}

// A reload is a diff: bindings no longer in the files go, new ones come, a queue dropped from
// the files is deleted only when empty or when prune says so.
func TestApplyDefinitionsDiff(t *testing.T) {
	s := New(Config{})
	if _, err := s.ApplyDefinitions(defsWith([2]string{"a", "k"}, [2]string{"b", "k"}, [2]string{"e", "k"})); err != nil {
		t.Fatal(err)
	}
	if got := routed(t, s, "k"); !slices.Equal(got, []string{"a", "b", "e"}) {
		t.Fatalf("routed to %v, want a b e", got)
	}
	v := s.vhost("/")
	dx, err := v.Exchange("")
	if err != nil {
		t.Fatal(err)
	}
	if routed, _ := v.Publish(dx, &queue.Message{Body: []byte("keep me")}, []string{"b"}, nil, &vhost.Scratch{}); !routed {
		t.Fatal("the message for queue b was not routed")
	}

	res, err := s.ApplyDefinitions(defsWith([2]string{"a", "k"}, [2]string{"c", "k"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := routed(t, s, "k"); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("after reload routed to %v, want a c", got)
	}
	if !v.HasQueue("b") || v.HasQueue("e") {
		t.Fatalf("queue b (1 message) should be kept and empty queue e deleted: b %v, e %v", v.HasQueue("b"), v.HasQueue("e"))
	}
	if len(res.Kept) != 1 || !strings.Contains(res.Kept[0], "queue b") {
		t.Fatalf("kept %v, want queue b", res.Kept)
	}

	pruned := defsWith([2]string{"a", "k"}, [2]string{"c", "k"})
	pruned.Prune = true
	pruned.Queues = append(pruned.Queues, configs.Queue{Vhost: "/", Name: "b", Durable: true})
	if _, err := s.ApplyDefinitions(pruned); err != nil {
		t.Fatal(err)
	}
	pruned = defsWith([2]string{"a", "k"}, [2]string{"c", "k"})
	pruned.Prune = true
	if _, err := s.ApplyDefinitions(pruned); err != nil {
		t.Fatal(err)
	}
	if v.HasQueue("b") {
		t.Fatal("with prune: true, queue b should be deleted though it holds a message")
	}
}

// Definitions the live broker cannot take are refused as a whole: nothing changes.
func TestApplyDefinitionsRefusedChangesNothing(t *testing.T) {
	s := New(Config{})
	if _, err := s.ApplyDefinitions(defsWith([2]string{"a", "k"})); err != nil {
		t.Fatal(err)
	}
	bad := defsWith([2]string{"a", "k"}, [2]string{"c", "k"})
	bad.Queues[1].Arguments = map[string]any{"x-max-length": "ten"}
	bad.Queues[1].Pos = configs.Pos{File: "defs.yaml", Line: 7, Col: 5}
	bad.Queues = append(bad.Queues, configs.Queue{Vhost: "/", Name: "a", Durable: false, Pos: configs.Pos{File: "defs.yaml", Line: 9, Col: 5}})
	_, err := s.ApplyDefinitions(bad)
	var el configs.ErrorList
	if !errors.As(err, &el) || len(el) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	want := []string{
		`defs.yaml:7:5: invalid arg 'x-max-length' for queue 'c' in vhost '/': "expected integer, got longstr"`,
		`defs.yaml:9:5: queue "a" in vhost "/" exists with other properties (inequivalent arg 'durable' for queue 'a' in vhost '/': received 'false' but current is 'true'); delete it or change the file`,
	}
	for i, e := range el {
		if e.Error() != want[i] {
			t.Errorf("error %d:\n got %s\nwant %s", i, e.Error(), want[i])
		}
	}
	if got := routed(t, s, "k"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("a refused reload changed routing: %v", got)
	}
	if s.vhost("/").HasQueue("c") {
		t.Fatal("a refused reload created queue c")
	}
}

// An export loads back into an empty broker as the same topology: exporting that broker gives
// the same text.
func TestExportLoadsBackUnchanged(t *testing.T) {
	s := New(Config{})
	d := defsWith([2]string{"a", "k"}, [2]string{"b", "j"})
	d.Vhosts = []configs.Vhost{{Name: "/shop", Description: "the shop"}}
	d.Queues[0].Arguments = map[string]any{"x-max-length": int64(10), "x-dead-letter-exchange": "x"}
	d.Exchanges = append(d.Exchanges, configs.Exchange{Vhost: "/shop", Name: "h", Type: "headers", Durable: true,
		Arguments: map[string]any{"alternate-exchange": "amq.fanout"}})
	d.Queues = append(d.Queues, configs.Queue{Vhost: "/shop", Name: "hq", Durable: false, AutoDelete: true})
	d.Bindings = append(d.Bindings, configs.Binding{Vhost: "/shop", Source: "h", Destination: "hq", DestinationType: "queue",
		Arguments: map[string]any{"x-match": "any", "n": int64(1), "f": 1.5, "ok": true}})
	hash, err := configs.HashPassword("pw", "")
	if err != nil {
		t.Fatal(err)
	}
	d.Users = []configs.User{{Name: "app", PasswordHash: hash, HashingAlgorithm: "rabbit_password_hashing_sha256", Tags: []string{"monitoring"}}}
	d.Permissions = []configs.Permission{{User: "app", Vhost: "/shop", Configure: "*", Write: "h*", Read: ""}}
	d.Policies = []configs.Policy{{Vhost: "/shop", Name: "p", Pattern: "h*", ApplyTo: "queues", Priority: 2,
		Definition: configs.PolicyDefinition{MaxLength: i64(5)}}}
	if _, err := s.ApplyDefinitions(d); err != nil {
		t.Fatal(err)
	}
	// A client-declared queue with a policy-given priority is exported without Warren's key.
	if _, err := s.vhost("/").DeclareQueue(nil, vhost.QueueDecl{Name: "client", Durable: true}); err != nil {
		t.Fatal(err)
	}
	export := func(s *Server) string {
		var b strings.Builder
		if err := s.ExportDefinitions().WriteYAML(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	first := export(s)
	dir := t.TempDir()
	path := dir + "/export.yaml"
	if err := os.WriteFile(path, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := configs.LoadDefinitions(path)
	if err != nil {
		t.Fatalf("the export does not load: %v\n%s", err, first)
	}
	s2 := New(Config{})
	if _, err := s2.ApplyDefinitions(loaded); err != nil {
		t.Fatal(err)
	}
	if second := export(s2); second != first {
		t.Fatalf("export after a load differs:\n--- first\n%s\n--- second\n%s", first, second)
	}
	for _, want := range []string{"name: client", "x-match: any", "description: the shop", "write: h*", "max-length: 5"} {
		if !strings.Contains(first, want) {
			t.Errorf("export lacks %q:\n%s", want, first)
		}
	}
}

func i64(n int64) *int64 { return &n }
