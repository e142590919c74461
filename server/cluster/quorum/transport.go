package quorum

import (
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// trackedTransport is the group's raft transport, which records, on the leader, what each
// follower acknowledged: the index its log matches up to and when it last answered. Raft
// keeps the same in its replication state without exposing it. Pipelined replication is
// off so every acknowledgement passes through AppendEntries: a queue's commands are already
// batched into few entries, and the members are on a LAN.
type trackedTransport struct {
	*raft.NetworkTransport

	mu    sync.Mutex
	peers map[raft.ServerID]*peerState
}

type peerState struct {
	match   uint64
	contact time.Time
}

func newTrackedTransport(t *raft.NetworkTransport) *trackedTransport {
	return &trackedTransport{NetworkTransport: t, peers: map[raft.ServerID]*peerState{}}
}

func (t *trackedTransport) peer(id raft.ServerID) *peerState {
	p := t.peers[id]
	if p == nil {
		p = &peerState{}
		t.peers[id] = p
	}
	return p
}

// AppendEntriesPipeline implements raft.Transport: not supported, see trackedTransport.
func (t *trackedTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// AppendEntries implements raft.Transport.
func (t *trackedTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err != nil {
		return err
	}
	t.mu.Lock()
	p := t.peer(id)
	p.contact = time.Now()
	// A heartbeat carries no log position; a successful append matches through its last entry.
	if resp.Success && (args.PrevLogEntry > 0 || len(args.Entries) > 0) {
		p.match = args.PrevLogEntry + uint64(len(args.Entries))
	}
	t.mu.Unlock()
	return nil
}

// InstallSnapshot implements raft.Transport.
func (t *trackedTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	err := t.NetworkTransport.InstallSnapshot(id, target, args, resp, data)
	if err == nil && resp.Success {
		t.mu.Lock()
		p := t.peer(id)
		p.contact = time.Now()
		p.match = max(p.match, args.LastLogIndex)
		t.mu.Unlock()
	}
	return err
}

// state returns what the leader knows of a follower.
func (t *trackedTransport) state(id raft.ServerID) (match uint64, contact time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		return p.match, p.contact
	}
	return 0, time.Time{}
}

// reset forgets what an earlier leadership learned.
func (t *trackedTransport) reset() {
	t.mu.Lock()
	clear(t.peers)
	t.mu.Unlock()
}
