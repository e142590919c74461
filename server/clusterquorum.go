package server

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/cluster/quorum"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// Quorum queues in a cluster. Every member of a quorum queue runs its Raft group
// (server/cluster/quorum); the member that leads the group holds the queue's core. The group
// hands the core over when this node becomes the leader (OnLeader) and takes it back when it
// stops being one (OnFollower); this file installs it in the model (vhost.Queue.SetCore) and
// names the holder on every member (vhost.Queue.SetRemote): a publish, consume or get on
// another node is forwarded there. A member that does not lead keeps a closed core, which
// refuses messages, so nothing is ever enqueued beside the replicated log; it reports the
// committed count its group applied (vhost.Queue.SetCommitted).

// quorumWatch is how often the members look up their groups' leaders, to name the holder of
// each queue they do not lead.
const quorumWatch = 200 * time.Millisecond

// quorumQueues runs this node's members of its quorum queues' groups.
type quorumQueues struct {
	s    *Server
	node *cluster.Node
	hub  *quorum.Hub
	log  zerolog.Logger

	mu     sync.Mutex
	groups map[uint64]*quorumMember // by the queue's store id (its group's id)
	// pending are changes whose members' addresses were not known yet (the node was
	// starting): watch applies them again.
	pending  []QuorumQueueChange
	starting map[uint64]bool // changes being applied now
	closed   bool
	stop     chan struct{}
	stopped  chan struct{}
	// converging counts the membership changes under way (clusterquorum_members.go); close
	// waits for them.
	converging sync.WaitGroup
}

// quorumMember is this node's member of one queue's group.
type quorumMember struct {
	g    *quorum.Group
	v    *vhost.Vhost
	q    *vhost.Queue
	self string

	mu     sync.Mutex
	holder string // the node named with SetRemote; "" is this node
	// members are the queue's members as its record says (who the group should have);
	// converge is set while the group's Raft configuration may differ from them (the record
	// changed, this node became the leader) and cleared once it matches.
	members  []string
	converge bool
	// busy while a goroutine converges the group; lastErr is the last failure logged.
	busy    atomic.Bool
	lastErr string
}

