package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

// ErrStaleRecord refuses the deletion of a non-durable queue's record that has since been
// replaced (the queue was declared again, on another node).
var ErrStaleRecord = errors.New("the queue's record changed")

// CommandVersion is the encoding of Command this node writes and reads. A node meeting a
// command of a later version logs it and leaves its model as it is (a mixed-version cluster
// is not supported yet).
const CommandVersion = 1

// Command ops. Body is the op's arguments, encoded by the Applier (package server).
const (
	OpVhostPut        = "vhost.put"
	OpVhostDelete     = "vhost.delete"
	OpVhostLimit      = "vhost.limit"
	OpUserPut         = "user.put"
	OpUserDelete      = "user.delete"
	OpUserLimit       = "user.limit"
	OpPermissionPut   = "permission.put"
	OpPermissionDel   = "permission.delete"
	OpTopicPut        = "topic-permission.put"
	OpTopicDelete     = "topic-permission.delete"
	OpPolicyPut       = "policy.put"
	OpPolicyDelete    = "policy.delete"
	OpExchangeDeclare = "exchange.declare"
	OpExchangeDelete  = "exchange.delete"
	OpQueueDeclare    = "queue.declare"
	OpQueueDelete     = "queue.delete"
	OpBind            = "bind"
	OpUnbind          = "unbind"
	OpImport          = "definitions.import"
	// OpQueueLeader records the member that leads a quorum queue's group now (Name the queue,
	// Body the leader's name as a JSON string), so nodes outside the group know where to
	// forward.
	OpQueueLeader = "queue.leader"
	// OpQueueMembers changes a quorum queue's members (Name the queue, Body a MembersChange). The record says who the members should be; each group's leader
	// changes the group's Raft configuration to match (server/clusterquorum_members.go).
	OpQueueMembers = "queue.members"
	// OpQueueConverged records that a quorum queue's group has the members its record names
	// (Body those members, as a JSON array): the leader proposes it once its Raft
	// configuration matches, and a member taken out deletes its copy only then.
	OpQueueConverged = "queue.converged"
)

// MembersChange is the body of OpQueueMembers: one node added to or removed from a quorum
// queue's members. It is applied to the record as it is when the command is applied, so two
// changes made at once both count.
type MembersChange struct {
	Add    string `json:"add,omitempty"`
	Remove string `json:"remove,omitempty"`
}

