package quorum

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/cluster/raftlog"
	"github.com/warrenmq/warren/server/cluster/raftmux"
)

// TransportGroup is the cluster-transport stream id every quorum queue's Raft traffic shares
// (beside the reserved ^0, ^0-1 and ^0-2).
const TransportGroup = ^uint64(0) - 3

// Hub is a node's Raft transport for all its quorum queues. A raft.NetworkTransport per
// group would keep its own pooled connections to each peer, each with 512 KiB of buffers, and
// 1,000 groups on three nodes would hold gigabytes; the hub is one NetworkTransport whose
// connections (yamux streams on the node's cluster transport) every group shares. Each
// group's RPCs name it: its transport encodes the group's ID in front of the address raft
// puts in every RPC header (EncodePeer), and the hub routes incoming RPCs by that prefix.
type Hub struct {
	nt  *raft.NetworkTransport
	log zerolog.Logger
	// raftLog is where every group's raft library lines go: one sampler for the node, so a
	// peer that is down (every group failing its appends) makes a few lines, not thousands.
	raftLog zerolog.Logger

	mu     sync.RWMutex
	groups map[uint64]*groupTransport
	done   chan struct{}
	wg     sync.WaitGroup
}

// hubPool is the number of idle connections the hub keeps per peer: enough for the RPCs in
// flight at once (a few with 1,000 idle groups); more are opened when needed.
const hubPool = 16

// hubTimeout bounds one RPC (a snapshot's is scaled by its size).
const hubTimeout = 5 * time.Second

// NewHub starts the quorum queues' transport on the node's cluster transport.
func NewHub(mux *raftmux.Mux, log zerolog.Logger) (*Hub, error) {
	layer, err := mux.Layer(TransportGroup)
	if err != nil {
		return nil, fmt.Errorf("quorum queues' transport: %w", err)
	}
	h := &Hub{log: log, groups: map[uint64]*groupTransport{}, done: make(chan struct{}),
		raftLog: log.Sample(&zerolog.BurstSampler{Burst: 20, Period: 30 * time.Second})}
	h.nt = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: hubPool, Timeout: hubTimeout, Logger: raftlog.New(h.raftLog, hclog.Error)})
	h.nt.SetHeartbeatHandler(func(rpc raft.RPC) { h.route(rpc, true) })
	h.wg.Add(1)
	go h.dispatch()
	return h, nil
}

// Close stops the transport (after the groups).
func (h *Hub) Close() error {
	close(h.done)
	err := h.nt.Close()
	h.wg.Wait()
	if err != nil {
		return fmt.Errorf("quorum queues' transport: %w", err)
	}
	return nil
}

func (h *Hub) dispatch() {
	defer h.wg.Done()
	for {
		select {
		case rpc := <-h.nt.Consumer():
			h.route(rpc, false)
		case <-h.done:
			return
		}
	}
}

var errNoGroup = errors.New("quorum: no such queue group on this node")

// route hands an incoming RPC to its group.
func (h *Hub) route(rpc raft.RPC, heartbeat bool) {
	var id uint64
	var gt *groupTransport
	if hdr, ok := rpc.Command.(raft.WithRPCHeader); ok {
		if a := hdr.GetRPCHeader().Addr; len(a) >= 8 {
			id = binary.BigEndian.Uint64(a)
			h.mu.RLock()
			gt = h.groups[id]
			h.mu.RUnlock()
		}
	}
	if gt == nil {
		// Not started here yet, or deleted: the sender retries.
		rpc.Respond(nil, fmt.Errorf("%w (%d)", errNoGroup, id))
		return
	}
	// Held while the RPC is handed over, so Close waits for it: raft, once stopped, ignores a
	// heartbeat without answering it.
	gt.live.RLock()
	defer gt.live.RUnlock()
	if gt.stopped {
		rpc.Respond(nil, raft.ErrTransportShutdown)
		return
	}
	if heartbeat {
		gt.mu.Lock()
		fn := gt.heartbeat
		gt.mu.Unlock()
		if fn != nil {
			fn(rpc)
			return
		}
	}
	select {
	case gt.ch <- rpc:
	default:
		// The group is busy: wait for it without holding up the others. The wait holds
		// live too, so what it hands over is answered by raft or by Close's drain.
		go func() {
			gt.live.RLock()
			defer gt.live.RUnlock()
			if gt.stopped {
				rpc.Respond(nil, raft.ErrTransportShutdown)
				return
			}
			select {
			case gt.ch <- rpc:
			case <-gt.closed:
				rpc.Respond(nil, raft.ErrTransportShutdown)
			}
		}()
	}
}

