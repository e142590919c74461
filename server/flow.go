package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// Publisher flow control, the server's half (the queue's half is server/queue/flow.go).
//
// Publishing costs the broker less than delivering, and a message that lands behind a spilled
// backlog costs a disk write and a read on top. On a host without spare CPU an unthrottled
// publisher therefore starves the consumers of its own queue: they fall further behind, more
// of the queue goes through the disk, and both the delivery rate and the latency collapse.
// RabbitMQ avoids this with credit flow, which holds every publisher to what its queues
// process. Warren paces a publisher only when it is the problem: while the host's CPUs are
// saturated and Warren itself is using a good share of them, a message routed to a congested queue (consumers taking messages, backlog spilled
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
	// Warren's own process must be busy too, from flowSelfOn CPUs (of user and system time per
	// second) until it falls below flowSelfOff: CPUs saturated by other processes while Warren
	// idles are not Warren's to pace, and are not worth a log line. Pacing is for a broker
	// working hard enough that its consumers fall behind, which takes far more than this.
	flowSelfOn  = 0.25
	flowSelfOff = 0.10
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
		busy, self, ok := cpu.sample()
		if !ok {
			continue
		}
		f.observe(busy, self)
	}
}

// observe applies one sample, with hysteresis: busy is the CPUs' busy fraction (0..1), self
// the CPUs Warren's process used.
func (f *flowControl) observe(busy, self float64) {
	on := f.saturated.Load()
	next := busy >= flowOn && self >= flowSelfOn
	if on {
		next = busy >= flowOff && self >= flowSelfOff
	}
	if next == on {
		return
	}
	f.saturated.Store(next)
	ev := f.log.Debug()
	if now := time.Now(); now.Sub(f.logged) >= flowLogEvery {
		ev = f.log.Info().Int("changes_since_last_logged", f.changes)
		f.logged, f.changes = now, 0
	}
	f.changes++
	ev = ev.Float64("cpu_busy", busy).Float64("warren_cpus", self)
	if !on {
		ev.Msg("CPU saturated while Warren is busy: publishers to queues that spill to disk while their consumers take messages are paced by those consumers")
	} else {
		ev.Msg("CPU no longer saturated, or Warren no longer busy: publishers are not paced")
	}
}

// congestedQueue returns a queue among those the last publish with s went to that paces its
// publishers now, or nil.
func (f *flowControl) congestedQueue(s *vhost.Scratch) *queue.Queue {
	if !f.saturated.Load() {
		return nil
	}
	return s.Congested()
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
