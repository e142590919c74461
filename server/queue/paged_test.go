package queue

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// drain takes every ready entry with basic.get, answering the reads of j's store on the way.
func drain(t *testing.T, q *Queue, j *fakeJournal) string {
	t.Helper()
	var out string
	for {
		e := take(t, q, j, false)
		if e == nil {
			return out
		}
		out += string(e.Msg.Body) + ","
		q.Settle([]*Entry{e})
	}
}

func TestPagedBacklogKeepsOrderAcrossWindowDiskAndPending(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Journal: j, Window: Window{Count: 3, Bytes: 1 << 20}})
	for i := 1; i <= 10; i++ {
		q.Publish(&Message{Body: []byte(fmt.Sprint(i))}, nil)
		if i == 6 {
			j.commit() // 4..6 reach disk; 7..10 stay pending
		}
	}
	pb := q.backlog.(*PagedBacklog)
	if pb.InMemory() != 7 || q.Stats().Ready != 10 {
		t.Fatalf("in memory %d (want 3 window + 4 pending), ready %d", pb.InMemory(), q.Stats().Ready)
	}
	if len(j.records) != 3 {
		t.Fatalf("%d records on disk, want 3 (transient page-outs 4..6)", len(j.records))
	}
	if j.durable[4] {
		t.Error("a paged-out transient message was written durable")
	}
	if got := drain(t, q, j); got != "1,2,3,4,5,6,7,8,9,10," {
		t.Errorf("order %s", got)
	}
	j.commit()
	if len(j.records) != 0 {
		t.Errorf("%d records left after acking everything", len(j.records))
	}
}

func TestPagedBacklogDropsBodiesOnceCommitted(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Journal: j, Window: Window{Count: 2, Bytes: 1 << 20}})
	for i := 0; i < 100; i++ {
		q.Publish(&Message{Body: make([]byte, 100)}, nil)
	}
	j.commit()
	q.Publish(&Message{Body: make([]byte, 100)}, nil) // settles the committed pending prefix
	pb := q.backlog.(*PagedBacklog)
	if pb.InMemory() != 3 {
		t.Errorf("in memory %d, want the window (2) and the newest pending entry", pb.InMemory())
	}
	if st := q.Stats(); st.Ready != 101 || st.ReadyBytes != 10100 {
		t.Errorf("stats %+v, want 101 ready, 10100 bytes", st)
	}
}

func TestPagedBacklogPersistentEntriesWrittenOnceAndConfirmed(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Durable: true, Journal: j, Window: Window{Count: 1, Bytes: 1 << 20}})
	confirmed := 0
	for i := 0; i < 5; i++ {
		_, written := q.Publish(&Message{Body: []byte{'a'}, Persistent: true}, func(err error) {
			if err == nil {
				confirmed++
			}
		})
		if !written {
			t.Fatal("persistent message in a durable queue not written")
		}
	}
	if confirmed != 0 {
		t.Fatalf("confirmed %d before the commit", confirmed)
	}
	if len(j.st.uncommit) != 5 {
		t.Errorf("%d writes submitted, want 5 (paging must not write persistent entries again)", len(j.st.uncommit))
	}
	j.commit()
	if confirmed != 5 || !j.durable[1] {
		t.Errorf("confirmed %d, durable %v", confirmed, j.durable[1])
	}
	_, written := q.Publish(&Message{Body: []byte{'b'}}, nil)
	if written {
		t.Error("a transient message reported a durable write (it may only be paged out)")
	}
}

func TestPagedBacklogPurgeDropsDiskRange(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Durable: true, Journal: j, Window: Window{Count: 2, Bytes: 1 << 20}})
	for i := 0; i < 6; i++ {
		q.Publish(&Message{Body: []byte{'x'}, Persistent: true}, nil)
	}
	j.commit()
	e := take(t, q, j, false) // seq 1 stays unacked through the purge
	if n := q.Purge(); n != 5 {
		t.Errorf("purged %d, want 5", n)
	}
	j.commit()
	if len(j.records) != 1 || j.records[e.Seq] == nil {
		t.Errorf("records after purge: %v, want only the unacked seq %d", j.records, e.Seq)
	}
	q.Requeue([]*Entry{e})
	if j.setDelivs != 1 {
		t.Errorf("requeue recorded %d delivery counts, want 1", j.setDelivs)
	}
	if got := drain(t, q, j); got != "x," {
		t.Errorf("after purge and requeue: %q", got)
	}
}

func TestRecoverReadsBackFromJournal(t *testing.T) {
	j := newFakeJournal()
	for s := uint64(5); s <= 9; s++ {
		j.records[s] = &Entry{Seq: s, Msg: &Message{Body: []byte(fmt.Sprint(s))}, Stored: true}
	}
	q := Recover("q", Options{Durable: true, Journal: j, Window: Window{Count: 2, Bytes: 1 << 20}}, []Restored{{Count: 5, Bytes: 5, First: 5, Last: 9}})
	if st := q.Stats(); st.Ready != 5 {
		t.Fatalf("ready %d, want 5", st.Ready)
	}
	q.Publish(&Message{Body: []byte("10"), Persistent: true}, nil)
	j.commit()
	if got := drain(t, q, j); got != "5,6,7,8,9,10," {
		t.Errorf("order %s", got)
	}
	if j.reads == 0 {
		t.Error("nothing was read back from the journal")
	}
}

