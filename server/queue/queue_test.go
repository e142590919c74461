package queue

import (
	"errors"
	"fmt"
	"testing"
)

// fakeConsumer takes up to credit entries and records them.
type fakeConsumer struct {
	name   string
	credit int
	got    []*Entry
}

func (c *fakeConsumer) Deliver(_ *Queue, e *Entry) bool {
	if c.credit == 0 {
		return false
	}
	c.credit--
	c.got = append(c.got, e)
	return true
}

func bodies(es []*Entry) string {
	s := ""
	for _, e := range es {
		s += string(e.Msg.Body)
	}
	return s
}

func publish(q *Queue, bodies ...string) {
	for _, b := range bodies {
		q.Publish(&Message{Body: []byte(b)}, nil)
	}
}

func TestRoundRobinRespectsCredit(t *testing.T) {
	q := New("q", Options{})
	a := &fakeConsumer{name: "a", credit: 2}
	b := &fakeConsumer{name: "b", credit: 1}
	if err := q.AddConsumer(a, ConsumerOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := q.AddConsumer(b, ConsumerOptions{}); err != nil {
		t.Fatal(err)
	}
	publish(q, "1", "2", "3", "4", "5")
	if got := bodies(a.got); got != "13" {
		t.Errorf("a got %q, want 13", got)
	}
	if got := bodies(b.got); got != "2" {
		t.Errorf("b got %q, want 2", got)
	}
	st := q.Stats()
	if st.Ready != 2 || st.Unacked != 3 || st.Consumers != 2 {
		t.Errorf("stats = %+v, want 2 ready, 3 unacked, 2 consumers", st)
	}
	b.credit = 5
	q.Kick()
	if got := bodies(b.got); got != "245" {
		t.Errorf("after kick b got %q, want 245", got)
	}
}

func TestRequeueReturnsToOriginalPosition(t *testing.T) {
	q := New("q", Options{})
	publish(q, "a", "b", "c", "d")
	var taken []*Entry
	for i := 0; i < 3; i++ {
		e, _ := q.Get(false)
		taken = append(taken, e)
	}
	// Requeue b and a (out of order): they go back before d, in original order.
	q.Requeue([]*Entry{taken[1], taken[0]})
	var order string
	for {
		e, _ := q.Get(true)
		if e == nil {
			break
		}
		order += string(e.Msg.Body)
		if want := e.Msg.Body[0] != 'd'; e.Redelivered != want {
			t.Errorf("%s redelivered = %v, want %v", e.Msg.Body, e.Redelivered, want)
		}
	}
	if order != "abd" {
		t.Errorf("order after requeue = %q, want abd", order)
	}
	if st := q.Stats(); st.Unacked != 1 {
		t.Errorf("unacked = %d, want 1 (c)", st.Unacked)
	}
}

func TestDeliveriesCount(t *testing.T) {
	q := New("q", Options{})
	publish(q, "x")
	e, _ := q.Get(false)
	q.Requeue([]*Entry{e})
	e, _ = q.Get(false)
	if e.Deliveries != 2 {
		t.Errorf("deliveries = %d, want 2", e.Deliveries)
	}
}

func TestExclusiveConsumer(t *testing.T) {
	q := New("q", Options{})
	if err := q.AddConsumer(&fakeConsumer{}, ConsumerOptions{Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	if err := q.AddConsumer(&fakeConsumer{}, ConsumerOptions{}); !errors.Is(err, ErrExclusiveUse) {
		t.Errorf("second consumer err = %v, want ErrExclusiveUse", err)
	}
	q2 := New("q2", Options{})
	_ = q2.AddConsumer(&fakeConsumer{}, ConsumerOptions{})
	if err := q2.AddConsumer(&fakeConsumer{}, ConsumerOptions{Exclusive: true}); !errors.Is(err, ErrExclusiveUse) {
		t.Errorf("exclusive on a used queue err = %v, want ErrExclusiveUse", err)
	}
}

func TestRemoveConsumerKeepsRotation(t *testing.T) {
	q := New("q", Options{})
	cs := []*fakeConsumer{{name: "a", credit: 9}, {name: "b", credit: 9}, {name: "c", credit: 9}}
	for _, c := range cs {
		_ = q.AddConsumer(c, ConsumerOptions{})
	}
	publish(q, "1", "2")
	if n, ok := q.RemoveConsumer(cs[0]); !ok || n != 2 {
		t.Fatalf("remove = %d, %v", n, ok)
	}
	publish(q, "3", "4")
	if got := bodies(cs[2].got); got != "3" {
		t.Errorf("c got %q, want 3 (rotation continues after b)", got)
	}
	if got := bodies(cs[1].got); got != "24" {
		t.Errorf("b got %q, want 24", got)
	}
	if _, ok := q.RemoveConsumer(cs[0]); ok {
		t.Error("removing twice reported ok")
	}
}

func TestNoAckConsumerSettlesAtOnce(t *testing.T) {
	q := New("q", Options{})
	c := &fakeConsumer{credit: 10}
	_ = q.AddConsumer(c, ConsumerOptions{NoAck: true})
	publish(q, "a", "b")
	if st := q.Stats(); st.Unacked != 0 || st.Ready != 0 {
		t.Errorf("stats = %+v, want nothing ready or unacked", st)
	}
}

func TestPurgeAndDelete(t *testing.T) {
	q := New("q", Options{})
	publish(q, "a", "bb", "ccc")
	if st := q.Stats(); st.ReadyBytes != 6 {
		t.Errorf("ready bytes = %d, want 6", st.ReadyBytes)
	}
	if n := q.Purge(); n != 3 {
		t.Errorf("purge = %d, want 3", n)
	}
	publish(q, "d")
	c := &fakeConsumer{}
	_ = q.AddConsumer(c, ConsumerOptions{})
	cs, n := q.Delete()
	if n != 1 || len(cs) != 1 || cs[0] != c {
		t.Errorf("delete = %v, %d; want the consumer and 1", cs, n)
	}
	if res, _ := q.Publish(&Message{}, nil); res != Gone {
		t.Error("publish to a deleted queue succeeded")
	}
	if err := q.AddConsumer(c, ConsumerOptions{}); !errors.Is(err, ErrDeleted) {
		t.Errorf("consume from deleted queue err = %v", err)
	}
}

func TestMemBacklogInterleavesRequeuedAndFresh(t *testing.T) {
	b := NewMemBacklog()
	mk := func(seq uint64) *Entry { return &Entry{Seq: seq, Msg: &Message{Body: []byte(fmt.Sprint(seq))}} }
	for s := uint64(10); s < 50; s += 10 {
		b.Push(mk(s))
	}
	b.Pop() // 10
	b.Pop() // 20
	b.Requeue(mk(20))
	b.Requeue(mk(10))
	b.Requeue(mk(35)) // never happens in practice, but the order must still hold
	var got []uint64
	for e := b.Pop(); e != nil; e = b.Pop() {
		got = append(got, e.Seq)
	}
	want := []uint64{10, 20, 30, 35, 40}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	if b.Len() != 0 || b.Bytes() != 0 {
		t.Errorf("len %d bytes %d after draining", b.Len(), b.Bytes())
	}
}

func TestMemBacklogGrowsAndWraps(t *testing.T) {
	b := NewMemBacklog()
	seq := uint64(0)
	next := uint64(1)
	for round := 0; round < 100; round++ {
		for i := 0; i < 7; i++ {
			seq++
			b.Push(&Entry{Seq: seq, Msg: &Message{}})
		}
		for i := 0; i < 5; i++ {
			e := b.Pop()
			if e.Seq != next {
				t.Fatalf("popped %d, want %d", e.Seq, next)
			}
			next++
		}
	}
	if b.Len() != 200 {
		t.Errorf("len = %d, want 200", b.Len())
	}
}

func BenchmarkPublishDeliver(b *testing.B) {
	q := New("q", Options{})
	c := &fakeConsumer{credit: -1}
	_ = q.AddConsumer(c, ConsumerOptions{NoAck: true})
	m := &Message{Body: make([]byte, 1024)}
	b.ReportAllocs()
	for b.Loop() {
		q.Publish(m, nil)
		c.got = c.got[:0]
	}
}
