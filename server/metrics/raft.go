package metrics

import (
	"iter"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/cluster/quorum"
)

// Quorum queue replication: RabbitMQ's ra_metrics table, one series per quorum queue group
// this node is a member of (labelled vhost, queue; on /metrics summed over them, as
// rabbitmq_prometheus 3.10 does), and Warren's own per-member figures, which the leader of
// each group knows (labelled vhost, queue, member). RabbitMQ's
// raft_entry_commit_latency_seconds is not served: Warren does not time its entries.

const (
	tableRa = "ra_metrics"
	// tableRaMembers is Warren's own /metrics/detailed family: the warren_raft_member_*
	// metrics.
	tableRaMembers = "warren_raft_member_metrics"
)

var memberLabels = []string{"vhost", "queue", "member"}

// raftFamilies are RabbitMQ's ra_metrics, from each group's state on this node.
func raftFamilies() []objectFamily[server.QuorumGroupStatus] {
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	type st = server.QuorumGroupStatus
	return []objectFamily[st]{
		{"raft_term_total", "Current Raft term number", c, tableRa,
			func(s *st) float64 { return float64(s.Term) }},
		{"raft_log_snapshot_index", "Raft log snapshot index", g, tableRa,
			func(s *st) float64 { return float64(s.SnapshotIndex) }},
		{"raft_log_last_applied_index", "Raft log last applied index", g, tableRa,
			func(s *st) float64 { return float64(s.AppliedIndex) }},
		{"raft_log_commit_index", "Raft log commit index", g, tableRa,
			func(s *st) float64 { return float64(s.CommitIndex) }},
		{"raft_log_last_written_index", "Raft log last written index", g, tableRa,
			func(s *st) float64 { return float64(s.LastIndex) }},
	}
}

// memberFamilies are Warren's figures of each other member of a group this node leads.
func memberFamilies() []objectFamily[quorum.MemberStatus] {
	g := prometheus.GaugeValue
	type ms = quorum.MemberStatus
	return []objectFamily[ms]{
		{"warren_raft_member_lag", "Log entries a quorum queue member is behind its leader's last index, as the leader sees it", g, tableRaMembers,
			func(m *ms) float64 { return float64(m.Lag) }},
		{"warren_raft_member_match_index", "Last log index the leader knows a quorum queue member has", g, tableRaMembers,
			func(m *ms) float64 { return float64(m.MatchIndex) }},
		{"warren_raft_member_online", "1 while the leader heard from a quorum queue member within the heartbeat timeout", g, tableRaMembers,
			func(m *ms) float64 { return b2f(m.Online) }},
	}
}

// raftRows yields every group of this node, labelled vhost, queue.
func (s *snapshot) raftRows() iter.Seq2[[]string, *server.QuorumGroupStatus] {
	return func(yield func([]string, *server.QuorumGroupStatus) bool) {
		values := make([]string, 2)
		for i := range s.raft {
			values[0], values[1] = s.raft[i].Vhost, s.raft[i].Queue
			if !yield(values, &s.raft[i]) {
				return
			}
		}
	}
}

// memberRows yields the other members of every group this node leads, labelled vhost,
// queue, member. A follower does not know the other followers, so it has no rows.
func (s *snapshot) memberRows() iter.Seq2[[]string, *quorum.MemberStatus] {
	return func(yield func([]string, *quorum.MemberStatus) bool) {
		values := make([]string, 3)
		for i := range s.raft {
			g := &s.raft[i]
			if g.State != "Leader" {
				continue
			}
			values[0], values[1] = g.Vhost, g.Queue
			for j := range g.Members {
				m := &g.Members[j]
				if m.Leader || !m.Known {
					continue
				}
				values[2] = m.Name
				if !yield(values, m) {
					return
				}
			}
		}
	}
}

// raftTotals are /metrics' figures of the quorum queue groups: RabbitMQ's ra_metrics summed
// over the groups, and Warren's worst member.
type raftTotals struct {
	sums           []float64 // by raftFamilies' order
	maxLag         float64
	membersOffline float64
}

func sumRaft(groups []server.QuorumGroupStatus) raftTotals {
	fams := raftFamilies()
	t := raftTotals{sums: make([]float64, len(fams))}
	for i := range groups {
		g := &groups[i]
		for j, f := range fams {
			t.sums[j] += f.value(g)
		}
		if g.State != "Leader" {
			continue
		}
		for _, m := range g.Members {
			if m.Leader || !m.Known {
				continue
			}
			t.maxLag = max(t.maxLag, float64(m.Lag))
			if !m.Online {
				t.membersOffline++
			}
		}
	}
	return t
}

// Warren's /metrics families of the quorum queue groups.
const (
	maxLagName  = "warren_raft_member_lag_max"
	maxLagHelp  = "Largest number of log entries a quorum queue member is behind its leader, over the queues this node leads"
	offlineName = "warren_raft_members_offline"
	offlineHelp = "Members of the quorum queues this node leads that the leader has not heard from within the heartbeat timeout"
)
