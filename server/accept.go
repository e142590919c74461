package server

import (
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Accept back-off bounds: the first retry after a failed accept waits acceptBackoffMin, each
// further failure in a row doubles the wait up to acceptBackoffMax.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	// acceptSummaryEvery is how often a run of failed accepts is logged while it lasts.
	acceptSummaryEvery = 10 * time.Second
)

// retryableAccept reports whether a failed Accept can succeed later: the process or the system
// is out of file descriptors or buffers, or one queued connection went away before it was
// accepted. Anything else (a closed listener) ends Serve.
func retryableAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.EPERM, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// acceptBackoff paces Accept retries and logs a run of failures in summary: the first failure
// at once, then one line per acceptSummaryEvery with the count, and one when accepting works
// again. Owned by one Serve loop.
type acceptBackoff struct {
	log      zerolog.Logger
	addr     string
	delay    time.Duration
	failures int       // in the current run
	since    time.Time // first failure of the run
	logged   time.Time // last summary line
	unlogged int       // failures since the last line
}

// failed records a retryable accept error and returns how long to wait before the next Accept.
func (b *acceptBackoff) failed(err error, now time.Time) time.Duration {
	b.delay = min(max(2*b.delay, acceptBackoffMin), acceptBackoffMax)
	b.failures++
	b.unlogged++
	switch {
	case b.failures == 1:
		b.since, b.logged, b.unlogged = now, now, 0
		b.log.Warn().Err(err).Str("addr", b.addr).Dur("retry_in", b.delay).
			Msg("accept failed; retrying with back-off (further failures are logged in summary)")
	case now.Sub(b.logged) >= acceptSummaryEvery:
		b.log.Warn().Err(err).Str("addr", b.addr).Int("failures", b.unlogged).Dur("interval", now.Sub(b.logged)).
			Dur("failing_for", now.Sub(b.since)).Dur("retry_in", b.delay).Msg("accept still failing")
		b.logged, b.unlogged = now, 0
	}
	return b.delay
}

// succeeded ends a run of failures, logging how long it lasted.
func (b *acceptBackoff) succeeded(now time.Time) {
	if b.failures == 0 {
		return
	}
	b.log.Info().Str("addr", b.addr).Int("failures", b.failures).Dur("failed_for", now.Sub(b.since)).
		Msg("accepting connections again")
	b.failures, b.unlogged, b.delay = 0, 0, 0
}
