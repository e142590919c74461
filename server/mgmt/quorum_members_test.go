package mgmt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/mgmt"
	"github.com/warrenmq/warren/server/servertest"
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

// memberNode is one in-process member of a three-node cluster with its management API.
type memberNode struct {
	name string
	api  string
	amqp string
	srv  *server.Server
}

// memberCluster starts three brokers as one cluster, each with its management API on an
// httptest server, and waits for a metadata leader.
func memberCluster(t *testing.T) []*memberNode {
	t.Helper()
	var out []*memberNode
	members := servertest.Cluster(t, "n1", "n2", "n3")
	for _, cm := range members {
		n := cm.Node
		ctx, cancel := context.WithCancel(context.Background())
		id := mgmt.Identity{Node: cm.Name, Members: cm.Srv.ClusterMembership(), Membership: func() (cluster.Status, bool) { return n.Status(), true }}
		hs := httptest.NewServer(mgmt.Handler(ctx, cm.Srv, id, zerolog.Nop()))
		t.Cleanup(func() { hs.Close(); cancel() })
		out = append(out, &memberNode{name: cm.Name, api: hs.URL, amqp: cm.Addr, srv: cm.Srv})
	}
	waitFor(t, "a metadata leader", func() (bool, string) {
		l := members[0].Node.Status().Leader
		return l != "", "none"
	})
	return out
}

// memberWait is how long a change may take to show on every node.
const memberWait = 30 * time.Second

// waitFor polls cond until it holds, failing the test after memberWait with cond's last
// description of what it saw.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(memberWait)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last saw %s", memberWait, what, saw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// queueView is what GET /api/queues/{vhost}/{name} says of a queue on one node.
type queueView struct {
	Members  []string `json:"members"`
	Leader   string   `json:"leader"`
	Messages *int     `json:"messages"`
}

func viewQueue(t *testing.T, n *memberNode, name string) (queueView, int) {
	t.Helper()
	code, _, body := call(t, "GET", n.api+"/api/queues/%2F/"+name, "guest", "guest")
	var v queueView
	if code == 200 {
		v = decode[queueView](t, body)
	}
	slices.Sort(v.Members)
	return v, code
}

// waitMembers waits until every node lists want (sorted) as the queue's members.
func waitMembers(t *testing.T, nodes []*memberNode, queue string, want ...string) {
	t.Helper()
	slices.Sort(want)
	waitFor(t, fmt.Sprintf("every node to list %s's members as %v", queue, want), func() (bool, string) {
		var saw []string
		for _, n := range nodes {
			v, code := viewQueue(t, n, queue)
			saw = append(saw, fmt.Sprintf("%s: %d %v", n.name, code, v.Members))
			if code != 200 || !slices.Equal(v.Members, want) {
				return false, strings.Join(saw, "; ")
			}
		}
		return true, ""
	})
}

func memberBody(node string) string { return `{"node":"` + node + `"}` }

func amqpChannel(t *testing.T, addr string) *amqp.Channel { return servertest.Channel(t, addr) }

