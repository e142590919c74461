package mgmt_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/mgmt"
)

// memberSource is a broker whose quorum member changes are recorded and answered with err
// (and results, for grow and shrink) instead of being made.
type memberSource struct {
	*server.Server
	mu      sync.Mutex
	calls   []string
	err     error
	results []server.QuorumMemberResult
}

func (m *memberSource) record(call string, args ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, call+"("+strings.Join(args, ",")+")")
	return m.err
}

func (m *memberSource) AddQuorumMember(vhost, queue, node string) error {
	return m.record("add", vhost, queue, node)
}

func (m *memberSource) DeleteQuorumMember(vhost, queue, node string) error {
	return m.record("delete", vhost, queue, node)
}

func (m *memberSource) GrowQuorumQueues(node, vhostPattern, queuePattern, strategy string) ([]server.QuorumMemberResult, error) {
	err := m.record("grow", node, vhostPattern, queuePattern, strategy)
	return m.results, err
}

func (m *memberSource) ShrinkQuorumQueues(node string) ([]server.QuorumMemberResult, error) {
	err := m.record("shrink", node)
	return m.results, err
}

func (m *memberSource) set(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err, m.calls = err, nil
}

func (m *memberSource) took() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.calls...)
}

// syncBuffer is a log destination the handler's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestQuorumMemberRequests: the four replica endpoints pass the path's and body's vhost,
// queue, node, patterns and strategy to the broker and answer with RabbitMQ's status codes
// (204 add and grow, 202 delete and shrink); a bad body, a user who is not an administrator,
// a missing queue or node, an impossible change and a lost quorum each get their status and
// RabbitMQ's error body; a grow's per-queue failures are logged.
func TestQuorumMemberRequests(t *testing.T) {
	b := startBroker(t)
	src := &memberSource{Server: b.srv}
	var logBuf syncBuffer
	hs := httptest.NewServer(mgmt.Handler(t.Context(), src, mgmt.Identity{Node: "warren@test"}, zerolog.New(&logBuf)))
	t.Cleanup(hs.Close)
	add := hs.URL + "/api/queues/quorum/v%2F1/a%20b/replicas/add"
	del := hs.URL + "/api/queues/quorum/v%2F1/a%20b/replicas/delete"
	grow := hs.URL + "/api/queues/quorum/replicas/on/n4/grow"
	shrink := hs.URL + "/api/queues/quorum/replicas/on/n4/shrink"

	for _, c := range []struct {
		method, url, user, body string
		status                  int
		reason                  string
		call                    string
	}{
		{"POST", add, "guest", `{"node":"n2"}`, 204, "", "add(v/1,a b,n2)"},
		{"DELETE", del, "guest", `{"node":"n2"}`, 202, "", "delete(v/1,a b,n2)"},
		{"POST", grow, "guest", `{"strategy":"even","vhost_pattern":"^v","queue_pattern":"qq.24"}`, 204, "", "grow(n4,^v,qq.24,even)"},
		{"POST", grow, "guest", `{"strategy":"all"}`, 204, "", "grow(n4,,,all)"},
		{"DELETE", shrink, "guest", "", 202, "", "shrink(n4)"},
		{"POST", add, "mgr", `{"node":"n2"}`, 401, "Not administrator user", ""},
		{"DELETE", shrink, "mgr", "", 401, "Not administrator user", ""},
		{"POST", add, "guest", `{}`, 400, "[{key_missing,node}]", ""},
		{"POST", add, "guest", ``, 400, "[{key_missing,node}]", ""},
		{"POST", add, "guest", `[1]`, 400, "not_json", ""},
		{"POST", add, "guest", `"n2"`, 400, "invalid payload: the request body JSON-decoded to a string. Is the input doubly-JSON-encoded?", ""},
		{"DELETE", del, "guest", `{"node":""}`, 400, "node must name a cluster member", ""},
		{"POST", grow, "guest", `{"vhost_pattern":".*"}`, 400, "[{key_missing,strategy}]", ""},
	} {
		src.set(nil)
		want(t, c.method, c.url, c.user, c.body, c.status, c.reason)
		if got := src.took(); (c.call == "" && len(got) != 0) || (c.call != "" && !slices.Equal(got, []string{c.call})) {
			t.Errorf("%s %s %s as %s: the broker was asked %v, want %q", c.method, c.url, c.body, c.user, got, c.call)
		}
	}
	for _, u := range []string{add, del, grow, shrink} {
		if code, _, _ := do(t, "GET", u, "guest", ""); code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %d, want 405", u, code)
		}
	}

	noQueue := amqpwire.NewChannelError(amqpwire.CodeNotFound, 50, 10, "no queue 'a b' in vhost 'v/1'")
	noQuorum := &server.NoQuorumError{ConnectionError: amqpwire.NewConnectionError(amqpwire.CodeInternalError, 0, 0,
		"the cluster has no leader")}
	for _, c := range []struct {
		err    error
		status int
		kind   string
		reason string
	}{
		{fmt.Errorf("add n9: %w", server.ErrNoSuchNode), 404, "not_found", "add n9: no such cluster member"},
		{fmt.Errorf("add: %w", noQueue), 404, "not_found", "no queue 'a b' in vhost 'v/1'"},
		{server.ErrNotClustered, 400, "bad_request", "this node runs alone (no cluster-peers)"},
		{&server.QuorumMemberError{Reason: "queue 'a b' in vhost 'v/1' is not a quorum queue"}, 400, "bad_request", "queue 'a b' in vhost 'v/1' is not a quorum queue"},
		{noQuorum, 503, "no_quorum", "INTERNAL_ERROR - the cluster has no leader"},
		{fmt.Errorf("add: %w", cluster.ErrStarting), 503, "service_unavailable", "add: cluster: the node is starting"},
	} {
		src.set(c.err)
		for _, r := range []struct{ method, url, body string }{
			{"POST", add, `{"node":"n9"}`}, {"DELETE", del, `{"node":"n9"}`},
			{"POST", grow, `{"strategy":"all"}`}, {"DELETE", shrink, ""},
		} {
			code, _, out := do(t, r.method, r.url, "guest", r.body)
			var e struct{ Error, Reason string }
			if code != c.status || json.Unmarshal(out, &e) != nil || e.Error != c.kind || e.Reason != c.reason {
				t.Errorf("%s %s when the broker says %v: %d %s, want %d {%q, %q}", r.method, r.url, c.err, code, out, c.status, c.kind, c.reason)
			}
		}
	}

	src.set(nil)
	src.results = []server.QuorumMemberResult{{Vhost: "/", Name: "qa", Size: 3}, {Vhost: "/", Name: "qb", Size: 1, Error: "n4 is already a member"}}
	want(t, "POST", grow, "guest", `{"strategy":"all","queue_pattern":"^q"}`, 204, "")
	logged := logBuf.String()
	for _, w := range []string{`"reason":"n4 is already a member"`, `"queue":"qb"`, `"changed":1`, `"failed":1`, `"queue_pattern":"^q"`} {
		if !strings.Contains(logged, w) {
			t.Errorf("after a grow with one failed queue the log does not contain %s:\n%s", w, logged)
		}
	}
	if !strings.Contains(logged, `"status":404`) || !strings.Contains(logged, "management request refused") {
		t.Errorf("refused member changes are not logged:\n%s", logged)
	}
}
