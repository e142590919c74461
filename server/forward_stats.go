package server

import (
	"context"
	"sync"
	"time"

	"github.com/warrenmq/warren/server/cluster/forward"
	"github.com/warrenmq/warren/server/vhost"
)

// The counts of queues another node holds, for the management API (and so warren ctl): a
// node lists every replicated queue, and one it does not hold has no messages here, so its
// counts are asked of the holder, as a passive queue.declare's are. Each answer is kept for
// holderStatsTTL (RabbitMQ's collect_statistics_interval: its listings are that old too), so
// a listing of many queues asks the holder at most once per queue in that time.

const (
	holderStatsTTL = 5 * time.Second
	// holderStatsTimeout bounds one question, so that a slow or dead holder delays a
	// listing by that much at most (its queues then show their local zeros).
	holderStatsTimeout = time.Second
	// holderStatsKeep is how long an answer is kept once stale; older ones are dropped
	// when the cache is large.
	holderStatsKeep = time.Minute
)

type holderStat struct {
	st forward.Stats
	at time.Time
}

// holderStats caches the holders' answers by vhost and queue.
type holderStats struct {
	mu sync.Mutex
	m  map[string]holderStat
}

// HolderStats returns the counts of the queue vh/name as the node that holds it reports them
// (ready, unacknowledged, consumers); false when this node holds it, is a member of its
// quorum group (its own committed count is the queue's), runs alone, or cannot get an answer.
func (s *Server) HolderStats(vh, name string) (forward.Stats, bool) {
	f := s.fwd
	v := s.vhost(vh)
	if f == nil || v == nil {
		return forward.Stats{}, false
	}
	q, err := v.QueueFor(nil, name)
	if err != nil || q.Replicated() {
		return forward.Stats{}, false
	}
	node := q.Remote()
	if node == "" || node == vhost.PendingHolder {
		return forward.Stats{}, false
	}
	key := vh + "\x00" + name
	now := time.Now()
	f.stats.mu.Lock()
	c, ok := f.stats.m[key]
	f.stats.mu.Unlock()
	if ok && now.Sub(c.at) < holderStatsTTL {
		return c.st, true
	}
	addr, err := f.addr(node)
	if err != nil {
		return forward.Stats{}, false
	}
	ctx, cancel := context.WithTimeout(f.ctx, holderStatsTimeout)
	st, err := f.client.Stats(ctx, addr, vh, name)
	cancel()
	if err != nil {
		return forward.Stats{}, false
	}
	f.stats.mu.Lock()
	if f.stats.m == nil {
		f.stats.m = map[string]holderStat{}
	}
	if len(f.stats.m) >= 4096 {
		for k, old := range f.stats.m {
			if now.Sub(old.at) > holderStatsKeep {
				delete(f.stats.m, k)
			}
		}
	}
	f.stats.m[key] = holderStat{st: st, at: now}
	f.stats.mu.Unlock()
	return st, true
}