// TestQuorumMembersOnCluster: on a three-node cluster, a quorum queue declared on two nodes
// gains the third through the API (every node lists three members and the new member holds
// the messages published before), loses one (every node lists two, and a client of the node
// that left still consumes every message, forwarded); impossible changes are refused with
// RabbitMQ's status codes; grow adds a node to the queues a pattern picks only, and shrink
// takes it out of every queue again.
func TestQuorumMembersOnCluster(t *testing.T) {
	nodes := memberCluster(t)
	byName := map[string]*memberNode{}
	for _, n := range nodes {
		byName[n.name] = n
	}
	n1 := nodes[0]
	ch := amqpChannel(t, n1.amqp)
	declare := func(name string, size int) []string {
		t.Helper()
		args := amqp.Table{"x-queue-type": "quorum", "x-quorum-initial-group-size": size}
		if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
			t.Fatalf("declaring %s: %v", name, err)
		}
		var members []string
		waitFor(t, "every node to agree on "+name+"'s members and leader", func() (bool, string) {
			var saw []string
			first, _ := viewQueue(t, n1, name)
			members = first.Members
			for _, n := range nodes {
				v, code := viewQueue(t, n, name)
				saw = append(saw, fmt.Sprintf("%s: %d %+v", n.name, code, v))
				if code != 200 || len(v.Members) != size || byName[v.Leader] == nil || v.Leader != first.Leader {
					return false, strings.Join(saw, "; ")
				}
			}
			return true, ""
		})
		return members
	}
	members := declare("q", 2)
	var third string
	for _, n := range nodes {
		if !slices.Contains(members, n.name) {
			third = n.name
		}
	}
	// Published through the queue's leader: a follower may still forward to the placeholder
	// holder "(electing)" (and nack) for a moment after every node names the leader.
	qv, _ := viewQueue(t, n1, "q")
	pch := amqpChannel(t, byName[qv.Leader].amqp)
	if err := pch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	const published = 5
	for i := range published {
		dc, err := pch.PublishWithDeferredConfirm("", "q", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: fmt.Appendf(nil, "m%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(t.Context()); err != nil || !ok {
			t.Fatalf("message %d not confirmed: %v %v", i, ok, err)
		}
	}

	// Add the third node: every node lists three members, and the new member holds the messages.
	want(t, "POST", n1.api+"/api/queues/quorum/%2F/q/replicas/add", "guest", memberBody(third), 204, "")
	waitMembers(t, nodes, "q", "n1", "n2", "n3")
	waitFor(t, third+" to hold q's messages", func() (bool, string) {
		v, _ := viewQueue(t, byName[third], "q")
		return v.Messages != nil && *v.Messages == published, fmt.Sprintf("%+v", v)
	})

	// Delete a member that does not lead: two members everywhere, the messages still there.
	var gone string
	waitFor(t, "q's leader", func() (bool, string) {
		v, _ := viewQueue(t, n1, "q")
		for _, m := range v.Members {
			if v.Leader != "" && m != v.Leader {
				gone = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", v)
	})
	var kept []string
	for _, n := range nodes {
		if n.name != gone {
			kept = append(kept, n.name)
		}
	}
	want(t, "DELETE", byName[gone].api+"/api/queues/quorum/%2F/q/replicas/delete", "guest", memberBody(gone), 202, "")
	waitMembers(t, nodes, "q", kept...)
	gch := amqpChannel(t, byName[gone].amqp)
	deliveries, err := gch.Consume("q", "", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consuming q through %s, no longer a member: %v", gone, err)
	}
	for i := range published {
		select {
		case d := <-deliveries:
			if string(d.Body) != fmt.Sprintf("m%d", i) {
				t.Fatalf("message %d through %s: %q", i, gone, d.Body)
			}
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(memberWait):
			t.Fatalf("through %s, %d of %d messages arrived", gone, i, published)
		}
	}

	// Impossible changes.
	if _, err := ch.QueueDeclare("classic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	solo := declare("solo", 1)
	acc, err := accessWithManager()
	if err != nil {
		t.Fatal(err)
	}
	n1.srv.SetAccess(acc)
	for _, c := range []struct {
		method, path, user, body string
		status                   int
		kind                     string
	}{
		{"POST", "/api/queues/quorum/%2F/q/replicas/add", "guest", memberBody("n9"), 404, "not_found"},
		{"POST", "/api/queues/quorum/%2F/nosuch/replicas/add", "guest", memberBody(gone), 404, "not_found"},
		{"POST", "/api/queues/quorum/%2F/classic/replicas/add", "guest", memberBody(gone), 400, "bad_request"},
		{"POST", "/api/queues/quorum/%2F/q/replicas/add", "guest", memberBody(kept[0]), 400, "bad_request"},
		{"DELETE", "/api/queues/quorum/%2F/q/replicas/delete", "guest", memberBody(gone), 400, "bad_request"},
		{"DELETE", "/api/queues/quorum/%2F/solo/replicas/delete", "guest", memberBody(solo[0]), 400, "bad_request"},
		{"POST", "/api/queues/quorum/%2F/q/replicas/add", "mgr", memberBody(gone), 401, "not_authorised"},
		{"POST", "/api/queues/quorum/%2F/q/replicas/add", "guest", `{"name":"n2"}`, 400, "bad_request"},
		{"POST", "/api/queues/quorum/replicas/on/n9/grow", "guest", `{"strategy":"all"}`, 404, "not_found"},
		{"POST", "/api/queues/quorum/replicas/on/n1/grow", "guest", `{"strategy":"most"}`, 400, "bad_request"},
	} {
		code, _, out := do(t, c.method, n1.api+c.path, c.user, c.body)
		var e struct{ Error, Reason string }
		if code != c.status || json.Unmarshal(out, &e) != nil || e.Error != c.kind || e.Reason == "" {
			t.Errorf("%s %s %s as %s: %d %s, want %d %s with a reason", c.method, c.path, c.body, c.user, code, out, c.status, c.kind)
		}
	}
	waitMembers(t, nodes, "q", kept...)
	waitMembers(t, nodes, "solo", solo...)

	// Grow a node onto the one of two queues the pattern picks, then shrink it off everything.
	g1, g2 := declare("grow-1", 1), declare("grow-2", 1)
	var z string
	for _, n := range nodes {
		if n.name != g1[0] && n.name != g2[0] {
			z = n.name
		}
	}
	want(t, "POST", n1.api+"/api/queues/quorum/replicas/on/"+z+"/grow", "guest",
		`{"strategy":"all","vhost_pattern":".*","queue_pattern":"^grow-1$"}`, 204, "")
	waitMembers(t, nodes, "grow-1", g1[0], z)
	if v, _ := viewQueue(t, n1, "grow-2"); !slices.Equal(v.Members, g2) {
		t.Errorf("grow-2, which the pattern does not match, has members %v after the grow, want %v", v.Members, g2)
	}
	want(t, "DELETE", n1.api+"/api/queues/quorum/replicas/on/"+z+"/shrink", "guest", "", 202, "")
	waitMembers(t, nodes, "grow-1", g1[0])
	for _, q := range []string{"q", "solo", "grow-2"} {
		waitFor(t, fmt.Sprintf("%s to leave %s unless it is the last member", z, q), func() (bool, string) {
			v, code := viewQueue(t, n1, q)
			return code == 200 && len(v.Members) > 0 && (len(v.Members) == 1 || !slices.Contains(v.Members, z)), fmt.Sprintf("%d %v", code, v.Members)
		})
	}
}

// accessWithManager is the default access (guest, administrator, from loopback) with mgr, a
// management user who is not an administrator.
func accessWithManager() (*server.Access, error) {
	all, err := configs.CompilePattern("*")
	if err != nil {
		return nil, err
	}
	perms := server.Permissions{Configure: all, Write: all, Read: all}
	acc, err := server.NewAccess([]server.Account{account("guest", "administrator"), account("mgr", "management")},
		[]server.Grant{{User: "guest", Vhost: "/", Permissions: perms}, {User: "mgr", Vhost: "/", Permissions: perms}})
	if err != nil {
		return nil, errors.Join(errors.New("building the test's users"), err)
	}
	return acc, nil
}
