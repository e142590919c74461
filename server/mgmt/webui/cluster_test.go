package webui_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/mgmt"
	"github.com/warrenmq/warren/server/servertest"
)

// clusterBroker is one in-process member of a three-node cluster, with its management API
// and UI.
type clusterBroker struct {
	*broker
	name string
	node *cluster.Node
	stop func()
}

// newCluster starts three brokers (servertest.Cluster), each with its management listener;
// they stop when the test ends.
func newCluster(t *testing.T, names ...string) []*clusterBroker {
	t.Helper()
	if len(names) == 0 {
		names = []string{"n1", "n2", "n3"}
	}
	var out []*clusterBroker
	for _, cm := range servertest.Cluster(t, names...) {
		out = append(out, withManagement(t, cm))
	}
	return out
}

// withManagement serves cm's management API and UI on a loopback port.
func withManagement(t *testing.T, cm *servertest.ClusterMember) *clusterBroker {
	t.Helper()
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := cm.Node
	id := mgmt.Identity{Node: cm.Name, Listen: hln.Addr().String(), Members: n,
		Membership: func() (cluster.Status, bool) { return n.Status(), true }}
	hs := &http.Server{Handler: mgmt.Handler(ctx, cm.Srv, id, zerolog.Nop()), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(hln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			if err := hs.Shutdown(sctx); err != nil {
				t.Errorf("%s: stopping the management listener: %v", cm.Name, err)
			}
			cancel()
			cm.Stop()
		})
	}
	t.Cleanup(stop)
	b := &broker{amqpURL: servertest.URL(cm.Addr), addr: cm.Addr,
		base: "http://" + hln.Addr().String(), srv: cm.Srv, api: "http://" + hln.Addr().String()}
	return &clusterBroker{broker: b, name: cm.Name, node: n, stop: stop}
}

// The pages of a cluster: the overview shows the members and the metadata leader; the queues
// page adds the Node column, with a quorum queue's members, its leader starred and each
// online; the queue page names the leader and lists the members with their role, state and,
// on the leader's page, how far behind each is. When a member stops, the leader's pages show
// it offline; taken out of the queue and added back while down, it is shown as a learner.
func TestClusterPages(t *testing.T) {
	nodes := newCluster(t)
	byName := map[string]*clusterBroker{}
	for _, n := range nodes {
		byName[n.name] = n
	}
	var metaLeader string
	deadline := time.Now().Add(waitTimeout)
	for metaLeader == "" {
		if time.Now().After(deadline) {
			t.Fatal("no metadata leader")
		}
		metaLeader = nodes[0].node.Status().Leader
		time.Sleep(50 * time.Millisecond)
	}
	c := nodes[0].dial(t, "cluster-ui")
	ch := channel(t, c)
	if _, err := ch.QueueDeclare("qq", true, false, false, false, map[string]any{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("classic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	var leader *clusterBroker
	for leader == nil || len(mustStatus(t, leader).Online) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("qq's group has no leader that sees every member online")
		}
		if st, ok := nodes[0].srv.QuorumQueueStatus("/", "qq"); ok && st.Group != nil {
			leader = byName[st.Group.Leader]
		}
		time.Sleep(50 * time.Millisecond)
	}

	tb := newTab(t, leader.broker)
	tb.open("#/overview")
	tb.login("guest", "guest")
	tb.waitUntil("the cluster card with three members", `document.getElementById('cluster')?.hidden === false && document.querySelectorAll('#cluster tr[data-key]').length === 3`, "")
	if got := tb.text("#cluster-leader"); got != metaLeader {
		t.Errorf("the overview names %q as the cluster's leader, want %q", got, metaLeader)
	}
	tb.waitUntil("every member's state from /api/nodes", `[...document.querySelectorAll('#cluster tr[data-key]')].every((r) => r.cells[3].textContent === 'running')`, "")
	for _, n := range nodes {
		role := eval[string](tb, fmt.Sprintf(`(%s?.cells[2].textContent ?? '')`, row(n.name)))
		if want := map[bool]string{true: "leader", false: "follower"}[n.name == metaLeader]; role != want {
			t.Errorf("the overview says %s is %q, want %q", n.name, role, want)
		}
		if mem := eval[string](tb, fmt.Sprintf(`(%s?.cells[4].textContent ?? '')`, row(n.name))); !strings.Contains(mem, " of ") {
			t.Errorf("the overview shows %s's memory as %q, want its use of its limit", n.name, mem)
		}
	}
	tb.shot("overview")

	tb.open("#/queues")
	memberState := func(queueRow, member string) string {
		return fmt.Sprintf(`(%s?.querySelector('[data-member=%q]')?.dataset.state ?? '')`, queueRow, member)
	}
	tb.waitUntil("qq's members, all online, in the Node column", fmt.Sprintf(`%s === 'online' && %s === 'online' && %s === 'online'`,
		memberState(row("/|qq"), "n1"), memberState(row("/|qq"), "n2"), memberState(row("/|qq"), "n3")), "")
	if got := eval[string](tb, fmt.Sprintf(`%s.querySelector('.member.leader')?.dataset.member ?? ''`, row("/|qq"))); got != leader.name {
		t.Errorf("the queues page stars %q as qq's leader, want %s", got, leader.name)
	}
	if got := eval[string](tb, fmt.Sprintf(`%s.cells[2].textContent`, row("/|qq"))); got != "quorum" {
		t.Errorf("qq's type on the queues page: %q", got)
	}
	if got := eval[string](tb, fmt.Sprintf(`%s.cells[3].textContent`, row("/|classic"))); got == "" {
		t.Error("the classic queue has no node on the queues page")
	}
	tb.shot("queues")

	tb.open("#/queues/%2F/qq")
	tb.waitUntil("the replication card", `document.getElementById('queue-replication')?.hidden === false && document.querySelectorAll('#queue-replication tr[data-key]').length === 3`, "")
	var followers []string
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, fmt.Sprintf(`(%s?.cells[3].textContent ?? '') === '0'`, row(n.name)))
		}
	}
	tb.waitUntil("the followers caught up (0 entries behind)", followers[0]+" && "+followers[1], "")
	var down *clusterBroker
	for _, n := range nodes {
		r := row(n.name)
		role := eval[string](tb, fmt.Sprintf(`%s.cells[1].textContent`, r))
		state := eval[string](tb, fmt.Sprintf(`%s.cells[2].textContent`, r))
		behind := eval[string](tb, fmt.Sprintf(`%s.cells[3].textContent`, r))
		wantRole, wantBehind := "follower", "0"
		if n == leader {
			wantRole, wantBehind = "leader", ""
		} else if down == nil {
			down = n
		}
		if role != wantRole || state != "online" || behind != wantBehind {
			t.Errorf("qq's page: %s is %q, %q, %q behind; want %q, online, %q", n.name, role, state, behind, wantRole, wantBehind)
		}
	}
	if !eval[bool](tb, fmt.Sprintf(`[...document.querySelectorAll('#queue-info dt')].some((dt) => dt.textContent === 'Leader' && dt.nextElementSibling.textContent === %q)`, leader.name)) {
		t.Errorf("qq's details do not name %s as the leader", leader.name)
	}
	tb.shot("queue")

	// A follower stops: the leader's page shows it offline (the page polls every 5 s).
	down.stop()
	tb.waitUntil("the stopped member offline", fmt.Sprintf(`(%s?.cells[2].textContent ?? '') === 'offline'`, row(down.name)), "")
	tb.shot("queue-member-down")
	// The overview lists it as not running (from the leader's /api/nodes).
	tb.open("#/overview")
	tb.waitUntil("the stopped member not running on the overview", fmt.Sprintf(`(%s?.cells[3].textContent ?? '') === 'not running'`, row(down.name)), "")
	tb.shot("overview-member-down")
	tb.open("#/queues/%2F/qq")
	tb.waitUntil("the replication card again", `document.getElementById('queue-replication')?.hidden === false`, "")

	// Taken out of the queue and added back while it is down: the leader adds it as a
	// learner, which cannot catch up, so it stays one (it does not count toward the majority).
	if err := leader.srv.DeleteQuorumMember("/", "qq", down.name); err != nil {
		t.Fatal(err)
	}
	tb.waitUntil("the removed member gone from the page", fmt.Sprintf(`document.querySelectorAll('#queue-replication tr[data-key]').length === 2 && !%s`, row(down.name)), "")
	if err := leader.srv.AddQuorumMember("/", "qq", down.name); err != nil {
		t.Fatal(err)
	}
	tb.waitUntil("the member added back shown as a learner", fmt.Sprintf(`(%s?.cells[1].textContent ?? '') === 'learner (catching up)'`, row(down.name)), "")
	tb.shot("queue-member-learner")
}