// startQuorumQueues starts the node's quorum transport; the groups start as the queue
// records are applied (change).
func startQuorumQueues(s *Server, n *cluster.Node) (*quorumQueues, error) {
	hub, err := n.QuorumHub()
	if err != nil {
		return nil, err
	}
	qq := &quorumQueues{s: s, node: n, hub: hub, log: s.log.With().Str("component", "quorum queues").Logger(),
		groups: map[uint64]*quorumMember{}, starting: map[uint64]bool{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	n.OnClose(qq.close)
	go qq.watch()
	return qq, nil
}

// change starts or deletes this node's member of a quorum queue's group as its record is
// applied. It runs on the metadata group's goroutine.
func (qq *quorumQueues) change(ch QuorumQueueChange) {
	if ch.Deleted {
		qq.remove(ch.ID)
		return
	}
	if ch.ID == 0 {
		return
	}
	self := qq.node.Name()
	qq.mu.Lock()
	m := qq.groups[ch.ID]
	qq.mu.Unlock()
	if m != nil {
		m.want(ch.Members) // the leader changes the group to match (converge)
		return
	}
	if !slices.Contains(ch.Members, self) {
		qq.outside(ch)
		if ch.Reconfigured && ch.Converged {
			qq.purge(ch) // this node was taken out of the group while it was down
		}
		return
	}
	qq.mu.Lock()
	busy := qq.groups[ch.ID] != nil || qq.starting[ch.ID] || qq.closed
	if !busy {
		// The metadata goroutine and watch (retrying a pending change) may both get here.
		qq.starting[ch.ID] = true
	}
	qq.mu.Unlock()
	if busy {
		return
	}
	defer func() {
		qq.mu.Lock()
		delete(qq.starting, ch.ID)
		qq.mu.Unlock()
	}()
	log := qq.log.With().Str("vhost", ch.Vhost).Str("queue", ch.Name).Logger()
	v := qq.s.vhost(ch.Vhost)
	if v == nil {
		return
	}
	q, err := v.QueueFor(nil, ch.Name)
	if err != nil {
		log.Error().Err(err).Msg("quorum queue record without its queue")
		return
	}
	if h := q.Remote(); h == "" || h == vhost.PendingHolder || !q.Replicated() {
		// Until this node leads the queue, its core is closed, at once, even while the group
		// waits for the node to finish starting: the core the declare (or the recovery) made
		// journals into the records the group's log owns, so a publish it took (from a client
		// or forwarded by a node that still names this one) would be confirmed without being
		// replicated. A closed core refuses it (the publisher is nacked).
		if old := q.SetCore(closedCore(q.Name())); old != nil {
			old.Delete()
		}
		// A node added to the queue keeps forwarding to the leader it knows while it
		// catches up; watch names the leader once its group hears from it.
		if h == "" || !ch.Reconfigured {
			q.SetRemote(vhost.PendingHolder)
		}
		q.SetCommitted(func() (int, int64) { return 0, 0 })
	}
	members := make([]quorum.Member, 0, len(ch.Members))
	for _, name := range ch.Members {
		addr, err := qq.node.PeerAddr(name)
		if errors.Is(err, cluster.ErrStarting) {
			qq.mu.Lock()
			qq.pending = append(qq.pending, ch)
			qq.mu.Unlock()
			return
		}
		if err != nil {
			log.Error().Err(err).Str("member", name).Msg("quorum queue member without an address: its group is not started")
			return
		}
		members = append(members, quorum.Member{Name: name, Address: addr})
	}
	m = &quorumMember{v: v, q: q, self: self, holder: q.Remote(), members: ch.Members, converge: true}
	m.g, err = quorum.Start(quorum.Config{ID: ch.ID, Name: ch.Name, Self: self, Members: members, Join: ch.Reconfigured, Hub: qq.hub,
		Store: qq.s.cfg.Store, DataDir: qq.node.DataDir(), Logger: log,
		Options:    func() queue.Options { return v.CoreOptions(q) },
		OnLeader:   func(core *queue.Queue) { qq.lead(m, core) },
		OnFollower: func(_ *queue.Queue, detached []queue.Consumer) { qq.follow(m, detached) }})
	if err != nil {
		log.Error().Err(err).Msg("quorum queue: starting this node's member of its Raft group")
		return
	}
	q.SetCommitted(m.g.Committed)
	qq.mu.Lock()
	if qq.closed {
		qq.mu.Unlock()
		_ = m.g.Close()
		return
	}
	qq.groups[ch.ID] = m
	qq.mu.Unlock()
}

// lead installs the core of a queue this node now leads.
func (qq *quorumQueues) lead(m *quorumMember, core *queue.Queue) {
	if old := m.q.SetCore(core); old != nil && old != core {
		old.Delete()
	}
	m.setHolder("")
	m.want(nil) // a new leader finishes a membership change its predecessor began
	qq.s.quorumMoved(m.v, m.q, nil)
	// The nodes outside the group learn the new leader through the metadata group.
	go func() {
		if err := qq.s.propose(cluster.OpQueueLeader, m.v.Name(), m.q.Name(), m.self, nil); err != nil {
			qq.log.Info().Err(err).Str("queue", m.q.Name()).Msg("quorum queue: announcing this node's leadership to the nodes outside its group")
		}
	}()
}

// follow takes the core of a queue this node no longer leads out of the model; the consumers
// it had are moved on.
func (qq *quorumQueues) follow(m *quorumMember, detached []queue.Consumer) {
	m.q.SetCore(closedCore(m.q.Name()))
	// The new leader is named by watch once the group knows it (m.g may not even be set yet:
	// the group can lead and step down before Start returns).
	m.setHolder(vhost.PendingHolder)
	qq.s.quorumMoved(m.v, m.q, detached)
}

// watch names, on every member, the node that leads each queue it does not lead.
func (qq *quorumQueues) watch() {
	defer close(qq.stopped)
	t := time.NewTicker(quorumWatch)
	defer t.Stop()
	for {
		select {
		case <-qq.stop:
			return
		case <-t.C:
		}
		qq.mu.Lock()
		ms := make([]*quorumMember, 0, len(qq.groups))
		for _, m := range qq.groups {
			ms = append(ms, m)
		}
		pending := qq.pending
		qq.pending = nil
		qq.mu.Unlock()
		for _, ch := range pending {
			// The record as it is now: its members may have changed (or the queue gone)
			// since the change was put aside, and a stale one must not start a member.
			rec, ok := qq.s.meta.QueueRecord(ch.Vhost, ch.Name)
			if !ok || rec.Group != ch.Group {
				continue
			}
			ch.Members, ch.Reconfigured, ch.Converged = rec.Members, rec.Reconfigured, rec.Converged
			qq.change(ch)
		}
		for _, m := range ms {
			qq.startConverge(m)
			leader, _ := m.g.LeaderID()
			if leader == "" || leader == m.self {
				continue // no leader: the last one stays named; this node: lead names it
			}
			if m.setHolder(leader) {
				qq.s.quorumMoved(m.v, m.q, nil)
			}
		}
	}
}

// announced is told that leader announced it leads the queue with store id id (the metadata
// group's queue.leader): a member that still names no holder names it now rather than at
// watch's next look, so that a client of this node publishing right after the declaration
// is forwarded there. watch corrects it if the group knows better.
func (qq *quorumQueues) announced(id uint64, leader string) {
	if qq == nil {
		return
	}
	qq.mu.Lock()
	m := qq.groups[id]
	qq.mu.Unlock()
	if m == nil || leader == m.self || m.g.Leading() || m.q.Remote() != vhost.PendingHolder {
		return
	}
	if m.setHolder(leader) {
		qq.s.quorumMoved(m.v, m.q, nil)
	}
}

// setHolder names the node holding the queue ("" this node); it reports a change.
func (m *quorumMember) setHolder(node string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.holder == node && m.q.Remote() == node {
		return false
	}
	m.holder = node
	m.q.SetRemote(node)
	return true
}

// remove deletes this node's member of the group of the queue with store id id.
func (qq *quorumQueues) remove(id uint64) {
	qq.mu.Lock()
	m := qq.groups[id]
	delete(qq.groups, id)
	qq.mu.Unlock()
	if m == nil {
		return
	}
	if err := m.g.Delete(); err != nil {
		qq.log.Warn().Err(err).Str("queue", m.q.Name()).Msg("quorum queue: deleting this node's member of its group")
	}
}

// close stops every group (their state stays for the next start) and the transport.
func (qq *quorumQueues) close() error {
	qq.mu.Lock()
	if qq.closed {
		qq.mu.Unlock()
		return nil
	}
	qq.closed = true
	ms := qq.groups
	qq.groups = nil
	qq.mu.Unlock()
	close(qq.stop)
	<-qq.stopped
	for _, m := range ms {
		if err := m.g.Close(); err != nil {
			qq.log.Warn().Err(err).Str("queue", m.q.Name()).Msg("quorum queue: stopping this node's member")
		}
	}
	qq.converging.Wait() // their raft stopped: a change under way fails at once
	return qq.hub.Close()
}

// quorumMoved is told that the node holding q changed; detached are the consumers of the core
// this node just stopped leading. Other nodes' forwarded consumers are told the queue moved
// (not that it was deleted), so their nodes attach them to the new leader; this node's own
// consumers follow the queue (QueueMoved). Their unacknowledged messages are the new leader's
// to redeliver. Without forwarding, this node's consumers are cancelled (basic.cancel for
// clients that announced consumer_cancel_notify).
func (s *Server) quorumMoved(v *vhost.Vhost, q *vhost.Queue, detached []queue.Consumer) {
	for _, c := range detached {
		switch c := c.(type) {
		case *forwardConsumer:
			v.RemoveConsumer(q, c)
			c.sink.Cancelled(errQueueMoved)
		case vhost.Consumer:
			if s.fwd == nil {
				v.RemoveConsumer(q, c)
				c.CancelledByServer()
			}
		}
	}
	s.QueueMoved(v, q)
}

// errQueueMoved ends a forwarded consumer whose quorum queue's leadership left this node.
var errQueueMoved = errors.New("the quorum queue's leader moved to another node")

// closedCore is the core of a quorum queue on a member that does not lead it: deleted, so it
// refuses every message and consumer.
func closedCore(name string) *queue.Queue {
	c := queue.New(name, queue.Options{Features: queue.NoFeatures, Clock: queue.RealClock{}})
	c.Delete()
	return c
}

// QuorumQueueStatus is a quorum queue's replication as this node sees it, for the management
// API: RabbitMQ's leader, members and online, and the Raft group's state.
type QuorumQueueStatus struct {
	Leader  string
	Members []string
	Online  []string
	// Group is the Raft group's state on this node; nil on a node outside the group.
	Group *quorum.Status
}

// QuorumQueueStatus reports the replication of the quorum queue name in vh; false outside a
// cluster or for a queue that is not a replicated quorum queue.
func (s *Server) QuorumQueueStatus(vh, name string) (QuorumQueueStatus, bool) {
	if s.meta == nil {
		return QuorumQueueStatus{}, false
	}
	rec, ok := s.meta.QueueRecord(vh, name)
	if !ok || rec.Type != cluster.QueueQuorum {
		return QuorumQueueStatus{}, false
	}
	st := QuorumQueueStatus{Members: rec.Members}
	var m *quorumMember
	if v := s.vhost(vh); v != nil && s.quorum != nil {
		if q, err := v.QueueFor(nil, name); err == nil {
			s.quorum.mu.Lock()
			m = s.quorum.groups[q.StoreID()]
			s.quorum.mu.Unlock()
			switch st.Leader = q.Remote(); st.Leader {
			case "":
				st.Leader = s.meta.Name()
			case vhost.PendingHolder:
				st.Leader = ""
			}
		}
	}
	if m == nil {
		return st, true
	}
	gs := m.g.Status()
	st.Group = &gs
	if gs.Leader != "" {
		st.Leader = gs.Leader
	}
	for _, ms := range gs.Members {
		if ms.Online {
			st.Online = append(st.Online, ms.Name)
		}
	}
	return st, true
}
