package queue

import (
	"errors"
	"sort"
	"testing"
)

// fakeClock is a Clock the test drives: time moves only in advance, which runs the callbacks
// that fall due, in time order, on the test's goroutine.
type fakeClock struct {
	now    int64
	timers []*fakeTimer
}

type fakeTimer struct {
	at      int64
	f       func()
	stopped bool
}

// newFakeClock returns a fake clock at an arbitrary epoch (not 0, which some state takes for
// "never").
func newFakeClock() *fakeClock { return &fakeClock{now: fakeEpoch} }

const fakeEpoch = 1_000_000

func (t *fakeTimer) Stop() bool {
	was := !t.stopped
	t.stopped = true
	return was
}

func (c *fakeClock) Now() int64 { return c.now }

func (c *fakeClock) At(at int64, f func()) Timer {
	t := &fakeTimer{at: at, f: f}
	c.timers = append(c.timers, t)
	return t
}

// advance moves the clock forward by ms, running each callback at its time.
func (c *fakeClock) advance(ms int64) {
	to := c.now + ms
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.stopped && t.at <= to && (next == nil || t.at < next.at) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.stopped = true
		c.now = max(c.now, next.at)
		next.f()
	}
	c.now = to
	live := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped {
			live = append(live, t)
		}
	}
	c.timers = live
}

// fakeStore is what the journals of one queue share, as they share the store: the group commit
// (writes become durable only at commit) and the reads requested and not yet answered.
type fakeStore struct {
	uncommit []func()
	reads    []func(fail error)
}

// commit makes every submitted write durable, in order, and runs its callback.
func (s *fakeStore) commit() {
	for len(s.uncommit) > 0 {
		fs := s.uncommit
		s.uncommit = nil
		for _, f := range fs {
			f()
		}
	}
}

// answer hands back every read requested so far (failing them with fail if not nil) and
// reports how many there were.
func (s *fakeStore) answer(fail error) int {
	rs := s.reads
	s.reads = nil
	for _, r := range rs {
		r(fail)
	}
	return len(rs)
}

// settle answers reads until none is outstanding (an answer can lead to the next read).
func (s *fakeStore) settle() {
	for s.answer(nil) > 0 {
	}
}

// fakeJournal keeps records in a map; appends are durable only when the store commits, as with
// the group-commit writer, and reads are answered only when the test says so.
type fakeJournal struct {
	st        *fakeStore
	records   map[uint64]*Entry
	durable   map[uint64]bool
	reads     int
	appends   int
	setDelivs int
}

func newFakeJournal() *fakeJournal { return (&fakeJournal{}).level() }

// level returns another journal over the same store (a priority level's).
func (j *fakeJournal) level() *fakeJournal {
	st := j.st
	if st == nil {
		st = &fakeStore{}
	}
	return &fakeJournal{st: st, records: map[uint64]*Entry{}, durable: map[uint64]bool{}}
}

func (j *fakeJournal) commit() { j.st.commit() }
func (j *fakeJournal) settle() { j.st.settle() }

func (j *fakeJournal) Append(e *Entry, durable bool, done func(error)) {
	j.appends++
	j.st.uncommit = append(j.st.uncommit, func() {
		j.records[e.Seq] = &Entry{Msg: e.Msg, Seq: e.Seq, Stored: true, Expires: e.Expires}
		j.durable[e.Seq] = durable
		if done != nil {
			done(nil)
		}
	})
}

func (j *fakeJournal) Remove(e *Entry) {
	j.st.uncommit = append(j.st.uncommit, func() { delete(j.records, e.Seq) })
}

func (j *fakeJournal) SetDeliveries(*Entry) { j.setDelivs++ }

func (j *fakeJournal) Read(after uint64, maxCount, maxBytes int, done func([]*Entry, error)) {
	j.reads++
	j.st.reads = append(j.st.reads, func(fail error) {
		if fail != nil {
			done(nil, fail)
			return
		}
		done(j.read(after, maxCount, maxBytes), nil)
	})
}

// read is what the journal holds at the time the read is answered.
func (j *fakeJournal) read(after uint64, maxCount, maxBytes int) []*Entry {
	var seqs []uint64
	for s := range j.records {
		if s > after {
			seqs = append(seqs, s)
		}
	}
	sort.Slice(seqs, func(a, b int) bool { return seqs[a] < seqs[b] })
	var out []*Entry
	bytes := 0
	for _, s := range seqs {
		if len(out) == maxCount || (len(out) > 0 && bytes >= maxBytes) {
			break
		}
		r := j.records[s]
		out = append(out, &Entry{Msg: r.Msg, Seq: r.Seq, Stored: true, Expires: r.Expires})
		bytes += r.Msg.Size()
	}
	return out
}

func (j *fakeJournal) Drop(after, through uint64) {
	j.st.uncommit = append(j.st.uncommit, func() {
		for s := range j.records {
			if s > after && s <= through {
				delete(j.records, s)
			}
		}
	})
}

var errFakeRead = errors.New("fake journal: read failed")

// take is Get for tests: it answers the reads Get would wait for (all of j's store's).
func take(t *testing.T, q *Queue, j *fakeJournal, noAck bool) *Entry {
	t.Helper()
	for {
		e, _, wait := q.TryGet(noAck)
		if wait == nil {
			return e
		}
		if j == nil || j.st.answer(nil) == 0 {
			t.Fatal("Get waits for a read-back that was never requested")
		}
	}
}
