package queue

import (
	"fmt"
	"testing"
)

// A queue that filled its window (nothing on disk yet) pages its newest entries out when the
// window shrinks, keeps order, and frees their bodies once the records are durable.
func TestShrinkWindowPagesOutTheHeadInOrder(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Journal: j, Window: Window{Count: 100, Bytes: 1 << 20}})
	for i := 1; i <= 10; i++ {
		q.Publish(&Message{Body: []byte(fmt.Sprint(i))}, nil)
	}
	pb := q.backlog.(*PagedBacklog)
	if pb.InMemory() != 10 {
		t.Fatalf("in memory %d before shrinking, want 10", pb.InMemory())
	}
	if !q.SetWindow(Window{Count: 3, Bytes: 1 << 20}) {
		t.Fatal("SetWindow reports nothing waiting, but the records it wrote are not durable yet")
	}
	if pb.InMemory() != 10 {
		t.Errorf("entries left memory before their records were durable: %d in memory", pb.InMemory())
	}
	j.commit()
	if q.Trim() {
		t.Error("Trim still waiting after the commit")
	}
	if pb.InMemory() != 3 || q.Stats().Ready != 10 {
		t.Errorf("in memory %d, ready %d; want 3 in memory, 10 ready", pb.InMemory(), q.Stats().Ready)
	}
	q.Publish(&Message{Body: []byte("11")}, nil) // behind the disk now
	if got := drain(t, q, j); got != "1,2,3,4,5,6,7,8,9,10,11," {
		t.Errorf("order %s", got)
	}
	j.commit()
	if len(j.records) != 0 {
		t.Errorf("%d records left after acking everything", len(j.records))
	}
}

// A queue already spilled (head, disk, tail) pages out its tail and then its head's newest
// entries ahead of what is on disk; persistent entries in a durable queue, already written,
// leave at once without a second write.
func TestShrinkWindowOfSpilledQueue(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Durable: true, Journal: j, Window: Window{Count: 6, Bytes: 1 << 20}})
	for i := 1; i <= 8; i++ {
		q.Publish(&Message{Body: []byte(fmt.Sprint(i)), Persistent: true}, nil)
	}
	j.commit()
	appends := j.appends
	if q.SetWindow(Window{Count: 2, Bytes: 1 << 20}) {
		t.Error("durable entries should leave at once")
	}
	if j.appends != appends {
		t.Errorf("%d extra writes for entries that already had durable records", j.appends-appends)
	}
	pb := q.backlog.(*PagedBacklog)
	if pb.InMemory() != 2 {
		t.Errorf("in memory %d, want the new window of 2", pb.InMemory())
	}
	if got := drain(t, q, j); got != "1,2,3,4,5,6,7,8," {
		t.Errorf("order %s", got)
	}
}

// Requeued entries stay in memory: they are ahead of everything in the queue.
func TestShrinkWindowKeepsRequeued(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Journal: j, Window: Window{Count: 100, Bytes: 1 << 20}})
	for i := 1; i <= 6; i++ {
		q.Publish(&Message{Body: []byte(fmt.Sprint(i))}, nil)
	}
	e1, _ := q.Get(false)
	e2, _ := q.Get(false)
	q.Requeue([]*Entry{e2, e1})
	q.SetWindow(Window{Count: 1, Bytes: 1 << 20})
	j.commit()
	q.Trim()
	if got := drain(t, q, j); got != "1,2,3,4,5,6," {
		t.Errorf("order %s", got)
	}
}
