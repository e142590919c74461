package server

import (
	"errors"
	"sync"
	"time"
)

const (
	// loginFailureInterval spaces the failed logins of one source address: at most 50 a second,
	// bursts included.
	loginFailureInterval = 20 * time.Millisecond
	// loginLimitSources bounds the addresses tracked at once. Only addresses whose failures
	// are ahead of the clock are kept; beyond the bound they share one schedule.
	loginLimitSources = 4096
)

// errShuttingDown ends a handshake that was waiting for its login slot when the broker stopped.
var errShuttingDown = errors.New("broker shutting down")

// loginLimiter slows password guessing per source address without ever refusing a correct
// password. Each failed login of a source takes the next free slot on that source's schedule,
// one every interval, and its refusal is sent only when the slot comes; while a source has
// failures scheduled ahead of the clock, its next attempts are also checked one per slot, so
// an attacker who does not wait for refusals gets no more guesses checked. A source without
// recent failures is never delayed.
type loginLimiter struct {
	interval   time.Duration
	maxSources int

	mu       sync.Mutex
	next     map[string]time.Time // source → its next free slot, always after the last check
	overflow time.Time            // the schedule shared by sources beyond maxSources
	pruned   time.Time

	closeOnce sync.Once
	done      chan struct{} // closed when the broker shuts down: waits end
}

func newLoginLimiter(interval time.Duration, maxSources int) *loginLimiter {
	return &loginLimiter{interval: interval, maxSources: maxSources, next: make(map[string]time.Time),
		done: make(chan struct{})}
}

// admit is called before an attempt from src is checked. For a source with failures
// scheduled ahead of now it takes the next slot and returns it (reserved); otherwise it
// returns now.
func (l *loginLimiter) admit(src string, now time.Time) (at time.Time, reserved bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	next, ok := l.next[src]
	if !ok {
		return now, false
	}
	if !next.After(now) {
		delete(l.next, src)
		return now, false
	}
	l.next[src] = next.Add(l.interval)
	return next, true
}

// failed schedules the refusal of a failed attempt from src that did not reserve a slot in
// admit, and returns when it may be sent.
func (l *loginLimiter) failed(src string, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	take := func(next time.Time) time.Time {
		if next.Before(now) {
			next = now
		}
		return next
	}
	if next, ok := l.next[src]; ok {
		at := take(next)
		l.next[src] = at.Add(l.interval)
		return at
	}
	if len(l.next) >= l.maxSources {
		l.prune(now)
	}
	if len(l.next) >= l.maxSources {
		at := take(l.overflow)
		l.overflow = at.Add(l.interval)
		return at
	}
	l.next[src] = now.Add(l.interval)
	return now
}

// prune forgets the sources with nothing scheduled ahead of now, at most once an interval so
// a full table of busy sources does not cost a scan per attempt. Called with mu held.
func (l *loginLimiter) prune(now time.Time) {
	if now.Sub(l.pruned) < l.interval {
		return
	}
	l.pruned = now
	for src, next := range l.next {
		if !next.After(now) {
			delete(l.next, src)
		}
	}
}

// sources is how many addresses are tracked, for tests.
func (l *loginLimiter) sources() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.next)
}

// wait sleeps until at, or until the broker shuts down.
func (l *loginLimiter) wait(at time.Time) error {
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-l.done:
		return errShuttingDown
	}
}

func (l *loginLimiter) close() {
	l.closeOnce.Do(func() { close(l.done) })
}

// loginTurn is one login attempt's place on its source's schedule.
type loginTurn struct {
	src      string
	reserved bool // the attempt was checked in a slot of its own (admit)
}

// awaitLoginTurn waits, when the peer's address has failed logins scheduled ahead of the
// clock, for this attempt's slot. Time spent waiting does not count against the handshake
// timeout: the rest of the handshake gets a fresh one.
func (c *conn) awaitLoginTurn() (loginTurn, error) {
	lim := c.srv.loginLimit
	turn := loginTurn{src: peerIP(c.nc.RemoteAddr())}
	at, reserved := lim.admit(turn.src, time.Now())
	turn.reserved = reserved
	if reserved {
		if err := c.waitLoginSlot(at); err != nil {
			return turn, err
		}
	}
	return turn, nil
}

// awaitRefusal waits until the failed attempt may be refused.
func (c *conn) awaitRefusal(turn loginTurn) error {
	if turn.reserved {
		return nil
	}
	return c.waitLoginSlot(c.srv.loginLimit.failed(turn.src, time.Now()))
}

func (c *conn) waitLoginSlot(at time.Time) error {
	if !at.After(time.Now()) {
		return nil
	}
	if err := c.srv.loginLimit.wait(at); err != nil {
		return err
	}
	_ = c.nc.SetDeadline(time.Now().Add(c.srv.cfg.HandshakeTimeout))
	return nil
}