// transport returns group id's raft.Transport on the hub.
func (h *Hub) transport(id uint64) (*groupTransport, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.groups[id] != nil {
		return nil, fmt.Errorf("quorum: group %d is already running on this node", id)
	}
	gt := &groupTransport{h: h, id: id, ch: make(chan raft.RPC, 16), closed: make(chan struct{}),
		peers: map[raft.ServerID]*peerState{}}
	h.groups[id] = gt
	return gt, nil
}

// groupTransport is one group's raft.Transport on the hub. It also records, on the leader,
// what each follower acknowledged (raft keeps the same without exposing it). Pipelined
// replication is off, so every acknowledgement passes through AppendEntries: a queue's
// commands are already batched into few entries.
type groupTransport struct {
	h      *Hub
	id     uint64
	ch     chan raft.RPC
	closed chan struct{}
	once   sync.Once

	// live guards stopped: set by Close, after which RPCs are refused and the ones waiting
	// were answered.
	live    sync.RWMutex
	stopped bool

	mu        sync.Mutex
	heartbeat func(raft.RPC)
	peers     map[raft.ServerID]*peerState
}

type peerState struct {
	match   uint64
	contact time.Time
}

var (
	_ raft.Transport   = (*groupTransport)(nil)
	_ raft.WithClose   = (*groupTransport)(nil)
	_ raft.WithPreVote = (*groupTransport)(nil)
)

// Consumer implements raft.Transport.
func (t *groupTransport) Consumer() <-chan raft.RPC { return t.ch }

// LocalAddr implements raft.Transport.
func (t *groupTransport) LocalAddr() raft.ServerAddress { return t.h.nt.LocalAddr() }

// AppendEntriesPipeline implements raft.Transport: not supported, see groupTransport.
func (t *groupTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// AppendEntries implements raft.Transport.
func (t *groupTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if err := t.h.nt.AppendEntries(id, target, args, resp); err != nil {
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

// RequestVote implements raft.Transport.
func (t *groupTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.h.nt.RequestVote(id, target, args, resp)
}

// RequestPreVote implements raft.WithPreVote.
func (t *groupTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.h.nt.RequestPreVote(id, target, args, resp)
}

// InstallSnapshot implements raft.Transport.
func (t *groupTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	err := t.h.nt.InstallSnapshot(id, target, args, resp, data)
	if err == nil && resp.Success {
		t.mu.Lock()
		p := t.peer(id)
		p.contact = time.Now()
		p.match = max(p.match, args.LastLogIndex)
		t.mu.Unlock()
	}
	return err
}

// TimeoutNow implements raft.Transport.
func (t *groupTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.h.nt.TimeoutNow(id, target, args, resp)
}

// EncodePeer implements raft.Transport: the group's ID, then the address. Raft puts it in
// every RPC's header, which is how the receiving hub finds the group.
func (t *groupTransport) EncodePeer(id raft.ServerID, addr raft.ServerAddress) []byte {
	return append(binary.BigEndian.AppendUint64(nil, t.id), t.h.nt.EncodePeer(id, addr)...)
}

// DecodePeer implements raft.Transport.
func (t *groupTransport) DecodePeer(b []byte) raft.ServerAddress {
	if len(b) < 8 {
		return t.h.nt.DecodePeer(b)
	}
	return t.h.nt.DecodePeer(b[8:])
}

// SetHeartbeatHandler implements raft.Transport.
func (t *groupTransport) SetHeartbeatHandler(cb func(raft.RPC)) {
	t.mu.Lock()
	t.heartbeat = cb
	t.mu.Unlock()
}

// Close implements raft.WithClose: the group gets no more RPCs.
func (t *groupTransport) Close() error {
	t.once.Do(func() {
		t.h.mu.Lock()
		if t.h.groups[t.id] == t {
			delete(t.h.groups, t.id)
		}
		t.h.mu.Unlock()
		close(t.closed)
		// Raft stops reading: answer what it left, or the connections that carried those
		// RPCs would wait for answers until the hub closes.
		t.live.Lock()
		t.stopped = true
		for {
			select {
			case rpc := <-t.ch:
				rpc.Respond(nil, raft.ErrTransportShutdown)
				continue
			default:
			}
			break
		}
		t.live.Unlock()
	})
	return nil
}

func (t *groupTransport) peer(id raft.ServerID) *peerState {
	p := t.peers[id]
	if p == nil {
		p = &peerState{}
		t.peers[id] = p
	}
	return p
}

// state returns what the leader knows of a follower.
func (t *groupTransport) state(id raft.ServerID) (match uint64, contact time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		return p.match, p.contact
	}
	return 0, time.Time{}
}

// reset forgets what an earlier leadership learned.
func (t *groupTransport) reset() {
	t.mu.Lock()
	clear(t.peers)
	t.mu.Unlock()
}
