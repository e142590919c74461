package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/cluster/forward"
	"github.com/warrenmq/warren/server/cluster/quorum"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// Forwarding between nodes, this node's side (server/cluster/forward has the protocol and
// docs/cluster.md the behaviour a client sees). A queue another node holds is marked
// vhost.Queue.Remote; this node routes to it as to any queue, and then:
//   - publishes routed to it are forwarded (Forward, below): a confirm or tx.commit-ok waits
//     for the holder's answer, a refusal, a broken stream or a dead node nacks;
//   - consumers, gets, acks, purges and declare-ok counts go to the holder
//     (forward_consume.go, forward_get.go);
//   - when the holder changes (a quorum queue's leader moved, QueueMoved) or the stream to it
//     broke, consumers are re-attached to wherever the queue is now (forward_attach.go).
//
// Without a cluster s.fwd is nil and none of this runs: the routing path pays one atomic
// load per routed queue (the remote mark), the AMQP handlers one nil check.

// forwardCallTimeout bounds a forwarded request a client waits for (get, purge, counts,
// consume).
const forwardCallTimeout = 30 * time.Second

// forwarding is the server's share of a cluster's forwarded traffic.
type forwarding struct {
	s      *Server
	f      *cluster.Forwarding
	client *forward.Client
	peers  func(name string) (string, error)

	ctx    context.Context // ends with Close: re-attachments stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // re-attachment goroutines

	mu    sync.Mutex
	addrs map[string]string // node name -> cluster address

	// mark is the entry of every unacked record of a forwarded delivery (the channel's
	// list tells live records by a non-nil entry); the record's fw says where it came from.
	mark queue.Entry
	// failLog summarises forwarded publishes that failed without a confirm to nack.
	failLog *summaryLog
	// stats are the holders' counts of their queues, for listings (forward_stats.go).
	stats holderStats
}

// StartForwarding makes this node serve the other nodes' forwarded traffic on its queues
// and forward its own clients' traffic to the queues other nodes hold. Call it after Attach
// and before Serve; the returned function stops it (before the node closes).
func (s *Server) StartForwarding(n *cluster.Node, opts forward.Options) (stop func() error, err error) {
	f, err := n.StartForwarding(s.ForwardLocal(), opts)
	if err != nil {
		return nil, fmt.Errorf("server: start forwarding: %w", err)
	}
	s.fwd = newForwarding(s, f.Client, n.PeerAddr)
	s.fwd.f = f
	s.vhosts.SetForwarder(s.fwd)
	return s.fwd.close, nil
}

func newForwarding(s *Server, c *forward.Client, peers func(string) (string, error)) *forwarding {
	ctx, cancel := context.WithCancel(context.Background())
	return &forwarding{s: s, client: c, peers: peers, ctx: ctx, cancel: cancel, addrs: map[string]string{},
		failLog: newSummaryLog(s.log, "forwarded publishes failed", "node", floodSummaryEvery, floodSummaryKeys)}
}

// close stops the re-attachments and breaks every forwarding stream.
func (f *forwarding) close() error {
	f.mu.Lock() // no re-attachment starts after this
	f.cancel()
	f.mu.Unlock()
	var err error
	if f.f != nil {
		err = f.f.Close()
	}
	f.wg.Wait()
	f.failLog.close()
	if err != nil {
		return fmt.Errorf("server: stop forwarding: %w", err)
	}
	return nil
}

// addr is the cluster address of the node named node.
func (f *forwarding) addr(node string) (string, error) {
	f.mu.Lock()
	a, ok := f.addrs[node]
	f.mu.Unlock()
	if ok {
		return a, nil
	}
	a, err := f.peers(node)
	if err != nil {
		return "", fmt.Errorf("forward to node '%s': %w", node, err)
	}
	f.mu.Lock()
	f.addrs[node] = a
	f.mu.Unlock()
	return a, nil
}

var _ vhost.Forwarder = (*forwarding)(nil)

// Forward implements vhost.Forwarder: msg goes to q's holder. With c, the holder's answer
// settles it (nil: stored there, for a quorum queue committed on a majority).
func (f *forwarding) Forward(v *vhost.Vhost, q *vhost.Queue, node string, msg *queue.Message, c vhost.Confirm) {
	m := &forward.Message{Exchange: msg.Exchange, RoutingKey: msg.RoutingKey, Properties: msg.RawProperties,
		Body: msg.Body, Persistent: msg.Persistent}
	var done func(error)
	if c != nil {
		c.Add()
		done = c.Done
	} else {
		done = func(err error) {
			if err != nil {
				f.publishFailed(node, v.Name(), q.Name(), err)
			}
		}
	}
	addr, err := f.addr(node)
	if err != nil {
		if c != nil && q.Type() != "quorum" { // a quorum queue's publish is resent, or GaveUp logs it
			f.publishFailed(node, v.Name(), q.Name(), err)
		}
		done(err)
		return
	}
	if c != nil {
		inner := done
		quorumQ := q.Type() == "quorum"
		done = func(err error) {
			// A quorum queue's publish is resent while its leadership moves, and GaveUp logs
			// the one finally nacked (vhost/resend.go).
			if err != nil && !quorumQ {
				f.publishFailed(node, v.Name(), q.Name(), err)
			}
			inner(err)
		}
	}
	f.client.Publish(addr, v.Name(), q.Name(), m, c != nil, done)
}

