package forward

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Output buffer bounds: a consumer's deliveries wait (Sink.Deliver refuses) beyond
// deliverHighWater bytes not yet written; a publisher waits beyond publishHighWater.
const (
	deliverHighWater = 1 << 20
	publishHighWater = 4 << 20
	// keepSpare is the largest write buffer kept for reuse.
	keepSpare = 1 << 20
)

// wire is one stream's output: frames are appended to buf and a writer goroutine moves
// whatever accumulated while it was writing in one write, so a pipeline of small frames is
// coalesced and flushed as soon as it drains.
type wire struct {
	conn net.Conn
	// recv counts the frames read (the reader adds to it) and busy is set while the reader
	// handles one, for the heartbeat watch: a reader stuck in its own work (a publish
	// waiting for the disk) is not a silent peer.
	recv atomic.Uint64
	busy atomic.Bool

	mu    sync.Mutex
	cond  sync.Cond // the writer waits for data, publishers for room, on it
	buf   []byte
	spare []byte
	err   error // why the wire is closed; nil while it works
	done  chan struct{}
	// waiting were refused room by waitDrain; the writer kicks them after its next write.
	waiting []kicker
	// deferred are answers to write once their settle has run on the writer (answerAfter);
	// stopped is set when the writer has exited, after which settles run where they come.
	deferred []deferredAnswer
	stopped  bool
}

// deferredAnswer is an answer frame waiting for its settle work.
type deferredAnswer struct {
	f      frame
	settle func()
}

// kicker is told when the wire has drained.
type kicker interface{ kick() }

func newWire(conn net.Conn) *wire {
	w := &wire{conn: conn, done: make(chan struct{})}
	w.cond.L = &w.mu
	return w
}

// send appends f; it fails only when the wire is closed.
func (w *wire) send(f *frame) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sendLocked(f)
}

func (w *wire) sendLocked(f *frame) error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		w.cond.Broadcast()
	}
	w.buf = appendFrame(w.buf, f)
	return nil
}

// sendWhenRoom is send after waiting for the buffer to fall below publishHighWater.
func (w *wire) sendWhenRoom(f *frame) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.buf) > publishHighWater && w.err == nil {
		w.cond.Wait()
	}
	return w.sendLocked(f)
}

// waitDrain says whether deliveries should wait for the buffer to drain; if so, k is kicked
// after the writer's next write. (Registering under the lock the writer swaps the buffer
// under means no drain can slip between the check and the registration.)
func (w *wire) waitDrain(k kicker) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) <= deliverHighWater {
		return false
	}
	w.waiting = append(w.waiting, k)
	return true
}

// answerAfter writes f after running settle on the writer goroutine, so the goroutine that
// calls it (a store's writer completing a publish) only records the outcome. Once the writer
// has stopped, settle runs at once on the caller and f is dropped: the stream is gone.
func (w *wire) answerAfter(f *frame, settle func()) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		settle()
		return
	}
	if len(w.buf) == 0 && len(w.deferred) == 0 {
		w.cond.Broadcast()
	}
	w.deferred = append(w.deferred, deferredAnswer{f: *f, settle: settle})
	w.mu.Unlock()
}

// run is the writer goroutine; it returns when the wire is closed or a write fails, running
// the settles still deferred.
func (w *wire) run(onErr func(error)) {
	defer func() {
		w.mu.Lock()
		w.stopped = true
		rest := w.deferred
		w.deferred = nil
		w.mu.Unlock()
		for _, d := range rest {
			d.settle()
		}
		close(w.done)
	}()
	for {
		w.mu.Lock()
		for len(w.buf) == 0 && len(w.deferred) == 0 && w.err == nil {
			w.cond.Wait()
		}
		if w.err != nil {
			w.mu.Unlock()
			return
		}
		if ds := w.deferred; len(ds) > 0 {
			w.deferred = nil
			w.mu.Unlock()
			for _, d := range ds {
				d.settle()
			}
			w.mu.Lock()
			for i := range ds {
				w.buf = appendFrame(w.buf, &ds[i].f)
			}
		}
		b := w.buf
		w.buf, w.spare = w.spare[:0], nil
		w.cond.Broadcast()
		w.mu.Unlock()
		_, err := w.conn.Write(b)
		if err != nil {
			onErr(err)
			return
		}
		w.mu.Lock()
		if cap(b) <= keepSpare {
			w.spare = b[:0]
		}
		waiting := w.waiting
		w.waiting = nil
		w.mu.Unlock()
		for _, k := range waiting {
			k.kick()
		}
	}
}

// close stops the wire with err (first one wins) and closes the stream; the writer exits.
func (w *wire) close(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	w.mu.Unlock()
	// A yamux stream's Close is a half-close: a Read (or a Write waiting for window) would
	// wait for a silent peer's answer. The deadline ends them now.
	_ = w.conn.SetDeadline(time.Now())
	_ = w.conn.Close()
}

// closed is why the wire was closed, or nil.
func (w *wire) closed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// DefaultHeartbeat is how often each end of a stream sends a ping; an end that has read
// nothing for missedBeats intervals takes the other for dead (a paused or partitioned node,
// whose connection stays open) and breaks the stream.
const (
	DefaultHeartbeat = 2 * time.Second
	missedBeats      = 3
)

// watch sends a ping every interval and calls dead once nothing was read for missedBeats
// intervals; it returns then, or when the writer has exited.
func (w *wire) watch(interval time.Duration, dead func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last, missed := w.recv.Load(), 0
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		_ = w.send(&frame{typ: tPing})
		if n := w.recv.Load(); n != last || w.busy.Load() {
			last, missed = n, 0
			continue
		}
		if missed++; missed >= missedBeats {
			dead(fmt.Errorf("nothing heard from the other node in %s (heartbeat)", time.Duration(missed)*interval))
			return
		}
	}
}