// mustStatus is the queue qq's status on n.
func mustStatus(t *testing.T, n *clusterBroker) server.QuorumQueueStatus {
	t.Helper()
	st, _ := n.srv.QuorumQueueStatus("/", "qq")
	return st
}

// A node outside a smaller quorum queue's group (x-quorum-initial-group-size 2 of 3) cannot
// know its members' state: its queue page shows them unknown, not offline, while a member's
// page shows them online.
func TestClusterPagesOutsideGroup(t *testing.T) {
	nodes := newCluster(t)
	c := nodes[0].dial(t, "cluster-ui")
	ch := channel(t, c)
	if _, err := ch.QueueDeclare("qq2", true, false, false, false, map[string]any{"x-queue-type": "quorum", "x-quorum-initial-group-size": 2}); err != nil {
		t.Fatal(err)
	}
	var outside, member *clusterBroker
	var members []string
	deadline := time.Now().Add(waitTimeout)
	for outside == nil || member == nil {
		if time.Now().After(deadline) {
			t.Fatalf("qq2's two members do not both see each other online: %v", members)
		}
		time.Sleep(50 * time.Millisecond)
		outside, member = nil, nil
		for _, n := range nodes {
			st, ok := n.srv.QuorumQueueStatus("/", "qq2")
			if !ok {
				break
			}
			members = st.Members
			switch {
			case st.Group == nil:
				outside = n
			case len(st.Online) == 2 && st.Group.State == "Leader":
				member = n
			}
		}
	}
	if len(members) != 2 {
		t.Fatalf("qq2 has members %v, want 2", members)
	}
	state := func(name string) string {
		return fmt.Sprintf(`(%s?.cells[2].textContent ?? '')`, row(name))
	}

	tb := newTab(t, outside.broker)
	tb.open("#/queues/%2F/qq2")
	tb.login("guest", "guest")
	tb.waitUntil("qq2's members on a node outside its group", fmt.Sprintf(`%s !== '' && %s !== ''`, state(members[0]), state(members[1])), "")
	for _, m := range members {
		if got := eval[string](tb, state(m)); got != "unknown" {
			t.Errorf("on %s, outside qq2's group, member %s is %q, want unknown", outside.name, m, got)
		}
	}
	tb.shot("outside")

	tm := newTab(t, member.broker)
	tm.open("#/queues/%2F/qq2")
	tm.login("guest", "guest")
	tm.waitUntil("qq2's members online on its leader", fmt.Sprintf(`%s === 'online' && %s === 'online'`, state(members[0]), state(members[1])), "")
}
