package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// idleSummary reports an --idle-connections run.
type idleSummary struct {
	Requested  int     `json:"requested"`
	Opened     int     `json:"opened"`
	Failed     int     `json:"failed"`
	FirstError string  `json:"first_error,omitempty"`
	GaveUp     bool    `json:"gave_up,omitempty"` // stopped opening after too many failures
	OpenTime   float64 `json:"open_s"`            // from the first dial to the last channel.open-ok
	Heartbeat  float64 `json:"heartbeat_s"`       // as negotiated: the broker's default
	StillOpen  int     `json:"still_open"`        // at the end of the run
	ClientRSS  float64 `json:"client_rss_mib"`    // this process, with the connections open

	Broker *idleBroker `json:"broker,omitempty"`
}

// idleBroker is the broker's memory around the opening of the idle connections (with
// --broker-pid).
type idleBroker struct {
	RSSBefore    float64 `json:"rss_before_mib"`
	HWMBefore    float64 `json:"vmhwm_before_mib"`
	RSSAfterOpen float64 `json:"rss_after_open_mib"`
	HWMAfterOpen float64 `json:"vmhwm_after_open_mib"`
	RSSEnd       float64 `json:"rss_end_mib"`
	HWMEnd       float64 `json:"vmhwm_end_mib"`
	// KiBPerConn is (rss_end - rss_before) / opened: what one connection with one channel
	// costs the broker.
	KiBPerConn float64 `json:"kib_per_connection"`
	FDLimit    int64   `json:"fd_limit,omitempty"` // the broker's soft RLIMIT_NOFILE
}

// idleSet holds the idle connections for the run.
type idleSet struct {
	conns  []*amqp.Connection
	sum    idleSummary
	broker string // PID, or ""
}

// idleGiveUp is how many failed connections make the opening stop: a broker that refuses
// one more connection refuses them all, and a dead one would take the dial timeout each.
const idleGiveUp = 100

// fdHeadroom is the descriptors this process needs beyond its connections.
const fdHeadroom = 64

// checkFDs makes sure this process may hold every connection the run opens.
func checkFDs(c *config) error {
	need := uint64(c.IdleConnections + c.Producers + c.Consumers + fdHeadroom)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < need {
		return fmt.Errorf("the open-file limit (RLIMIT_NOFILE) is %d (hard limit %d), but %d idle connections and %d workers need about %d: raise it (as root: ulimit -Hn %d; ulimit -n %d) or open fewer",
			rl.Cur, rl.Max, c.IdleConnections, c.Producers+c.Consumers, need, need, need)
	}
	return nil
}

// raiseFDLimit raises this process's soft RLIMIT_NOFILE to its hard limit.
func raiseFDLimit() {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur >= rl.Max {
		return
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		logf("raising the open-file limit to %d: %v", rl.Max, err)
	}
}