// LeaderMoving implements vhost.Forwarder: err, a forwarded publish's failure, lasts only
// while a quorum queue's leadership moves. The node named as the holder cannot be reached or
// its stream broke (it died: a new leader is being elected), or it answered that it does not
// lead the queue now (forwardMoved). The publish is resent (vhost/resend.go).
func (f *forwarding) LeaderMoving(err error) bool {
	if errors.Is(err, forward.ErrStreamBroken) || errors.Is(err, forward.ErrUnreachable) || errors.Is(err, quorum.ErrNotLeader) {
		return true
	}
	var che *amqpwire.ChannelError
	return errors.As(err, &che) && che.Code == amqpwire.CodeResourceLocked
}

// GaveUp implements vhost.Forwarder: a publish to a quorum queue nacked after its resends
// (no leader took it in time, or a failure that is not a leadership move) is logged,
// summarised with the forwarding failures when they flood.
func (f *forwarding) GaveUp(v *vhost.Vhost, q *vhost.Queue, err error) {
	node := q.Remote()
	if f.failLog.note(node, err.Error(), time.Now()) {
		f.s.log.Warn().Err(err).Str("node", node).Str("vhost", v.Name()).Str("queue", q.Name()).
			Msg("publish to a quorum queue nacked (the error says why; more are summarised)")
	}
}

// forwardMoved is a holder's answer to a publish forwarded to a quorum queue it does not lead
// (any more): 405, which the sender takes for "resend" (LeaderMoving).
func forwardMoved(vh, name, node string) error {
	if node == "" || node == vhost.PendingHolder {
		return amqpwire.NewChannelError(amqpwire.CodeResourceLocked, 0, 0,
			"quorum queue '%s' in vhost '%s' is not led by this node now", name, vh)
	}
	return amqpwire.NewChannelError(amqpwire.CodeResourceLocked, 0, 0,
		"queue '%s' in vhost '%s' is held by node '%s' now", name, vh, node)
}

// publishFailed logs a forwarded publish that failed (summarised per node when they flood).
func (f *forwarding) publishFailed(node, vh, name string, err error) {
	if f.failLog.note(node, err.Error(), time.Now()) {
		f.s.log.Warn().Err(err).Str("node", node).Str("vhost", vh).Str("queue", name).
			Msg("forwarded publish failed: the publisher is nacked if it uses confirms (more are summarised)")
	}
}

// remoteErr turns a forwarding failure into what the client gets: the holder's AMQP error
// as it is; anything else (an unreachable node, a broken stream) as RabbitMQ's 404 for a
// durable queue whose home node is down.
func remoteErr(v *vhost.Vhost, q *vhost.Queue, node string, err error) error {
	var che *amqpwire.ChannelError
	var coe *amqpwire.ConnectionError
	if errors.As(err, &che) || errors.As(err, &coe) {
		return err
	}
	return errNodeDown(v, q, node)
}

// quorumSettle bounds how long a consume or get on a quorum queue waits, retrying, for this
// node to learn the queue's new leader (a leader elected elsewhere is announced through the
// metadata group, within a second or two).
const quorumSettle = 5 * time.Second

// whileSettling runs op, and again every 100 ms for quorumSettle, while it fails because q is
// a quorum queue whose holder, as this node knows it, no longer leads it (the holder
// answers 405) or that has no leader yet: the client waits a moment instead of losing its
// channel to a failover it cannot see.
func whileSettling(q *vhost.Queue, op func() error) error {
	err := op()
	if q.Type() != "quorum" {
		return err
	}
	for deadline := time.Now().Add(quorumSettle); settling(err) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		err = op()
	}
	return err
}

// settling says err is a holder's "held elsewhere now" or a quorum queue's "no leader now".
func settling(err error) bool {
	var che *amqpwire.ChannelError
	if !errors.As(err, &che) {
		return false
	}
	return che.Code == amqpwire.CodeResourceLocked || (che.Code == amqpwire.CodeNotFound && strings.Contains(che.Text, "has no leader now"))
}

// errNodeDown is RabbitMQ's error for a queue whose node cannot be reached.
func errNodeDown(v *vhost.Vhost, q *vhost.Queue, node string) error {
	if node == vhost.PendingHolder {
		return amqpwire.NewChannelError(amqpwire.CodeNotFound, 0, 0,
			"quorum queue '%s' in vhost '%s' has no leader now (a majority of its members is not reachable yet)", q.Name(), v.Name())
	}
	return amqpwire.NewChannelError(amqpwire.CodeNotFound, 0, 0,
		"home node '%s' of durable queue '%s' in vhost '%s' is down or inaccessible", node, q.Name(), v.Name())
}
