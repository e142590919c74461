package main

import (
	"context"
	"time"
)

// limiter paces one producer to a fixed rate: message n is due at start + n/rate. It sleeps
// only when at least minSleep ahead of schedule (the OS cannot sleep much less precisely),
// and after falling more than maxBehind behind (a broker stall) it restarts the schedule
// instead of bursting to catch up.
type limiter struct {
	interval  time.Duration
	next      time.Time
	now       func() time.Time
	sleep     func(context.Context, time.Duration) bool
	minSleep  time.Duration
	maxBehind time.Duration
}

func newLimiter(rate float64) *limiter {
	return &limiter{
		interval:  time.Duration(float64(time.Second) / rate),
		now:       time.Now,
		sleep:     sleepCtx,
		minSleep:  500 * time.Microsecond,
		maxBehind: time.Second,
	}
}

// wait blocks until the next message is due; false when ctx ended first.
func (l *limiter) wait(ctx context.Context) bool {
	now := l.now()
	if l.next.IsZero() || now.Sub(l.next) > l.maxBehind {
		l.next = now
	}
	if ahead := l.next.Sub(now); ahead >= l.minSleep {
		if !l.sleep(ctx, ahead) {
			return false
		}
	}
	l.next = l.next.Add(l.interval)
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
