package server

import (
	"context"
	"time"

	"github.com/warrenmq/warren/server/cluster"
)

// Nodes that are down. A non-durable classic queue lives as long as its node runs
// (cluster.QueueRecord.Transient). When that node restarts, or leaves, its own node deletes
// its records; when it is down and stays down, the metadata group's leader does, as RabbitMQ
// deletes the non-durable queues of a node that went down: clients of the other nodes can
// then declare the name again and get a queue of their own, instead of one whose node is
// gone.
//
// "Down" is decided by the leader alone, so that nodes never race each other: its
// heartbeats to the member have failed for nodeDownAfter (cluster.Node.FailingPeers), and
// the member does not answer over the cluster transport either (asked for its node report,
// 2 s at most). A member that is only paused or cut off that long loses its non-durable
// queues too, when it applies the deletions, as it would in RabbitMQ.

// nodeDownAfter is how long the metadata leader fails to reach a member before it deletes
// the member's non-durable queues.
const nodeDownAfter = 10 * time.Second

// watchDownNodes runs on every node until n closes; it acts while this node leads.
func (s *Server) watchDownNodes(n *cluster.Node) {
	if !n.WaitStarted() {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	handled := map[string]time.Time{} // member -> the last contact already acted on
	for {
		select {
		case <-tick.C:
		case <-n.Done():
			return
		}
		failing := n.FailingPeers()
		for name := range handled {
			if _, ok := failing[name]; !ok {
				delete(handled, name) // reached again, or no longer leading
			}
		}
		for name, since := range failing {
			if time.Since(since) < s.downAfter || handled[name].Equal(since) {
				continue
			}
			var gone []cluster.QueueRecord
			for _, r := range n.QueueRecords() {
				if r.Transient && r.Owner == name {
					gone = append(gone, r)
				}
			}
			if len(gone) == 0 || s.answers(name) {
				continue
			}
			handled[name] = since
			s.log.Warn().Str("node", name).Dur("unreachable_for", time.Since(since).Round(time.Second)).Int("queues", len(gone)).
				Msg("cluster: a node is down; deleting its non-durable queues")
			s.deleteRecords(n, gone, "its node is down")
		}
	}
}

// answers says whether the member name answers over the cluster transport.
func (s *Server) answers(name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := s.NodeReport(ctx, name)
	return err == nil
}