// sameMembers says whether a and b name the same nodes, in any order.
func sameMembers(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// apply returns members with the change made: an added node goes last (once), a removed one
// goes unless it is the last member (a queue always keeps one).
func (mc MembersChange) apply(members []string) []string {
	out := make([]string, 0, len(members)+1)
	for _, m := range members {
		if m != mc.Remove || len(members) == 1 {
			out = append(out, m)
		}
	}
	if mc.Add != "" && !slices.Contains(out, mc.Add) {
		out = append(out, mc.Add)
	}
	return out
}

// Command is one change of the replicated metadata, as the metadata group logs it (JSON).
type Command struct {
	V     int    `json:"v"`
	Op    string `json:"op"`
	Vhost string `json:"vhost,omitempty"`
	Name  string `json:"name,omitempty"`
	// Body is the op's arguments in the Applier's encoding.
	Body json.RawMessage `json:"body,omitempty"`
	// Queue is the record of a queue.declare: where the queue lives.
	Queue *QueueRecord `json:"queue,omitempty"`
}

// Queue types of a QueueRecord.
const (
	QueueClassic = "classic"
	QueueQuorum  = "quorum"
)

// QueueRecord is where a replicated queue lives: a classic queue on its owner node, a quorum
// queue on its members.
type QueueRecord struct {
	Vhost   string   `json:"vhost"`
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Owner   string   `json:"owner,omitempty"`
	Members []string `json:"members,omitempty"`
	// Group is a quorum queue's Raft group id, the same on every node: the log index of its
	// declaration (store ids are each node's own).
	Group uint64 `json:"group,omitempty"`
	// Leader is the member that last announced it leads the quorum queue (OpQueueLeader).
	Leader string `json:"leader,omitempty"`
	// Reconfigured says the members changed since the declaration (OpQueueMembers): a member
	// without Raft state for the group then waits for the leader to add it instead of
	// bootstrapping the declared membership.
	Reconfigured bool `json:"reconfigured,omitempty"`
	// Converged says the group's leader found the group's Raft configuration equal to
	// Members (OpQueueConverged) since they last changed.
	Converged bool `json:"converged,omitempty"`
	// Transient marks a non-durable classic queue: it lives as long as its owner node runs.
	// Decl is its declaration (the Applier's encoding), from which a node that restarts
	// declares it again, since it keeps no such queue in its store.
	Transient bool            `json:"transient,omitempty"`
	Decl      json.RawMessage `json:"decl,omitempty"`
}

// Local says whether node holds the queue's messages: the owner of a classic queue, a member
// of a quorum queue.
func (r QueueRecord) Local(node string) bool {
	if r.Type == QueueQuorum {
		for _, m := range r.Members {
			if m == node {
				return true
			}
		}
		return false
	}
	return r.Owner == node
}

// Applier is the broker model the metadata group drives (package server implements it).
// ApplyMeta runs on every node, in log order, on the Raft FSM goroutine; it must be
// deterministic and tolerate a command it has already applied (a crash between the model's
// write and the FSM's own may replay one). ExportMeta is the replicated model as commands
// that rebuild it; RestoreMeta makes the model exactly that (creating, changing and deleting).
type Applier interface {
	// Attach is called once by Start, before the metadata group applies anything: the node
	// the model belongs to, with the queue records it had at its last stop.
	Attach(n *Node)
	ApplyMeta(c Command) error
	ExportMeta() ([]Command, error)
	RestoreMeta(cmds []Command) error
	// MarshalError and UnmarshalError carry an ApplyMeta error from the leader to the node
	// that forwarded the proposal.
	MarshalError(err error) json.RawMessage
	UnmarshalError(raw json.RawMessage) error
}

// metaStateKey is where the FSM keeps its applied index and queue records, in the metadata
// group's stable store: one write after each command.
const metaStateKey = "warren.meta.state"

// metaState is what the FSM persists besides the model: the last index it applied, and the
// queue records.
type metaState struct {
	V       int                    `json:"v"`
	Index   uint64                 `json:"index"`
	Records map[string]QueueRecord `json:"records"`
}

func recordKey(vhost, name string) string { return vhost + "\x00" + name }

// metaFSM is the metadata group's state machine. The model itself (vhosts, users,
// exchanges, queues...) is the Applier's, persisted by it; the FSM skips entries at or below
// the index it persisted (raft replays the log after its last snapshot on every start, and
// the node is started with NoSnapshotRestoreOnStart: its model on disk is already newer).
type metaFSM struct {
	app    Applier
	stable raft.StableStore
	log    zerolog.Logger

	mu      sync.Mutex
	state   metaState
	applied chan struct{} // closed and replaced after every command
}

func newMetaFSM(app Applier, stable raft.StableStore, log zerolog.Logger) (*metaFSM, error) {
	f := &metaFSM{app: app, stable: stable, log: log, applied: make(chan struct{}),
		state: metaState{V: 1, Records: map[string]QueueRecord{}}}
	b, err := stable.Get([]byte(metaStateKey))
	if err != nil && err.Error() == "not found" || err == nil && len(b) == 0 {
		return f, nil // a fresh node (raft's stable stores say "not found", see store.RaftLog)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: reading the metadata state: %w", err)
	}
	if err := json.Unmarshal(b, &f.state); err != nil {
		return nil, fmt.Errorf("cluster: reading the metadata state: %w", err)
	}
	if f.state.Records == nil {
		f.state.Records = map[string]QueueRecord{}
	}
	return f, nil
}

// applyResult is what Apply returns to the proposer on the leader.
type applyResult struct{ err error }

// Apply implements raft.FSM.
func (f *metaFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	done := l.Index <= f.state.Index
	f.mu.Unlock()
	if done {
		f.wake()
		return applyResult{}
	}
	var c Command
	var err error
	if uerr := json.Unmarshal(l.Data, &c); uerr != nil {
		err = fmt.Errorf("cluster: unreadable metadata command at index %d: %w", l.Index, uerr)
	} else if c.V > CommandVersion {
		err = fmt.Errorf("cluster: metadata command version %d at index %d is newer than this node's %d", c.V, l.Index, CommandVersion)
	} else {
		if c.Op == OpQueueLeader {
			c.Queue = nil
			var leader string
			if r, ok := f.record(c.Vhost, c.Name); ok && json.Unmarshal(c.Body, &leader) == nil {
				r.Leader = leader
				c.Queue = &r
			}
		}
		if c.Op == OpQueueMembers {
			c.Queue = nil
			var mc MembersChange
			if r, ok := f.record(c.Vhost, c.Name); ok && r.Type == QueueQuorum && json.Unmarshal(c.Body, &mc) == nil {
				r.Members, r.Reconfigured, r.Converged = mc.apply(r.Members), true, false
				c.Queue = &r
			}
		}
		if c.Op == OpQueueConverged {
			c.Queue = nil
			var members []string
			if r, ok := f.record(c.Vhost, c.Name); ok && json.Unmarshal(c.Body, &members) == nil && sameMembers(r.Members, members) {
				r.Converged = true
				c.Queue = &r
			}
		}
		if c.Op == OpQueueDeclare && c.Queue != nil {
			// Two nodes may declare the same queue at once, each naming itself: the first
			// record applied stays (the second declaration is a redeclare of that queue).
			if r, ok := f.record(c.Vhost, c.Name); ok {
				c.Queue = &r
			} else if c.Queue.Type == QueueQuorum {
				c.Queue.Group = l.Index
			}
		}
		if c.Op == OpQueueDelete && c.Queue != nil && c.Queue.Transient {
			// The deletion of a non-durable queue names the record it deletes: one declared
			// again meanwhile, on another node, stays (its node restarted, left or is down,
			// and another client declared the name). Without a record the deletion goes on
			// as any other (a queue that deleted itself meanwhile).
			if r, ok := f.record(c.Vhost, c.Name); ok && (!r.Transient || r.Owner != c.Queue.Owner) {
				err = fmt.Errorf("cluster: queue '%s' in vhost '%s' was declared again since: %w", c.Name, c.Vhost, ErrStaleRecord)
			}
		}
		if err == nil {
			err = f.app.ApplyMeta(c)
		}
	}
	if err != nil {
		f.log.Debug().Err(err).Uint64("index", l.Index).Str("op", c.Op).Msg("cluster: metadata command refused")
	}
	f.mu.Lock()
	if err == nil {
		switch c.Op {
		case OpQueueDeclare:
			if c.Queue != nil {
				f.state.Records[recordKey(c.Vhost, c.Name)] = *c.Queue
			}
		case OpQueueLeader, OpQueueMembers, OpQueueConverged:
			if c.Queue != nil {
				f.state.Records[recordKey(c.Vhost, c.Name)] = *c.Queue
			}
		case OpQueueDelete:
			delete(f.state.Records, recordKey(c.Vhost, c.Name))
		case OpVhostDelete:
			for k, r := range f.state.Records {
				if r.Vhost == c.Name {
					delete(f.state.Records, k)
				}
			}
		}
	}
	f.state.Index = l.Index
	perr := f.persistLocked()
	f.mu.Unlock()
	if perr != nil {
		f.log.Error().Err(perr).Uint64("index", l.Index).Msg("cluster: persisting the metadata state")
	}
	f.wake()
	return applyResult{err: err}
}

func (f *metaFSM) persistLocked() error {
	b, err := json.Marshal(f.state)
	if err != nil {
		return fmt.Errorf("encoding the metadata state: %w", err)
	}
	return f.stable.Set([]byte(metaStateKey), b)
}

// wake wakes the proposals waiting for an index.
func (f *metaFSM) wake() {
	f.mu.Lock()
	close(f.applied)
	f.applied = make(chan struct{})
	f.mu.Unlock()
}

// appliedIndex is the last index this node's model has; wake is closed when it moves.
func (f *metaFSM) appliedIndex() (uint64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state.Index, f.applied
}

// record returns the queue record of vhost/name.
func (f *metaFSM) record(vhost, name string) (QueueRecord, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.state.Records[recordKey(vhost, name)]
	return r, ok
}

// records returns every queue record, sorted by vhost and name.
func (f *metaFSM) records() []QueueRecord {
	f.mu.Lock()
	out := make([]QueueRecord, 0, len(f.state.Records))
	for _, r := range f.state.Records {
		out = append(out, r)
	}
	f.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Vhost != out[j].Vhost {
			return out[i].Vhost < out[j].Vhost
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// metaSnapshot is a snapshot of the metadata: the model as the commands that rebuild it,
// the queue records, and the index they stand for.
type metaSnapshot struct {
	V        int           `json:"v"`
	Index    uint64        `json:"index"`
	Commands []Command     `json:"commands"`
	Records  []QueueRecord `json:"records"`
}

// Snapshot implements raft.FSM. It runs on the FSM goroutine, so the model is the one the
// applied index stands for.
func (f *metaFSM) Snapshot() (raft.FSMSnapshot, error) {
	cmds, err := f.app.ExportMeta()
	if err != nil {
		return nil, fmt.Errorf("cluster: metadata snapshot: %w", err)
	}
	idx, _ := f.appliedIndex()
	b, err := json.Marshal(metaSnapshot{V: CommandVersion, Index: idx, Commands: cmds, Records: f.records()})
	if err != nil {
		return nil, fmt.Errorf("cluster: metadata snapshot: %w", err)
	}
	return bytesSnapshot(b), nil
}

// Restore implements raft.FSM: the leader sent a snapshot because this node is too far
// behind for the log. The model becomes the snapshot's.
func (f *metaFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s metaSnapshot
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("cluster: reading a metadata snapshot: %w", err)
	}
	if s.V > CommandVersion {
		return fmt.Errorf("cluster: metadata snapshot version %d is newer than this node's %d", s.V, CommandVersion)
	}
	if err := f.app.RestoreMeta(s.Commands); err != nil {
		return fmt.Errorf("cluster: restoring a metadata snapshot: %w", err)
	}
	f.mu.Lock()
	f.state.Records = map[string]QueueRecord{}
	for _, r := range s.Records {
		f.state.Records[recordKey(r.Vhost, r.Name)] = r
	}
	f.state.Index = s.Index
	err := f.persistLocked()
	f.mu.Unlock()
	f.wake()
	f.log.Info().Uint64("index", s.Index).Int("commands", len(s.Commands)).Int("queues", len(s.Records)).
		Msg("cluster: metadata restored from the leader's snapshot")
	if err != nil {
		return fmt.Errorf("cluster: restoring a metadata snapshot: %w", err)
	}
	return nil
}

// bytesSnapshot is an encoded snapshot.
type bytesSnapshot []byte

func (b bytesSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(b); err != nil {
		return errors.Join(fmt.Errorf("cluster: writing a metadata snapshot: %w", err), sink.Cancel())
	}
	return sink.Close()
}

func (bytesSnapshot) Release() {}

// nopApplier is the model of a node started without one: it keeps nothing.
type nopApplier struct{}

func (nopApplier) Attach(*Node)                   {}
func (nopApplier) ApplyMeta(Command) error        { return nil }
func (nopApplier) ExportMeta() ([]Command, error) { return nil, nil }
func (nopApplier) RestoreMeta([]Command) error    { return nil }
func (nopApplier) MarshalError(err error) json.RawMessage {
	b, _ := json.Marshal(err.Error())
	return b
}
func (nopApplier) UnmarshalError(raw json.RawMessage) error { return errors.New(string(raw)) }
