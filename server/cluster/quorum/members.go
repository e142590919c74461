package quorum

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warrenmq/warren/store"
)

// membershipTimeout bounds one change of a group's Raft configuration.
const membershipTimeout = 10 * time.Second

// Leading says whether this node leads the group now.
func (g *Group) Leading() bool { return g.r.State() == raft.Leader }

// Stopped says the member's raft has shut down: it was closed, or it led the group and
// removed itself from it.
func (g *Group) Stopped() bool { return g.r.State() == raft.Shutdown }

// Configuration returns the group's members in the newest Raft configuration this node has
// (committed or not): the voters, and the learners (non-voters catching up).
func (g *Group) Configuration() (voters, learners []string, err error) {
	f := g.r.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, nil, fmt.Errorf("quorum queue %q: reading its members: %w", g.cfg.Name, err)
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, string(s.ID))
		} else {
			learners = append(learners, string(s.ID))
		}
	}
	return voters, learners, nil
}

// catchUpLag is how close to the leader's log a learner must be to become a voter.
const catchUpLag = 64

// AddMember adds the node name, reached at addr, to the group as a learner: it gets the log
// (or a snapshot, then the log) but does not count toward the majority until Promote, so a
// member that is catching up, or down, never holds up the queue's commits. Only the leader
// can.
func (g *Group) AddMember(name, addr string) error {
	if !g.Leading() {
		return ErrNotLeader // the caller asks the leader's node
	}
	if err := g.r.AddNonvoter(raft.ServerID(name), raft.ServerAddress(addr), 0, membershipTimeout).Error(); err != nil {
		return fmt.Errorf("quorum queue %q: adding member %s: %w", g.cfg.Name, name, err)
	}
	return nil
}

// CaughtUp says whether the member name answered the leader lately and its log is within
// catchUpLag entries of the leader's. Only the leader knows.
func (g *Group) CaughtUp(name string) bool {
	if !g.Leading() {
		return false
	}
	match, contact := g.trans.state(raft.ServerID(name))
	return !contact.IsZero() && time.Since(contact) <= g.timing.HeartbeatTimeout && match+catchUpLag >= g.r.LastIndex()
}

// Promote makes the learner name, reached at addr, a voter. Only the leader can.
func (g *Group) Promote(name, addr string) error {
	if !g.Leading() {
		return ErrNotLeader
	}
	if err := g.r.AddVoter(raft.ServerID(name), raft.ServerAddress(addr), 0, membershipTimeout).Error(); err != nil {
		return fmt.Errorf("quorum queue %q: making member %s a voter: %w", g.cfg.Name, name, err)
	}
	return nil
}

// RemoveMember takes the node name out of the group. Only the leader can; a leader that
// removes itself steps down once the change is committed, and its raft stops.
func (g *Group) RemoveMember(name string) error {
	if !g.Leading() {
		return ErrNotLeader
	}
	if err := g.r.RemoveServer(raft.ServerID(name), 0, membershipTimeout).Error(); err != nil {
		return fmt.Errorf("quorum queue %q: removing member %s: %w", g.cfg.Name, name, err)
	}
	return nil
}

// snapshotDir is where a member keeps the snapshots of group id.
func snapshotDir(dataDir string, id uint64) string {
	return filepath.Join(dataDir, "raft", fmt.Sprintf("q%d", id))
}

// Purge deletes what this node holds of group id without running it: the Raft state and
// records a member keeps when it is taken out of the group while it is down. It reports
// whether there was anything.
func Purge(st *store.Store, dataDir string, id uint64) (bool, error) {
	logs, err := st.RaftLog(id)
	if err != nil {
		return false, fmt.Errorf("quorum queue %d: %w", id, err)
	}
	dir := snapshotDir(dataDir, id)
	if last, _ := logs.LastIndex(); last == 0 {
		if _, err := os.Stat(dir); err != nil {
			return false, nil
		}
	}
	if err := errors.Join(st.DropRaftGroup(id), st.DeleteQueueRecords(id), os.RemoveAll(dir)); err != nil {
		return true, fmt.Errorf("quorum queue %d: deleting this node's copy: %w", id, err)
	}
	return true, nil
}

// campaignDelay is how long the first member of a freshly declared queue waits for the other
// members to start their parts (they do as the declaration is applied on their nodes) before
// it stands for election.
const campaignDelay = 100 * time.Millisecond

// campaign makes the first member of a freshly bootstrapped group stand for election at once,
// as RabbitMQ's quorum queue declaration triggers one, instead of after the heartbeat timeout
// (2-4 s, chosen for idle groups): a client that publishes right after its declare-ok finds a
// leader. It hands its own raft the TimeoutNow a leader sends in a leadership transfer; if the
// election fails (a member not started yet), the normal timeouts elect one.
func (g *Group) campaign() {
	select {
	case <-g.stop:
		return
	case <-time.After(campaignDelay):
	}
	if g.r.State() != raft.Follower || g.r.Leader() != "" {
		return
	}
	resp := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{Command: &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax,
		ID: []byte(g.cfg.Self)}}, RespChan: resp}
	select {
	case g.trans.ch <- rpc:
	case <-g.trans.closed:
		return
	case <-g.stop:
		return
	}
	select {
	case <-resp:
	case <-g.stop:
	}
}
