package metrics_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/metrics"
	"github.com/warrenmq/warren/server/servertest"
)

// clusterMember is one in-process broker of a three-node cluster, with its Prometheus
// endpoints.
type clusterMember struct {
	name    string
	srv     *server.Server
	node    *cluster.Node
	amqp    string // AMQP URL
	metrics string // http://host:port
	stop    func()
}

// startCluster runs three brokers (servertest.Cluster), each with a metrics endpoint.
func startCluster(t *testing.T) []*clusterMember {
	t.Helper()
	var out []*clusterMember
	for _, cm := range servertest.Cluster(t, "n1", "n2", "n3") {
		hs := httptest.NewServer(metrics.Handler(cm.Srv, metrics.Identity{Node: "warren@" + cm.Name}, zerolog.Nop()))
		t.Cleanup(hs.Close)
		stop := cm.Stop
		out = append(out, &clusterMember{name: cm.Name, srv: cm.Srv, node: cm.Node, amqp: servertest.URL(cm.Addr), metrics: hs.URL,
			stop: func() { hs.Close(); stop() }})
	}
	return out
}

// TestRaftMetricsOfAQuorumQueue: on a three-node cluster, every member of a quorum queue's
// group serves RabbitMQ's ra_metrics for it (per object labelled vhost and queue, summed on
// /metrics, in /metrics/detailed?family=ra_metrics) and they agree once the publishes are
// replicated; the leader alone reports each other member's replication lag and whether it is
// online, and when a member stops, the leader's figures show it offline and falling behind
// by the entries written since.
func TestRaftMetricsOfAQuorumQueue(t *testing.T) {
	nodes := startCluster(t)
	byName := map[string]*clusterMember{}
	for _, n := range nodes {
		byName[n.name] = n
	}
	conn := must[*amqp.Connection](t)(amqp.Dial(nodes[0].amqp))
	ch := must[*amqp.Channel](t)(conn.Channel())
	must[amqp.Queue](t)(ch.QueueDeclare("qq", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}))
	_ = conn.Close()

	var leader *clusterMember
	servertest.Eventually(t, "a leader of qq's group known on every node", func() error {
		names := map[string]bool{}
		for _, n := range nodes {
			st, ok := n.srv.QuorumQueueStatus("/", "qq")
			if !ok || st.Group == nil || st.Group.Leader == "" {
				return fmt.Errorf("%s: %+v", n.name, st)
			}
			names[st.Group.Leader] = true
			leader = byName[st.Group.Leader]
		}
		if len(names) != 1 || leader == nil {
			return fmt.Errorf("leaders %v", names)
		}
		return nil
	})

	publish := func(n int) {
		t.Helper()
		conn := must[*amqp.Connection](t)(amqp.Dial(leader.amqp))
		defer conn.Close()
		ch := must[*amqp.Channel](t)(conn.Channel())
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		// The leader refuses (nacks) publishes until it has installed the queue's core, a
		// moment after its election: a nacked publish is tried again, for 45 s.
		deadline := time.Now().Add(45 * time.Second)
		for i := 0; i < n; {
			c, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", "qq", false, false,
				amqp.Publishing{Body: []byte(fmt.Sprint(i)), DeliveryMode: amqp.Persistent})
			if err != nil {
				t.Fatal(err)
			}
			ok, err := c.WaitContext(context.Background())
			switch {
			case err != nil:
				t.Fatalf("publish %d to the leader %s: %v", i, leader.name, err)
			case ok:
				i++
			case time.Now().After(deadline):
				t.Fatalf("publish %d to the leader %s: still nacked after 45 s", i, leader.name)
			default:
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	publish(5)

	const series = `{vhost="/",queue="qq"}`
	var commit float64
	servertest.Eventually(t, "every member's ra_metrics agree", func() error {
		commit = -1
		for _, n := range nodes {
			v, types := scrape(t, n.metrics+"/metrics/per-object")
			if types["rabbitmq_raft_term_total"] != "counter" || types["rabbitmq_raft_log_commit_index"] != "gauge" {
				return fmt.Errorf("%s: types %q, %q", n.name, types["rabbitmq_raft_term_total"], types["rabbitmq_raft_log_commit_index"])
			}
			c, ok := v["rabbitmq_raft_log_commit_index"+series]
			if !ok || c < 5 {
				return fmt.Errorf("%s: commit index %v (%v)", n.name, c, ok)
			}
			if v["rabbitmq_raft_term_total"+series] < 1 {
				return fmt.Errorf("%s: term %v", n.name, v["rabbitmq_raft_term_total"+series])
			}
			for _, name := range []string{"rabbitmq_raft_log_last_applied_index", "rabbitmq_raft_log_last_written_index"} {
				if v[name+series] != c {
					return fmt.Errorf("%s: %s %v, commit index %v", n.name, name, v[name+series], c)
				}
			}
			if _, ok := v["rabbitmq_raft_log_snapshot_index"+series]; !ok {
				return fmt.Errorf("%s: no snapshot index", n.name)
			}
			if commit >= 0 && c != commit {
				return fmt.Errorf("%s: commit index %v, another member's %v", n.name, c, commit)
			}
			commit = c
		}
		return nil
	})

	// One group per node: /metrics sums it to the same figure, and the detailed table has it.
	for _, n := range nodes {
		agg, _ := scrape(t, n.metrics+"/metrics")
		if agg["rabbitmq_raft_log_commit_index"] != commit {
			t.Errorf("%s: /metrics rabbitmq_raft_log_commit_index %v, per object %v", n.name, agg["rabbitmq_raft_log_commit_index"], commit)
		}
		det, _ := scrape(t, n.metrics+"/metrics/detailed?family=ra_metrics")
		if det["rabbitmq_detailed_raft_log_commit_index"+series] != commit {
			t.Errorf("%s: detailed commit index %v, want %v", n.name, det["rabbitmq_detailed_raft_log_commit_index"+series], commit)
		}
		if _, ok := det["rabbitmq_detailed_queue_messages"+series]; ok {
			t.Errorf("%s: family=ra_metrics served the queue table too", n.name)
		}
	}

	// The queue's depth is reported by the node that holds it, its leader, alone: summed over
	// the nodes (as RabbitMQ's dashboards do) it counts the 5 messages once.
	servertest.Eventually(t, "the queue's depth on its leader's node only", func() error {
		var sum float64
		for _, n := range nodes {
			agg, _ := scrape(t, n.metrics+"/metrics")
			sum += agg["rabbitmq_queue_messages"]
			po, _ := scrape(t, n.metrics+"/metrics/per-object")
			if v, ok := po["rabbitmq_queue_messages"+series]; ok != (n == leader) || (ok && v != 5) {
				return fmt.Errorf("%s (leader %s): per-object depth %v (listed %v)", n.name, leader.name, v, ok)
			}
		}
		if sum != 5 {
			return fmt.Errorf("rabbitmq_queue_messages summed over the nodes: %v, want 5", sum)
		}
		return nil
	})

	// The leader knows every other member; a follower knows none of them.
	member := func(metric, name string) string {
		return fmt.Sprintf(`%s{vhost="/",queue="qq",member=%q}`, metric, name)
	}
	var followers []*clusterMember
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	servertest.Eventually(t, "the leader sees both followers online and caught up", func() error {
		v, _ := scrape(t, leader.metrics+"/metrics/per-object")
		for _, f := range followers {
			if v[member("warren_raft_member_online", f.name)] != 1 || v[member("warren_raft_member_lag", f.name)] != 0 ||
				v[member("warren_raft_member_match_index", f.name)] != commit {
				return fmt.Errorf("%s: online %v, lag %v, match %v", f.name, v[member("warren_raft_member_online", f.name)],
					v[member("warren_raft_member_lag", f.name)], v[member("warren_raft_member_match_index", f.name)])
			}
		}
		return nil
	})
	for _, f := range followers {
		v, _ := scrape(t, f.metrics+"/metrics/per-object")
		for name := range v {
			if strings.HasPrefix(name, "warren_raft_member_") {
				t.Errorf("follower %s reports %s", f.name, name)
			}
		}
	}

	// A member stops: the leader shows it offline, and behind by what is written since.
	down := followers[0]
	down.stop()
	servertest.Eventually(t, "the leader sees the stopped member offline", func() error {
		agg, _ := scrape(t, leader.metrics+"/metrics")
		if agg["warren_raft_members_offline"] != 1 {
			return fmt.Errorf("warren_raft_members_offline %v", agg["warren_raft_members_offline"])
		}
		return nil
	})
	publish(10)
	servertest.Eventually(t, "the stopped member's lag grows", func() error {
		v, _ := scrape(t, leader.metrics+"/metrics/per-object")
		agg, _ := scrape(t, leader.metrics+"/metrics")
		lag := v[member("warren_raft_member_lag", down.name)]
		if v[member("warren_raft_member_online", down.name)] != 0 || lag < 10 || agg["warren_raft_member_lag_max"] != lag {
			return fmt.Errorf("online %v, lag %v, lag max %v", v[member("warren_raft_member_online", down.name)], lag, agg["warren_raft_member_lag_max"])
		}
		if up := followers[1]; v[member("warren_raft_member_lag", up.name)] != 0 {
			return fmt.Errorf("the running member %s lags %v", up.name, v[member("warren_raft_member_lag", up.name)])
		}
		return nil
	})
}
