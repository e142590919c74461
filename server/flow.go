package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/queue"
)

// Publisher flow control, the server's half (the queue's half is server/queue/flow.go).
//
// Publishing costs the broker less than delivering, and a message that lands behind a spilled
// backlog costs a disk write and a read on top. On a host without spare CPU an unthrottled
// publisher therefore starves the consumers of its own queue: they fall further behind, more
// of the queue goes through the disk, and both the delivery rate and the latency collapse.
// RabbitMQ avoids this with credit flow, which holds every publisher to what its queues
// process. Warren paces a publisher only when it is the problem: while the host's CPUs are
// saturated, a message routed to a congested queue (consumers taking messages, backlog spilled
// to disk) makes its connection wait for that queue to deliver one message before the next
// frame is read, for at most flowMaxWait. TCP then slows the client down. A queue without
// consumers, or whose consumers keep up, or a host with CPU to spare, never paces anyone.

const (
	// flowSample is how often the CPU load is sampled.
	flowSample = 250 * time.Millisecond
	// The host is saturated from flowOn busy until it falls below flowOff (hysteresis, so
	// pacing does not flap at the boundary).
	flowOn  = 0.90
	flowOff = 0.75
	// flowMaxWait bounds how long one message holds its publisher.
	flowMaxWait = 10 * time.Millisecond
	// flowLogEvery: a transition is logged at info at most this often (a host at the boundary
	// crosses it every few seconds); the others at debug.
	flowLogEvery = time.Minute
)

// flowControl tracks whether the host's CPUs are saturated.
type flowControl struct {
	enabled   bool
	saturated atomic.Bool
	log       zerolog.Logger
	logged    time.Time // last transition logged at info; sampler goroutine only
	changes   int       // transitions since then

	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
}

func newFlowControl(enabled bool, log zerolog.Logger) *flowControl {
	return &flowControl{enabled: enabled, log: log, stop: make(chan struct{}), done: make(chan struct{})}
}

// start runs the sampler, once, when the first listener starts.
func (f *flowControl) start() {
	if !f.enabled {
		return
	}
	f.startOnce.Do(func() {
		cpu, err := newCPULoad()
		if err != nil {
			f.log.Info().Err(err).Msg("publisher flow control off: cannot read CPU load")
			close(f.done)
			return
		}
		go f.run(cpu)
	})
}

func (f *flowControl) close() {
	f.stopOnce.Do(func() { close(f.stop) })
	f.startOnce.Do(func() { close(f.done) }) // never started
	<-f.done
}

func (f *flowControl) run(cpu *cpuLoad) {
	defer close(f.done)
	t := time.NewTicker(flowSample)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		busy, ok := cpu.sample()
		if !ok {
			continue
		}
		f.observe(busy)
	}
}

// observe applies one sample of the busy fraction (0..1) with hysteresis.
func (f *flowControl) observe(busy float64) {
	on := f.saturated.Load()
	if on == (busy >= flowOn) || (on && busy >= flowOff) {
		return
	}
	f.saturated.Store(!on)
	ev := f.log.Debug()
	if now := time.Now(); now.Sub(f.logged) >= flowLogEvery {
		ev = f.log.Info().Int("changes_since_last_logged", f.changes)
		f.logged, f.changes = now, 0
	}
	f.changes++
	ev = ev.Float64("cpu_busy", busy)
	if !on {
		ev.Msg("CPU saturated: publishers to queues that spill to disk while their consumers take messages are paced by those consumers")
	} else {
		ev.Msg("CPU no longer saturated: publishers are not paced")
	}
}

// congestedQueue returns a queue among qs that paces its publishers now, or nil.
func (f *flowControl) congestedQueue(qs []*queueRec) *queue.Queue {
	if !f.saturated.Load() {
		return nil
	}
	for _, q := range qs {
		if q.q.Congested() {
			return q.q
		}
	}
	return nil
}

// paceAfterPublish holds the channel's connection until the congested queue its last message
// went to grants credit (at most flowMaxWait). It runs on the reader goroutine, with no lock
// held, so the connection's other frames wait too, as with RabbitMQ's connection-level flow.
func (ch *channel) paceAfterPublish() {
	q := ch.flowQ
	if q == nil {
		return
	}
	ch.flowQ = nil
	if ch.flowTimer == nil {
		ch.flowTimer = time.NewTimer(time.Hour)
		ch.flowTimer.Stop()
	}
	q.AwaitCredit(ch.flowTimer, flowMaxWait)
}
