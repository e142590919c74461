package queue

import (
	"fmt"
	"strings"
	"testing"
)

// bodies gets every ready entry in order, settling each, and returns their bodies.
func getBodies(t *testing.T, q *Queue) string {
	t.Helper()
	var out []string
	for {
		e, _ := q.Get(false)
		if e == nil {
			return strings.Join(out, ",")
		}
		out = append(out, fmt.Sprintf("%s(%d)", e.Msg.Body, e.Deliveries))
		q.Settle([]*Entry{e})
	}
}

// returnTwo publishes 0..3, gets 0 and 1, and returns 1 then 0.
func returnTwo(t *testing.T, q *Queue) {
	t.Helper()
	publish(q, "0", "1", "2", "3")
	e0, _ := q.Get(false)
	e1, _ := q.Get(false)
	if e0 == nil || e1 == nil {
		t.Fatal("queue empty")
	}
	q.Requeue([]*Entry{e1})
	q.Requeue([]*Entry{e0})
}

// A quorum queue with a delivery limit delivers returned messages first, in the order they
// came back (RabbitMQ 3.10.8: nack 1 then 0 gives 1, 0, 2, 3); without a limit, behind the
// messages that were in the queue and ahead of later ones (2, 3, 1, 0, then 4); a classic
// queue puts each back at its original place (0, 1, 2, 3).
func TestQuorumReturnsGoToTheFront(t *testing.T) {
	for _, tc := range []struct {
		what string
		f    func(*Features)
		want string
	}{
		{"quorum with a limit", func(f *Features) { f.Quorum, f.DeliveryLimit = true, 20 }, "1(2),0(2),2(1),3(1)"},
		{"quorum without a limit", func(f *Features) { f.Quorum = true }, "2(1),3(1),1(2),0(2),4(1)"},
		{"classic", func(*Features) {}, "0(2),1(2),2(1),3(1)"},
		{"classic with a limit", func(f *Features) { f.DeliveryLimit = 20 }, "0(2),1(2),2(1),3(1)"},
	} {
		q := New("q", withFeatures(tc.f))
		returnTwo(t, q)
		if strings.Contains(tc.what, "without") {
			publish(q, "4") // published after the returns: behind them
		}
		if got := getBodies(t, q); got != tc.want {
			t.Errorf("%s: order %s, want %s", tc.what, got, tc.want)
		}
	}
}

// The same with the queue paged to disk: returned entries stay in memory, ahead of what is
// on disk.
func TestQuorumReturnsGoToTheFrontWhenPaged(t *testing.T) {
	j := newFakeJournal()
	opts := Options{Journal: j, Window: Window{Count: 2, Bytes: 1 << 20}, Features: NoFeatures}
	opts.Features.Quorum, opts.Features.DeliveryLimit = true, 20
	q := New("q", opts)
	for i := range 8 {
		q.Publish(&Message{Body: []byte(fmt.Sprint(i))}, nil)
	}
	j.commit()
	e0 := take(t, q, j, false)
	e1 := take(t, q, j, false)
	q.Requeue([]*Entry{e1})
	q.Requeue([]*Entry{e0})
	j.commit()
	if got := drain(t, q, j); got != "1,0,2,3,4,5,6,7," {
		t.Errorf("order %s, want 1,0,2,...", got)
	}
}

// Without a limit, with the queue paged to disk: a returned entry waits for the entries on
// disk that were published before its return, and goes ahead of those published after.
func TestQuorumReturnsGoToTheBackWhenPaged(t *testing.T) {
	j := newFakeJournal()
	opts := Options{Journal: j, Window: Window{Count: 2, Bytes: 1 << 20}, Features: NoFeatures}
	opts.Features.Quorum = true
	q := New("q", opts)
	for i := range 6 {
		q.Publish(&Message{Body: []byte(fmt.Sprint(i))}, nil)
	}
	j.commit()
	e0 := take(t, q, j, false)
	e1 := take(t, q, j, false)
	q.Requeue([]*Entry{e1})
	q.Requeue([]*Entry{e0})
	for i := 6; i < 9; i++ {
		q.Publish(&Message{Body: []byte(fmt.Sprint(i))}, nil)
	}
	j.commit()
	if got := drain(t, q, j); got != "2,3,4,5,1,0,6,7,8," {
		t.Errorf("order %s, want 2,3,4,5,1,0,6,7,8,", got)
	}
}