// A queue whose backlog swings past the window and back (a burst, then consumers that catch up
// while publishing goes on): only what overflowed the window goes through the disk. The
// messages published while the disk is read back wait in memory behind it.
func TestPagedBacklogWritesOnlyWhatOverflowsTheWindow(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Journal: j, Window: Window{Count: 100, Bytes: 1 << 20}})
	next, want := 0, 0
	pub := func() {
		next++
		q.Publish(&Message{Body: []byte(fmt.Sprint(next))}, nil)
	}
	get := func() {
		e := take(t, q, j, true)
		want++
		if e == nil || string(e.Msg.Body) != fmt.Sprint(want) {
			t.Fatalf("got %v, want message %d", e, want)
		}
	}
	for range 20 {
		for range 150 {
			pub() // 50 over the window
		}
		j.commit()
		for q.Stats().Ready > 10 {
			pub()
			get()
			get()
			j.commit()
		}
	}
	for q.Stats().Ready > 0 {
		get()
	}
	// 20 bursts of 50 over the window, and about 70 publishes during each drain: what must go
	// to disk is the 50 per burst, plus the odd message that finds the window full at the
	// moment the disk has been read back (1,305 of 5,990 here). Before the tail existed every
	// message behind a paged-out one followed it to disk: 5,890.
	if j.appends > next/4 {
		t.Errorf("%d of %d messages were written to disk; want little more than the %d that overflowed the window", j.appends, next, 20*50)
	}
	if want != next {
		t.Errorf("got %d of %d", want, next)
	}
}

// Behind entries on disk, new ones stay in memory while the window has room; when it has none,
// the oldest of them is paged out first, so the order holds.
func TestPagedBacklogTailPagesOutOldestFirst(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Journal: j, Window: Window{Count: 4, Bytes: 1 << 20}})
	publish(q, "1", "2", "3", "4", "5", "6") // 5 and 6 overflow the window
	j.commit()
	for range 2 {
		take(t, q, j, true) // 1 and 2: the window has room for two
	}
	publish(q, "7", "8")
	if j.appends != 2 {
		t.Fatalf("%d records written, want 2 (5 and 6; 7 and 8 fit the window)", j.appends)
	}
	publish(q, "9") // no room: 7, the oldest behind the disk, goes out
	if j.appends != 3 {
		t.Fatalf("%d records written, want 3", j.appends)
	}
	j.commit()
	if j.records[7] == nil {
		t.Fatalf("records %v: 7 was not the one paged out", j.records)
	}
	pb := q.backlog.(*PagedBacklog)
	if n := pb.mem.Len() + pb.tail.Len(); n != 4 || q.Stats().Ready != 7 {
		t.Errorf("window holds %d, ready %d; want 4 and 7", n, q.Stats().Ready)
	}
	if got := drain(t, q, j); got != "3,4,5,6,7,8,9," {
		t.Errorf("order %s", got)
	}
}

// A message with a TTL that waits in memory behind messages on disk expires on time.
func TestPagedBacklogTailEntryExpires(t *testing.T) {
	sink := make(deadSink, 10)
	j := newFakeJournal()
	clk := newFakeClock()
	q := New("q", Options{Journal: j, Window: Window{Count: 2, Bytes: 1 << 20}, Features: NoFeatures, DeadLetter: sink.hook, Clock: clk})
	publish(q, "a", "b", "c", "d")
	j.commit()
	take(t, q, j, true)
	q.Publish(ttlMsg("short", 30), nil) // behind c and d, in memory
	clk.advance(30)
	sink.none(t)
	clk.advance(1)
	if d := sink.next(t); string(d.Entry.Msg.Body) != "short" || d.Reason != Expired {
		t.Fatalf("dead %q %s", d.Entry.Msg.Body, d.Reason)
	}
	if st := q.Stats(); st.Ready != 3 {
		t.Errorf("ready %d after the expiry, want 3", st.Ready)
	}
	if got := drain(t, q, j); got != "b,c,d," {
		t.Errorf("order %s", got)
	}
}

