package quorum

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// Errors a publisher's done gets when its message could not be committed.
var (
	// ErrNotLeader: the node lost the queue's leadership (or was stopped) before the command
	// was committed.
	ErrNotLeader = errors.New("quorum queue: this node is no longer the leader")
	// ErrCommitTimeout: no majority took the command within the commit bound.
	ErrCommitTimeout = errors.New("quorum queue: not committed within the bound (no majority of members reachable)")
)

// maxBatch bounds the commands of one Raft log entry (a larger message goes alone), and with
// the snapshot threshold and trailing logs the size of a group's log.
const maxBatch = 1 << 20

type pending struct {
	data []byte // one encoded command
	done func(error)
}

// journal is the leader's queue.Journal: every write is a command replicated by the queue's
// Raft group and applied to the store by every member's FSM; reads are the local store's.
// Commands are proposed in the order the core submits them, batched into log entries by one
// goroutine, so the log holds them in that order and their dones run in that order.
type journal struct {
	g    *Group
	stop chan struct{} // closed when the journal is dropped

	mu      sync.Mutex
	queue   []pending
	closed  bool
	wake    chan struct{}
	stopped sync.WaitGroup

	// recoveredThrough: every message up to it was in the queue when this leader took over,
	// and may have been delivered by the last one: it comes back redelivered.
	recoveredThrough uint64
}

func newJournal(g *Group, recoveredThrough uint64) *journal {
	j := &journal{g: g, stop: make(chan struct{}), wake: make(chan struct{}, 1), recoveredThrough: recoveredThrough}
	j.stopped.Add(1)
	go j.pump()
	return j
}

func (j *journal) submit(data []byte, done func(error)) {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		if done != nil {
			// Never call back under the queue's lock, which the core holds here.
			go done(ErrNotLeader)
		}
		return
	}
	j.queue = append(j.queue, pending{data: data, done: done})
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// Append implements queue.Journal. Every message of a quorum queue is kept, persistent or not.
func (j *journal) Append(e *queue.Entry, _ bool, done func(error)) {
	m := store.Message{Exchange: e.Msg.Exchange, RoutingKey: e.Msg.RoutingKey, Properties: e.Msg.RawProperties,
		Body: e.Msg.Body, Persistent: true, Expiry: e.Expires}
	j.submit(encodeAppend(nil, e.Seq, &m), done)
}

// Remove implements queue.Journal.
func (j *journal) Remove(e *queue.Entry) { j.submit(encodeRemove(nil, e.Seq), nil) }

// SetDeliveries implements queue.Journal.
func (j *journal) SetDeliveries(e *queue.Entry) {
	j.submit(encodeDeliver(nil, e.Seq, e.Deliveries), nil)
}

// Drop implements queue.Journal.
func (j *journal) Drop(after, through uint64) {
	if after < through {
		j.submit(encodeDrop(nil, after, through), nil)
	}
}

// Read implements queue.Journal from the local store, which holds what this node applied.
func (j *journal) Read(after uint64, maxCount, maxBytes int, done func([]*queue.Entry, error)) {
	go func() { done(j.read(after, maxCount, maxBytes)) }()
}

func (j *journal) read(after uint64, maxCount, maxBytes int) ([]*queue.Entry, error) {
	g := j.g
	recs, err := g.cfg.Store.ReadQueue(g.cfg.ID, after, maxCount, maxBytes)
	if err != nil {
		g.log.Error().Err(err).Msg("quorum queue: reading messages from the store")
		return nil, fmt.Errorf("quorum queue %q: reading after seq %d: %w", g.cfg.Name, after, err)
	}
	es := make([]*queue.Entry, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		m := &queue.Message{Exchange: r.Msg.Exchange, RoutingKey: r.Msg.RoutingKey,
			RawProperties: r.Msg.Properties, Body: r.Msg.Body, Persistent: true}
		if err := m.Properties.Decode(r.Msg.Properties); err != nil {
			g.log.Error().Err(err).Uint64("seq", r.Seq).Msg("quorum queue: stored message has undecodable properties")
		}
		es = append(es, &queue.Entry{Msg: m, Seq: r.Seq, Stored: true, Deliveries: r.Deliveries,
			Redelivered: r.HasDeliveries || r.Seq <= j.recoveredThrough, Expires: r.Msg.Expiry})
	}
	return es, nil
}

// close fails every command not yet committed with ErrNotLeader and stops the pump.
func (j *journal) close() {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return
	}
	j.closed = true
	left := j.queue
	j.queue = nil
	j.mu.Unlock()
	close(j.stop)
	j.stopped.Wait()
	for _, p := range left {
		if p.done != nil {
			p.done(ErrNotLeader)
		}
	}
}

func (j *journal) pump() {
	defer j.stopped.Done()
	for {
		select {
		case <-j.wake:
		case <-j.stop:
			return
		}
		for {
			j.mu.Lock()
			n, size := 0, 1
			for n < len(j.queue) && (n == 0 || size+len(j.queue[n].data) <= maxBatch) {
				size += len(j.queue[n].data)
				n++
			}
			batch := j.queue[:n:n]
			j.queue = j.queue[n:]
			j.mu.Unlock()
			if n == 0 {
				break
			}
			entry := make([]byte, 1, size)
			entry[0] = cmdVersion
			for _, p := range batch {
				entry = append(entry, p.data...)
			}
			err := j.commit(entry)
			for _, p := range batch {
				if p.done != nil {
					p.done(err)
				}
			}
			if err != nil {
				j.g.journalFailed(j, err)
				return
			}
		}
	}
}

// commit proposes one log entry and waits until it is committed and applied to the local
// store, for at most the commit bound.
func (j *journal) commit(entry []byte) error {
	g := j.g
	bound := g.timing.CommitBound
	// The bound counts from here: Apply itself may wait for the leader's loop.
	t := time.NewTimer(bound)
	defer t.Stop()
	res := make(chan error, 1)
	f := g.r.Apply(entry, bound)
	go func() {
		if err := f.Error(); err != nil {
			res <- fmt.Errorf("quorum queue %q: %w: %w", g.cfg.Name, ErrNotLeader, err)
			return
		}
		a, ok := f.Response().(*applied)
		if !ok {
			res <- fmt.Errorf("quorum queue %q: unexpected apply result %T", g.cfg.Name, f.Response())
			return
		}
		if err := <-a.stored; err != nil {
			res <- fmt.Errorf("quorum queue %q: committed but not stored locally: %w", g.cfg.Name, err)
			return
		}
		res <- nil
	}()
	select {
	case err := <-res:
		return err
	case <-t.C:
		return fmt.Errorf("quorum queue %q: %w (%s)", g.cfg.Name, ErrCommitTimeout, bound)
	case <-j.stop:
		return fmt.Errorf("quorum queue %q: %w", g.cfg.Name, ErrNotLeader)
	}
}
