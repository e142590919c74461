package main

import (
	"context"
	"testing"
	"time"
)

// fakeClock drives a limiter: sleeping advances the clock.
type fakeClock struct {
	now    time.Time
	slept  time.Duration
	sleeps int
}

func newFakeLimiter(rate float64) (*limiter, *fakeClock) {
	fc := &fakeClock{now: time.Unix(1000, 0)}
	l := newLimiter(rate)
	l.now = func() time.Time { return fc.now }
	l.sleep = func(_ context.Context, d time.Duration) bool {
		fc.now = fc.now.Add(d)
		fc.slept += d
		fc.sleeps++
		return true
	}
	return l, fc
}

func TestLimiterPaces(t *testing.T) {
	l, fc := newFakeLimiter(1000) // 1 ms apart
	start := fc.now
	for range 1001 {
		if !l.wait(context.Background()) {
			t.Fatal("wait returned false")
		}
	}
	// 1001 messages at 1000/s: the last is due 1 s after the first.
	if got := fc.now.Sub(start); got != time.Second {
		t.Fatalf("1001 messages took %v", got)
	}
}

func TestLimiterBatchesShortSleeps(t *testing.T) {
	l, fc := newFakeLimiter(100000) // 10 µs apart: sleep only every 50 messages or so
	start := fc.now
	for range 100001 {
		l.wait(context.Background())
	}
	if got := fc.now.Sub(start); got < 999*time.Millisecond || got > time.Second {
		t.Fatalf("100001 messages took %v", got)
	}
	if fc.sleeps > 2100 {
		t.Fatalf("%d sleeps: short sleeps are not batched", fc.sleeps)
	}
}

func TestLimiterCatchesUpButNotAfterStall(t *testing.T) {
	l, fc := newFakeLimiter(1000)
	l.wait(context.Background())
	// The producer was slow for 100 ms (a publish blocked): the next 100 go out at once.
	fc.now = fc.now.Add(100 * time.Millisecond)
	before := fc.slept
	for range 100 {
		l.wait(context.Background())
	}
	if fc.slept != before {
		t.Fatalf("slept %v while behind schedule", fc.slept-before)
	}
	// After a stall longer than maxBehind the schedule restarts: no burst.
	fc.now = fc.now.Add(10 * time.Second)
	l.wait(context.Background())
	before = fc.slept
	l.wait(context.Background())
	if fc.slept-before != time.Millisecond {
		t.Fatalf("after a long stall the second message slept %v, want 1ms", fc.slept-before)
	}
}

func TestLimiterStopsOnCancel(t *testing.T) {
	l := newLimiter(0.5) // 2 s apart
	ctx, cancel := context.WithCancel(context.Background())
	if !l.wait(ctx) {
		t.Fatal("first message should go at once")
	}
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	t0 := time.Now()
	if l.wait(ctx) {
		t.Fatal("wait returned true after cancel")
	}
	if time.Since(t0) > time.Second {
		t.Fatal("cancel did not interrupt the sleep")
	}
}
