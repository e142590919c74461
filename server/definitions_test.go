package server

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/queue"
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
	v := s.vhost("/")
	xr, err := v.exchange("x")
	if err != nil {
		t.Fatal(err)
	}
	var sc routeScratch
	var names []string
	v.mu.RLock()
	for _, q := range v.route(xr, []string{key}, nil, &sc) {
		names = append(names, q.name)
	}
	v.mu.RUnlock()
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
	s.vhost("/").queues["b"].q.Publish(&queue.Message{Body: []byte("keep me")}, nil)

	res, err := s.ApplyDefinitions(defsWith([2]string{"a", "k"}, [2]string{"c", "k"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := routed(t, s, "k"); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("after reload routed to %v, want a c", got)
	}
	v := s.vhost("/")
	if !v.hasQueue("b") || v.hasQueue("e") {
		t.Fatalf("queue b (1 message) should be kept and empty queue e deleted: b %v, e %v", v.hasQueue("b"), v.hasQueue("e"))
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
	if v.hasQueue("b") {
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
	if s.vhost("/").hasQueue("c") {
		t.Fatal("a refused reload created queue c")
	}
}
