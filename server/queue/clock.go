package queue

import "time"

// Clock is the queue's only source of time. The queue reads it for deadlines (TTL), for publisher
// flow control, and to be called back when its earliest deadline or a read retry is due.
//
// The design is a clock with callbacks rather than a NextDeadline/Tick pair the owner would
// poll: the queue stays the one place that knows its deadlines, and its owner needs no timer
// loop per queue. A deterministic driver gets the same effect as Tick from its own Clock: the
// scenario tests' fake clock runs the callbacks that are due when the script advances time,
// and a replicated log could do the same with its entries' timestamps.
type Clock interface {
	// Now is the current time in Unix milliseconds.
	Now() int64
	// At arranges for f to run once at time at (Unix milliseconds), or as soon after it as it
	// can, on a goroutine that holds no lock of the queue. A time already past runs f soon.
	At(at int64, f func()) Timer
}

// Timer is a callback armed with Clock.At.
type Timer interface {
	// Stop cancels the callback; it reports false when the callback already ran or started.
	Stop() bool
}

// RealClock is the wall clock, for production.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() int64 { return time.Now().UnixMilli() }

// At implements Clock with time.AfterFunc.
func (c RealClock) At(at int64, f func()) Timer {
	return time.AfterFunc(time.Duration(at-c.Now())*time.Millisecond, f)
}
