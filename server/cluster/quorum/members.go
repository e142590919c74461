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

// Configuration returns the names of the group's members in the newest Raft configuration
// this node has (committed or not).
func (g *Group) Configuration() ([]string, error) {
	f := g.r.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("quorum queue %q: reading its members: %w", g.cfg.Name, err)
	}
	var out []string
	for _, s := range f.Configuration().Servers {
		out = append(out, string(s.ID))
	}
	return out, nil
}

// AddMember adds the node name, reached at addr, to the group as a voter. Only the leader
// can; the new member catches up from the leader's log or a snapshot.
func (g *Group) AddMember(name, addr string) error {
	if !g.Leading() {
		return ErrNotLeader // the caller asks the leader's node
	}
	if err := g.r.AddVoter(raft.ServerID(name), raft.ServerAddress(addr), 0, membershipTimeout).Error(); err != nil {
		return fmt.Errorf("quorum queue %q: adding member %s: %w", g.cfg.Name, name, err)
	}
	return nil
}

// RemoveMember takes the node name out of the group. Only the leader can; a leader that
// removes itself steps down once the change is committed, and its raft stops.
func (g *Group) RemoveMember(name string) error {
	if !g.Leading() {
		return ErrNotLeader // the caller asks the leader's node
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
