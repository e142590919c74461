package server

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
)

// Resource alarms, RabbitMQ's memory and disk alarms (see docs/configuration.md, "Alarms").
//
// While an alarm is active, a connection that publishes is blocked: its reader stops at the
// next content frame (header or body) it reads, before handling it, so the message is neither
// enqueued nor confirmed, and TCP holds the client back. A client that announced the
// connection.blocked capability is told once, with RabbitMQ's reason ("low on memory", "low on
// disk", "low on memory & disk"), and gets connection.unblocked when the last alarm clears.
// Connections that only consume are never blocked or notified: their consumers keep taking and
// acking messages, which is how memory and disk come back. As in RabbitMQ 3.10, a connection
// that both publishes and consumes is blocked as a whole once it publishes.

// alarmKind is one resource alarm.
type alarmKind uint32

const (
	alarmMemory alarmKind = 1 << iota
	alarmDisk
)

func (k alarmKind) String() string {
	if k == alarmMemory {
		return "memory"
	}
	return "disk"
}

// alarms is the set of active resource alarms.
type alarms struct {
	log    zerolog.Logger
	active atomic.Uint32 // alarmKind bits; read on every content frame

	mu      sync.Mutex
	raised  []alarmKind   // active ones in the order they were raised, for the reason text
	cleared chan struct{} // closed when the last alarm clears; replaced when one is raised
}

func newAlarms(log zerolog.Logger) *alarms {
	a := &alarms{log: log, cleared: make(chan struct{})}
	close(a.cleared)
	return a
}

// any reports whether an alarm is active: one atomic load.
func (a *alarms) any() bool { return a.active.Load() != 0 }

// set raises or clears one alarm and reports whether that changed anything.
func (a *alarms) set(k alarmKind, on bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	was := alarmKind(a.active.Load())
	if (was&k != 0) == on {
		return false
	}
	if on {
		if was == 0 {
			a.cleared = make(chan struct{})
		}
		a.raised = append(a.raised, k)
		a.active.Store(uint32(was | k))
		return true
	}
	for i, r := range a.raised {
		if r == k {
			a.raised = append(a.raised[:i], a.raised[i+1:]...)
			break
		}
	}
	a.active.Store(uint32(was &^ k))
	if was&^k == 0 {
		close(a.cleared)
	}
	return true
}

// state returns the channel closed when no alarm is active any more and the reason text for
// connection.blocked; the reason is "" when no alarm is active.
func (a *alarms) state() (cleared <-chan struct{}, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.raised) == 0 {
		return a.cleared, ""
	}
	names := make([]string, len(a.raised))
	for i, k := range a.raised {
		names[i] = k.String()
	}
	return a.cleared, "low on " + strings.Join(names, " & ")
}

// waitForAlarms blocks the reader while an alarm is active: the connection is publishing (it
// sent a content frame), so it must not go on until the alarms clear or the connection is
// being closed.
func (c *conn) waitForAlarms() {
	a := c.srv.alarms
	cleared, reason := a.state()
	if reason == "" {
		return
	}
	c.alarmHeld.Store(true)
	defer c.alarmHeld.Store(false)
	notify := c.capBlocked
	if notify {
		c.send(0, &amqpwire.ConnectionBlocked{Reason: reason})
	}
	c.log.Debug().Str("reason", reason).Msg("connection blocked: publishing paused by a resource alarm")
	for {
		select {
		case <-cleared:
		case <-c.stop:
			return // closing: the frame is discarded by the close handling
		}
		// Another alarm may have been raised between the clear and now.
		if cleared, reason = a.state(); reason == "" {
			break
		}
	}
	if notify {
		c.send(0, &amqpwire.ConnectionUnblocked{})
	}
	c.log.Debug().Msg("connection unblocked")
	// The read deadline was not moved while blocked: move it now, or the next read times out.
	c.deadlineSet = time.Time{}
}
