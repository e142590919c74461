package main

import (
	"context"
	"fmt"
	"math/rand"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// The kinds of fault.
const (
	faultKill      = "kill"      // kill -9, then restart on the same data dir
	faultPause     = "pause"     // SIGSTOP, then SIGCONT
	faultPartition = "partition" // cut the node off from the others, then heal
	faultMember    = "member"    // take the node out of the queue's members, then add it back
)

// Fault is one fault the nemesis injected.
type Fault struct {
	Kind string `json:"kind"`
	Node string `json:"node"`
	// Leader: the node was the queue's (or the metadata) leader when it was chosen.
	Leader  bool   `json:"leader"`
	StartMS int64  `json:"start_ms"`
	EndMS   int64  `json:"end_ms"`
	Err     string `json:"error,omitempty"`
}

// nemesis injects faults one at a time, at random from a seed.
type nemesis struct {
	ns               *nodes
	rng              *rand.Rand
	kinds            []string
	queue            string
	holdMin, holdMax time.Duration // how long a fault lasts
	gapMin, gapMax   time.Duration // the calm between two faults
	leaderBias       float64       // the chance of picking the leader over a random node
	start            time.Time
	log              zerolog.Logger
}

func (m *nemesis) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(m.rng.Int63n(int64(hi-lo)))
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// run injects count faults; every kind comes once among the first ones (in random order),
// then they are drawn at random. It stops at the first fault it cannot undo.
func (m *nemesis) run(ctx context.Context, count int) ([]Fault, error) {
	var faults []Fault
	for _, kind := range plan(m.rng, m.kinds, count) {
		sleep(ctx, m.between(m.gapMin, m.gapMax))
		if ctx.Err() != nil {
			return faults, ctx.Err()
		}
		f, err := m.inject(ctx, kind)
		faults = append(faults, f)
		if err != nil {
			return faults, err
		}
	}
	return faults, nil
}

// plan draws count faults from kinds: every kind once first, in random order, then at random.
func plan(rng *rand.Rand, kinds []string, count int) []string {
	var out []string
	for _, i := range rng.Perm(len(kinds)) {
		out = append(out, kinds[i])
	}
	for len(out) < count {
		out = append(out, kinds[rng.Intn(len(kinds))])
	}
	return out[:count]
}

// target picks the node to hurt: the leader with probability leaderBias, else any node.
func (m *nemesis) target() (*node, bool) {
	if m.rng.Float64() < m.leaderBias {
		if l := m.ns.leader(m.queue); l != nil {
			return l, true
		}
	}
	return m.ns.list[m.rng.Intn(len(m.ns.list))], false
}

func (m *nemesis) inject(ctx context.Context, kind string) (Fault, error) {
	n, leader := m.target()
	hold := m.between(m.holdMin, m.holdMax)
	f := Fault{Kind: kind, Node: n.name, Leader: leader, StartMS: time.Since(m.start).Milliseconds()}
	m.log.Info().Str("fault", kind).Str("node", n.name).Bool("leader", leader).Dur("hold", hold).Msg("nemesis")
	var err error
	switch kind {
	case faultKill:
		if err = m.ns.kill(n); err == nil {
			sleep(ctx, hold)
			err = m.ns.start(context.WithoutCancel(ctx), n)
		}
	case faultPause:
		if err = m.ns.signal(n, syscall.SIGSTOP); err == nil {
			sleep(ctx, hold)
			err = m.ns.signal(n, syscall.SIGCONT)
		}
	case faultPartition:
		if m.ns.net == nil {
			err = fmt.Errorf("partition needs a cluster (--nodes > 1)")
			break
		}
		m.ns.net.partition(n.name)
		sleep(ctx, hold)
		m.ns.net.heal()
	case faultMember:
		if !m.ns.clustered() {
			err = fmt.Errorf("a member change needs a cluster (--nodes > 1)")
			break
		}
		if err = m.ns.changeMember(ctx, m.queue, n, false); err == nil {
			sleep(ctx, hold)
			err = m.ns.changeMember(context.WithoutCancel(ctx), m.queue, n, true)
		}
	default:
		err = fmt.Errorf("unknown fault %q", kind)
	}
	f.EndMS = time.Since(m.start).Milliseconds()
	if err != nil {
		f.Err = err.Error()
		return f, fmt.Errorf("fault %s on %s: %w", kind, n.name, err)
	}
	return f, nil
}
