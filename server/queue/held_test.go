package queue

import (
	"fmt"
	"testing"
)

// A held entry keeps its place but is delivered to nobody, consumer or basic.get, until it is
// released; what is behind it waits too (order holds).
func TestHeldEntryWaitsForRelease(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Durable: true, Journal: j, Window: Window{Count: 100, Bytes: 1 << 20}})
	c := &fakeConsumer{name: "c", credit: 10}
	if err := q.AddConsumer(c, ConsumerOptions{}); err != nil {
		t.Fatal(err)
	}
	_, e, written := q.PublishHeld(&Message{Body: []byte("a"), Persistent: true}, nil)
	if e == nil || !written {
		t.Fatalf("PublishHeld returned entry %v, written %v", e, written)
	}
	q.Publish(&Message{Body: []byte("b")}, nil)
	if len(c.got) != 0 {
		t.Fatalf("delivered %s before the held head was released", bodies(c.got))
	}
	if g, _ := q.Get(true); g != nil {
		t.Fatalf("basic.get took %q while it was held", g.Msg.Body)
	}
	if s := q.Stats(); s.Ready != 2 {
		t.Errorf("ready %d, want 2 (held entries count as ready)", s.Ready)
	}
	j.commit()
	q.Release(e)
	if got := bodies(c.got); got != "ab" {
		t.Errorf("delivered %s after release, want ab", got)
	}
}

// A withdrawn entry is never delivered nor dead-lettered, its record is removed, and the
// entries behind it go out.
func TestWithdrawnEntryIsNeverDelivered(t *testing.T) {
	sink := make(deadSink, 10)
	j := newFakeJournal()
	q := New("q", Options{Durable: true, Journal: j, Window: Window{Count: 100, Bytes: 1 << 20}, DeadLetter: sink.hook})
	_, e, _ := q.PublishHeld(&Message{Body: []byte("nacked"), Persistent: true}, nil)
	q.Publish(&Message{Body: []byte("next")}, nil)
	j.commit() // the record went in, but another write of the publish failed
	q.Withdraw(e)
	j.commit()
	if _, ok := j.records[e.Seq]; ok {
		t.Error("the withdrawn entry's record is still in the journal")
	}
	c := &fakeConsumer{name: "c", credit: 10}
	if err := q.AddConsumer(c, ConsumerOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := bodies(c.got); got != "next" {
		t.Errorf("delivered %s, want only next", got)
	}
	if s := q.Stats(); s.Ready != 0 || s.ReadyBytes != 0 {
		t.Errorf("stats after withdraw and delivery: %+v", s)
	}
	sink.none(t)
}

// An entry that expires or is dropped by a length limit while held is dead-lettered only once
// its publish is settled well; a withdrawn one is not dead-lettered at all.
func TestDeathWhileHeldWaitsForTheOutcome(t *testing.T) {
	for _, ok := range []bool{true, false} {
		t.Run(fmt.Sprint("released=", ok), func(t *testing.T) {
			sink := make(deadSink, 10)
			opts := withFeatures(func(f *Features) { f.MaxLength = 1 })
			opts.DeadLetter = sink.hook
			q := New("q", opts)
			_, e, _ := q.PublishHeld(&Message{Body: []byte("old")}, nil)
			q.Publish(&Message{Body: []byte("new")}, nil) // drop-head: "old" dies while held
			sink.none(t)
			if ok {
				q.Release(e)
				if d := sink.next(t); string(d.Entry.Msg.Body) != "old" || d.Reason != MaxLen {
					t.Errorf("dead %q %s, want old maxlen", d.Entry.Msg.Body, d.Reason)
				}
			} else {
				q.Withdraw(e)
				sink.none(t)
			}
			if g, _ := q.Get(true); g == nil || string(g.Msg.Body) != "new" {
				t.Errorf("get = %v, want new", g)
			}
		})
	}
}

// A held message with a TTL of 0 goes to a consumer waiting when it is released, or dies then.
func TestZeroTTLHeldGetsItsChanceAtRelease(t *testing.T) {
	sink := make(deadSink, 10)
	opts := withFeatures(func(*Features) {})
	opts.DeadLetter = sink.hook
	q := New("q", opts)
	_, e, _ := q.PublishHeld(ttlMsg("late", 0), nil)
	q.Release(e)
	if d := sink.next(t); string(d.Entry.Msg.Body) != "late" || d.Reason != Expired {
		t.Errorf("dead %q %s, want late expired", d.Entry.Msg.Body, d.Reason)
	}
	c := &fakeConsumer{name: "c", credit: 10}
	if err := q.AddConsumer(c, ConsumerOptions{}); err != nil {
		t.Fatal(err)
	}
	_, e, _ = q.PublishHeld(ttlMsg("now", 0), nil)
	q.Release(e)
	if got := bodies(c.got); got != "now" {
		t.Errorf("delivered %s, want now", got)
	}
	sink.none(t)
}

// A held entry whose record is durable does not leave memory for the disk regions (a page-out
// or a shrinking window): it could not be withdrawn from there. Once released it can.
func TestHeldEntryStaysInMemoryUntilSettled(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Durable: true, Journal: j, Window: Window{Count: 2, Bytes: 1 << 20}})
	var held []*Entry
	for i := 1; i <= 5; i++ {
		_, e, _ := q.PublishHeld(&Message{Body: []byte(fmt.Sprint(i)), Persistent: true}, nil)
		held = append(held, e)
	}
	j.commit()
	pb := q.backlog.(*PagedBacklog)
	if q.Trim(); pb.InMemory() != 5 {
		t.Fatalf("in memory %d, want all 5 held entries", pb.InMemory())
	}
	q.Withdraw(held[3]) // in the pending region
	q.Withdraw(held[0]) // at the head
	for _, e := range []*Entry{held[1], held[2], held[4]} {
		q.Release(e)
	}
	q.SetWindow(Window{Count: 1, Bytes: 1 << 20})
	if pb.InMemory() > 1 {
		t.Errorf("in memory %d after release and trim, want at most 1", pb.InMemory())
	}
	if got := drain(t, q, j); got != "2,3,5," {
		t.Errorf("drained %s, want 2,3,5,", got)
	}
	j.commit()
	if len(j.records) != 0 {
		t.Errorf("%d records left after draining", len(j.records))
	}
}