// Under a queue-wide TTL the messages on disk are older than those behind them in memory, so
// they expire first.
func TestPagedBacklogQueueTTLExpiresDiskBeforeTail(t *testing.T) {
	sink := make(deadSink, 10)
	j := newFakeJournal()
	opts := withFeatures(func(f *Features) { f.HasTTL, f.MessageTTL = true, 200*time.Millisecond })
	opts.Journal, opts.Window, opts.DeadLetter = j, Window{Count: 2, Bytes: 1 << 20}, sink.hook
	clk := opts.Clock.(*fakeClock)
	q := New("q", opts)
	publish(q, "1", "2", "3", "4") // 3 and 4 on disk
	j.commit()
	take(t, q, j, true)
	clk.advance(50)
	publish(q, "5")     // behind 3 and 4, in memory
	take(t, q, j, true) // the window is empty now, 3 and 4 still on disk
	clk.advance(151)    // past the deadline of 1..4: the queue reads 3 and 4 back
	j.settle()
	clk.advance(0)
	var got string
	for range 2 {
		got += string(sink.next(t).Entry.Msg.Body)
	}
	clk.advance(50) // past 5's
	got += string(sink.next(t).Entry.Msg.Body)
	if got != "345" {
		t.Errorf("expired in the order %s, want 345", got)
	}
}

// Purge counts and drops the entries behind the disk too.
func TestPagedBacklogPurgeDropsTail(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Durable: true, Journal: j, Window: Window{Count: 2, Bytes: 1 << 20}})
	for range 4 {
		q.Publish(&Message{Body: []byte{'x'}, Persistent: true}, nil)
	}
	j.commit()
	take(t, q, j, true)
	q.Publish(&Message{Body: []byte{'y'}, Persistent: true}, nil) // behind the disk, stored
	j.commit()
	if n := q.Purge(); n != 4 {
		t.Errorf("purged %d, want 4", n)
	}
	j.commit()
	if len(j.records) != 0 {
		t.Errorf("records after purge: %v", j.records)
	}
	if got := drain(t, q, j); got != "" {
		t.Errorf("left after purge: %q", got)
	}
}

// readRequested reports whether j's store has a read waiting for an answer. Reads are
// requested under the queue's lock, so taking it makes the check safe from another goroutine.
func readRequested(q *Queue, j *fakeJournal) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(j.st.reads) > 0
}

// basic.get on a queue whose next message is on disk waits for the read-back rather than
// answer get-empty, and waits without the queue's lock: a publish goes through meanwhile.
func TestGetWaitsForReadBackUnlocked(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Journal: j, Window: Window{Count: 1, Bytes: 1 << 20}, Clock: newFakeClock()})
	publish(q, "a", "b")
	j.commit()
	if e := take(t, q, j, true); e == nil || string(e.Msg.Body) != "a" {
		t.Fatalf("first get = %v, want a", e)
	}
	got := make(chan *Entry)
	go func() {
		e, _ := q.Get(true)
		got <- e
	}()
	for !readRequested(q, j) {
		runtime.Gosched() // until Get asked for b
	}
	publish(q, "c") // would deadlock if Get held the lock
	j.st.answer(nil)
	if e := <-got; e == nil || string(e.Msg.Body) != "b" {
		t.Fatalf("waiting get = %v, want b", e)
	}
	if st := q.Stats(); st.Ready != 1 {
		t.Errorf("ready %d, want 1 (c)", st.Ready)
	}
}

// A get waiting for a read-back is released by the queue's deletion, with nothing.
func TestGetWaitingForReadBackReleasedByDelete(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Journal: j, Window: Window{Count: 1, Bytes: 1 << 20}, Clock: newFakeClock()})
	publish(q, "a", "b")
	j.commit()
	take(t, q, j, true)
	got := make(chan *Entry)
	go func() {
		e, _ := q.Get(true)
		got <- e
	}()
	for !readRequested(q, j) {
		runtime.Gosched()
	}
	if _, n := q.Delete(); n != 1 {
		t.Errorf("delete dropped %d, want 1", n)
	}
	if e := <-got; e != nil {
		t.Fatalf("get after delete = %q, want nothing", e.Msg.Body)
	}
	j.st.answer(nil) // the read comes back to a deleted queue: dropped
	if st := q.Stats(); st.Ready != 0 {
		t.Errorf("ready %d after delete", st.Ready)
	}
}

// A head running low on a spilled queue asks for the next read before it is empty, so the
// read overlaps the delivery of what is left; the order holds across the read.
func TestReadAheadBeforeTheHeadRunsOut(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Journal: j, Window: Window{Count: 2 * readAhead, Bytes: 1 << 30}, Clock: newFakeClock()})
	const n = 4 * readAhead
	for i := range n {
		q.Publish(&Message{Body: []byte(fmt.Sprint(i))}, nil)
	}
	j.commit()
	next := 0
	for ; next <= readAhead; next++ { // the head: readAhead+1 of its 2*readAhead left
		if e, _, wait := q.TryGet(true); wait != nil || e == nil || string(e.Msg.Body) != fmt.Sprint(next) {
			t.Fatalf("get %d from the head: %v (waits: %v)", next, e, wait != nil)
		}
	}
	if j.reads != 1 {
		t.Fatalf("%d reads requested with %d entries still in the head, want 1", j.reads, 2*readAhead-next)
	}
	j.settle()
	for ; next < n; next++ {
		if e := take(t, q, j, true); e == nil || string(e.Msg.Body) != fmt.Sprint(next) {
			t.Fatalf("get %d: %v", next, e)
		}
	}
}
