package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// ProposeGroup is the raftmux stream id of proposals a follower forwards to the metadata
// leader.
const ProposeGroup = ^uint64(0) - 1

// ErrNoLeader: the metadata group has no leader (no majority of the nodes is reachable), or
// none could be reached before the proposal's deadline.
var ErrNoLeader = errors.New("the cluster's metadata store has no leader (fewer than a majority of the nodes are reachable)")

// maxProposal bounds a forwarded proposal (a definitions import is the largest).
const maxProposal = 64 << 20

// proposeRetry is how long a proposal waits before asking again for a leader.
const proposeRetry = 50 * time.Millisecond

// Propose applies c through the metadata group and returns once this node's model has it:
// on the leader it is appended and applied; a follower forwards it to the leader and waits
// until its own FSM has applied the index the leader answers. The error is the one ApplyMeta
// returned on the leader, or ErrNoLeader (wrapped) when no leader took it before ctx ended.
func (n *Node) Propose(ctx context.Context, c Command) error {
	c.V = CommandVersion
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("cluster: encoding a %s command: %w", c.Op, err)
	}
	var last error
	for {
		idx, applyErr, err := n.proposeOnce(ctx, data)
		if err == nil {
			if werr := n.waitApplied(ctx, idx); werr != nil {
				return werr
			}
			return applyErr
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s: %w (last: %v)", c.Op, ErrNoLeader, last)
		case <-n.closed:
			return fmt.Errorf("cluster: %s: node shutting down: %w", c.Op, ErrNoLeader)
		case <-time.After(proposeRetry):
		}
	}
}

// proposeOnce tries the current leader once: err is a failure to reach it (retry), applyErr
// the model's answer.
func (n *Node) proposeOnce(ctx context.Context, data []byte) (idx uint64, applyErr, err error) {
	if n.meta.State() == raft.Leader {
		return n.applyLocal(ctx, data)
	}
	addr, id := n.meta.LeaderWithID()
	if addr == "" {
		return 0, nil, fmt.Errorf("no leader")
	}
	return n.forward(ctx, addr, id, data)
}

// applyLocal appends data on this node, the leader, and waits for it to be applied.
func (n *Node) applyLocal(ctx context.Context, data []byte) (uint64, error, error) {
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return 0, nil, context.DeadlineExceeded
		}
	}
	if idx, applyErr, err, ok := n.changeMembership(data); ok {
		return idx, applyErr, err
	}
	f := n.meta.Apply(data, timeout)
	if err := f.Error(); err != nil {
		return 0, nil, fmt.Errorf("applying on the leader: %w", err)
	}
	res, _ := f.Response().(applyResult)
	return f.Index(), res.err, nil
}

// proposalReply is a forwarded command's answer: the index it was applied at, or why not.
type proposalReply struct {
	Index uint64          `json:"index,omitempty"`
	Err   json.RawMessage `json:"err,omitempty"`   // ApplyMeta's error (Applier.MarshalError)
	Retry string          `json:"retry,omitempty"` // not applied: not the leader, or no commit
}

// forward sends data to the leader at addr and reads its answer.
func (n *Node) forward(ctx context.Context, addr raft.ServerAddress, id raft.ServerID, data []byte) (uint64, error, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	conn, err := n.propLayer.Dial(addr, time.Until(dl))
	if err != nil {
		return 0, nil, fmt.Errorf("forwarding to the leader %s: %w", id, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	_ = conn.SetDeadline(dl)
	if err := writeFrame(conn, data); err != nil {
		return 0, nil, fmt.Errorf("forwarding to the leader %s: %w", id, err)
	}
	b, err := readFrame(bufio.NewReader(conn))
	if err != nil {
		return 0, nil, fmt.Errorf("forwarding to the leader %s: %w", id, err)
	}
	var r proposalReply
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, nil, fmt.Errorf("forwarding to the leader %s: bad reply: %w", id, err)
	}
	if r.Retry != "" {
		return 0, nil, fmt.Errorf("forwarding to %s: %s", id, r.Retry)
	}
	var applyErr error
	if len(r.Err) > 0 {
		applyErr = n.app.UnmarshalError(r.Err)
	}
	return r.Index, applyErr, nil
}

// waitApplied waits until this node's FSM has applied idx.
func (n *Node) waitApplied(ctx context.Context, idx uint64) error {
	for {
		have, wake := n.fsm.appliedIndex()
		if have >= idx {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("cluster: the change was committed at index %d but this node has applied only %d: %w", idx, have, ctx.Err())
		case <-n.closed:
			return fmt.Errorf("cluster: node shutting down before applying index %d", idx)
		}
	}
}

// serveProposals answers the proposals other nodes forward while this node is leader.
func (n *Node) serveProposals() {
	defer n.wg.Done()
	for {
		c, err := n.propLayer.Accept()
		if err != nil {
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.serveProposal(c)
		}()
	}
}

func (n *Node) serveProposal(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	data, err := readFrame(bufio.NewReader(c))
	if err != nil {
		n.log.Warn().Err(err).Str("peer", c.RemoteAddr().String()).Msg("cluster: reading a forwarded proposal")
		return
	}
	var r proposalReply
	if n.meta.State() != raft.Leader {
		r.Retry = "not the leader"
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		go func() {
			select {
			case <-n.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		idx, applyErr, err := n.applyLocal(ctx, data)
		cancel()
		switch {
		case err != nil:
			r.Retry = err.Error()
		default:
			r.Index = idx
			if applyErr != nil {
				r.Err = n.app.MarshalError(applyErr)
			}
		}
	}
	b, _ := json.Marshal(r) // plain fields
	if err := writeFrame(c, b); err != nil {
		n.log.Warn().Err(err).Msg("cluster: answering a forwarded proposal")
	}
	if r.Index != 0 {
		n.nudge() // the proposer waits until it has applied r.Index
	}
}

// nudge asks nudgeFollowers for a round; a round already asked for covers this one.
func (n *Node) nudge() {
	select {
	case n.nudges <- struct{}{}:
	default:
	}
}

// nudgeFollowers tells the followers the leader's commit index as soon as asked, by
// appending a barrier (an empty log entry, whose replication carries the commit index), one
// at a time. Otherwise a follower learns that its forwarded proposal was committed only with
// the next append, which an idle leader sends after the commit timeout (50-100 ms): a client
// of a follower waited that long for each declare-ok. A nudge asked for while a barrier is
// under way gets another barrier after it.
func (n *Node) nudgeFollowers() {
	defer n.wg.Done()
	for {
		select {
		case <-n.closed:
			return
		case <-n.nudges:
		}
		if n.meta.State() != raft.Leader {
			continue
		}
		// Its future is not waited for: a barrier raft takes as it shuts down is never
		// answered. The commit index passing the log as it was is what the next round waits
		// for (5 s at most: a leader without a majority).
		last := n.meta.LastIndex()
		n.meta.Barrier(time.Second)
		for deadline := time.Now().Add(5 * time.Second); n.meta.CommitIndex() <= last && time.Now().Before(deadline); {
			select {
			case <-n.closed:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}
}

// writeFrame writes b with a 4-byte length.
func writeFrame(w io.Writer, b []byte) error {
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err := w.Write(append(buf, b...))
	return err
}

// readFrame reads what writeFrame wrote.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > maxProposal {
		return nil, fmt.Errorf("proposal of %d bytes exceeds %d", size, maxProposal)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