// openIdle opens c.IdleConnections connections with one channel each, at most
// c.IdleConcurrency at a time, at the broker's heartbeat. It stops early when ctx ends or
// after idleGiveUp failures. Progress goes to out every interval (0: none).
func openIdle(ctx context.Context, c *config, out io.Writer, interval time.Duration) *idleSet {
	s := &idleSet{conns: make([]*amqp.Connection, c.IdleConnections)}
	s.sum.Requested = c.IdleConnections
	if c.BrokerPID > 0 {
		s.broker = strconv.Itoa(c.BrokerPID)
		s.sum.Broker = &idleBroker{}
		if m, err := procMem(s.broker); err == nil {
			s.sum.Broker.RSSBefore, s.sum.Broker.HWMBefore = mibf(m.RSS), mibf(m.HWM)
		}
		if n, err := procFDLimit(s.broker); err == nil {
			s.sum.Broker.FDLimit = n
			// RabbitMQ takes about 0.9 × (limit − 100) sockets, and past that it stalls new
			// connections in the handshake (the client times out after 30 s) rather than
			// refusing them.
			if need, socks := int64(c.IdleConnections+c.Producers+c.Consumers+2), (n-100)*9/10; socks < need {
				logf("the broker's open-file limit is %d: it may not take %d connections (RabbitMQ takes about 0.9 × (limit − 100) = %d sockets, then stalls new connections until the client's 30 s handshake timeout)", n, need, max(socks, 0))
			}
		}
	}

	var next, opened, failed atomic.Int64
	var mu sync.Mutex // guards FirstError
	start := time.Now()
	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if interval > 0 {
		progressDone.Go(func() {
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					fmt.Fprintf(out, "%6.1fs  idle connections opened %d of %d, failed %d\n",
						time.Since(start).Seconds(), opened.Load(), c.IdleConnections, failed.Load())
				case <-stopProgress:
					return
				}
			}
		})
	}
	var wg sync.WaitGroup
	for range min(c.IdleConcurrency, c.IdleConnections) {
		wg.Go(func() {
			for ctx.Err() == nil && failed.Load() < idleGiveUp {
				i := int(next.Add(1) - 1)
				if i >= c.IdleConnections {
					return
				}
				conn, err := openIdleConn(c, i)
				if err != nil {
					if failed.Add(1) == 1 {
						mu.Lock()
						s.sum.FirstError = err.Error()
						mu.Unlock()
					}
					continue
				}
				s.conns[i] = conn
				opened.Add(1)
			}
		})
	}
	wg.Wait()
	close(stopProgress)
	progressDone.Wait()
	s.sum.OpenTime = time.Since(start).Seconds()
	s.sum.Opened, s.sum.Failed = int(opened.Load()), int(failed.Load())
	s.sum.GaveUp = s.sum.Failed >= idleGiveUp && s.sum.Opened+s.sum.Failed < c.IdleConnections
	for _, conn := range s.conns {
		if conn != nil {
			s.sum.Heartbeat = conn.Config.Heartbeat.Seconds()
			break
		}
	}
	if s.broker != "" {
		if m, err := procMem(s.broker); err == nil {
			s.sum.Broker.RSSAfterOpen, s.sum.Broker.HWMAfterOpen = mibf(m.RSS), mibf(m.HWM)
		}
	}
	logf("opened %d of %d idle connections in %.2fs (%d failed)", s.sum.Opened, c.IdleConnections, s.sum.OpenTime, s.sum.Failed)
	return s
}

func openIdleConn(c *config, i int) (*amqp.Connection, error) {
	conn, err := dialHeartbeat(c, "idle "+strconv.Itoa(i), brokerHeartbeat)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Channel(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("idle %d: channel.open: %w", i, err)
	}
	return conn, nil
}

// finish records the state at the end of the run, while the connections are still open.
func (s *idleSet) finish() *idleSummary {
	for _, conn := range s.conns {
		if conn != nil && !conn.IsClosed() {
			s.sum.StillOpen++
		}
	}
	if m, err := procMem("self"); err == nil {
		s.sum.ClientRSS = mibf(m.RSS)
	}
	if b := s.sum.Broker; b != nil {
		if m, err := procMem(s.broker); err == nil {
			b.RSSEnd, b.HWMEnd = mibf(m.RSS), mibf(m.HWM)
			if s.sum.Opened > 0 {
				b.KiBPerConn = (b.RSSEnd - b.RSSBefore) * 1024 / float64(s.sum.Opened)
			}
		}
	}
	return &s.sum
}

// err describes the connections that failed to open or were closed during the run.
func (s *idleSet) err() error {
	var msgs []string
	if s.sum.Failed > 0 {
		m := fmt.Sprintf("%d of %d idle connections failed to open", s.sum.Failed, s.sum.Requested)
		if s.sum.GaveUp {
			m += fmt.Sprintf(" (gave up after %d failures)", idleGiveUp)
		}
		msgs = append(msgs, m+"; the first error: "+s.sum.FirstError)
	}
	if lost := s.sum.Opened - s.sum.StillOpen; lost > 0 {
		msgs = append(msgs, fmt.Sprintf("%d idle connections were closed during the run", lost))
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// close closes the connections, c.IdleConcurrency at a time.
func (s *idleSet) close(concurrency int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(concurrency, len(s.conns)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(s.conns) {
					return
				}
				if conn := s.conns[i]; conn != nil {
					conn.Close()
				}
			}
		})
	}
	wg.Wait()
}

func mibf(b int64) float64 { return float64(b) / (1 << 20) }

// procFDLimit returns a process's soft limit on open files, from /proc/PID/limits.
func procFDLimit(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/limits")
	if err != nil {
		return 0, err
	}
	return parseFDLimit(b)
}

// parseFDLimit reads the soft limit of the "Max open files" line of /proc/PID/limits.
func parseFDLimit(b []byte) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Max open files")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			break
		}
		if f[0] == "unlimited" {
			return 1<<63 - 1, nil
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("/proc limits: no \"Max open files\" line")
}
