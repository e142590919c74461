package queue

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqpwire"
)

// deadSink collects dead-lettered entries. With the fake clock every hook runs on the test's
// goroutine, before the call that caused it returns.
type deadSink chan Dead

func (d deadSink) hook(_ *Queue, dead []Dead) {
	for _, x := range dead {
		d <- x
	}
}

func (d deadSink) next(t *testing.T) Dead {
	t.Helper()
	select {
	case x := <-d:
		return x
	default:
		t.Fatal("nothing dead-lettered")
		return Dead{}
	}
}

func (d deadSink) none(t *testing.T) {
	t.Helper()
	select {
	case x := <-d:
		t.Fatalf("unexpected dead letter %q (%s)", x.Entry.Msg.Body, x.Reason)
	default:
	}
}

// withFeatures returns options with the features f sets, on a fake clock at 0.
func withFeatures(f func(*Features)) Options {
	fs := NoFeatures
	f(&fs)
	return Options{Features: fs, Clock: newFakeClock()}
}

func ttlMsg(body string, ms int64) *Message {
	return &Message{Body: []byte(body), HasTTL: true, TTL: ms}
}

func TestMessageTTLExpiresOnTimeBehindALongerOne(t *testing.T) {
	sink := make(deadSink, 10)
	opts := withFeatures(func(*Features) {})
	opts.DeadLetter = sink.hook
	clk := opts.Clock.(*fakeClock)
	q := New("q", opts)
	q.Publish(ttlMsg("long", 60_000), nil)
	q.Publish(ttlMsg("short", 50), nil)
	clk.advance(50)
	sink.none(t) // its deadline, not past it yet
	clk.advance(1)
	d := sink.next(t)
	if string(d.Entry.Msg.Body) != "short" || d.Reason != Expired {
		t.Fatalf("dead %q %s, want short expired", d.Entry.Msg.Body, d.Reason)
	}
	if st := q.Stats(); st.Ready != 1 {
		t.Errorf("ready %d, want the long-lived message only", st.Ready)
	}
	if e, _ := q.Get(true); e == nil || string(e.Msg.Body) != "long" {
		t.Errorf("get = %v, want long", e)
	}
}

func TestQueueTTLAndMessageTTLLowerWins(t *testing.T) {
	sink := make(deadSink, 10)
	opts := withFeatures(func(f *Features) { f.HasTTL, f.MessageTTL = true, 40*time.Millisecond })
	opts.DeadLetter = sink.hook
	q := New("q", opts)
	q.Publish(ttlMsg("own-longer", 60_000), nil) // the queue's 40ms wins
	q.Publish(&Message{Body: []byte("plain")}, nil)
	opts.Clock.(*fakeClock).advance(41)
	got := map[string]bool{}
	for i := 0; i < 2; i++ {
		d := sink.next(t)
		got[string(d.Entry.Msg.Body)] = d.Reason == Expired
	}
	if !got["own-longer"] || !got["plain"] {
		t.Errorf("expired %v, want both", got)
	}
}

func TestZeroTTLDeliversNowOrExpires(t *testing.T) {
	sink := make(deadSink, 10)
	opts := withFeatures(func(*Features) {})
	opts.DeadLetter = sink.hook
	q := New("q", opts)
	q.Publish(ttlMsg("nobody-waiting", 0), nil)
	if d := sink.next(t); string(d.Entry.Msg.Body) != "nobody-waiting" || d.Reason != Expired {
		t.Errorf("dead %q %s", d.Entry.Msg.Body, d.Reason)
	}
	c := &fakeConsumer{credit: 1}
	_ = q.AddConsumer(c, ConsumerOptions{NoAck: true})
	q.Publish(ttlMsg("waited-for", 0), nil)
	if bodies(c.got) != "waited-for" {
		t.Errorf("consumer got %q", bodies(c.got))
	}
	sink.none(t)
}

// zeroTTLCases are the two ways a TTL of 0 applies: the message's expiration, or the queue's
// x-message-ttl.
var zeroTTLCases = []struct {
	name string
	opts func() Options
	msg  func(body string) *Message
}{
	{"expiration 0", func() Options { return withFeatures(func(*Features) {}) },
		func(b string) *Message { return ttlMsg(b, 0) }},
	{"x-message-ttl 0", func() Options { return withFeatures(func(f *Features) { f.HasTTL = true }) },
		func(b string) *Message { return &Message{Body: []byte(b)} }},
}

// A TTL-0 message that no consumer takes on publish is dead-lettered before Publish returns: a
// basic.get right after it finds the queue empty, as on RabbitMQ.
func TestZeroTTLGoneBeforeGet(t *testing.T) {
	for _, tc := range zeroTTLCases {
		t.Run(tc.name, func(t *testing.T) {
			sink := make(deadSink, 10)
			opts := tc.opts()
			opts.DeadLetter = sink.hook
			q := New("q", opts)
			q.Publish(tc.msg("never"), nil)
			if got, _ := q.Get(true); got != nil {
				t.Fatalf("get right after publish = %q, want empty", got.Msg.Body)
			}
			if st := q.Stats(); st.Ready != 0 {
				t.Errorf("ready = %d after publish, want 0", st.Ready)
			}
			select {
			case d := <-sink:
				if string(d.Entry.Msg.Body) != "never" || d.Reason != Expired {
					t.Errorf("dead %q (%s), want never (expired)", d.Entry.Msg.Body, d.Reason)
				}
			default:
				t.Fatal("not dead-lettered by the time Publish returned")
			}
		})
	}
}

// A TTL-0 message delivered to a waiting consumer and then requeued has outlived its TTL: it is
// dead-lettered as expired, not offered again (RabbitMQ keeps a requeued message's deadline).
func TestZeroTTLRequeueExpires(t *testing.T) {
	for _, tc := range zeroTTLCases {
		t.Run(tc.name, func(t *testing.T) {
			sink := make(deadSink, 10)
			opts := tc.opts()
			opts.DeadLetter = sink.hook
			q := New("q", opts)
			first := &fakeConsumer{credit: 1}
			_ = q.AddConsumer(first, ConsumerOptions{})
			q.Publish(tc.msg("once"), nil)
			if bodies(first.got) != "once" {
				t.Fatalf("waiting consumer got %q, want once", bodies(first.got))
			}
			sink.none(t)
			second := &fakeConsumer{credit: 1}
			_ = q.AddConsumer(second, ConsumerOptions{})
			q.Requeue(first.got)
			if len(second.got) != 0 {
				t.Errorf("requeued TTL-0 message delivered again to %q", bodies(second.got))
			}
			select {
			case d := <-sink:
				if string(d.Entry.Msg.Body) != "once" || d.Reason != Expired {
					t.Errorf("dead %q (%s), want once (expired)", d.Entry.Msg.Body, d.Reason)
				}
			default:
				t.Fatal("requeued TTL-0 message not dead-lettered by the time Requeue returned")
			}
			if st := q.Stats(); st.Ready != 0 || st.Unacked != 0 {
				t.Errorf("stats after requeue = %+v, want nothing ready or unacked", st)
			}
		})
	}
}

func TestGetSkipsExpired(t *testing.T) {
	sink := make(deadSink, 10)
	opts := withFeatures(func(*Features) {})
	opts.DeadLetter = sink.hook
	q := New("q", opts)
	e := &Entry{Msg: &Message{Body: []byte("stale")}, Seq: 1, Expires: opts.Clock.Now() - 10}
	q.mu.Lock()
	q.backlog.Push(e) // past its deadline, before the timer noticed
	q.nextSeq = 2
	q.mu.Unlock()
	q.Publish(&Message{Body: []byte("fresh")}, nil)
	if got, _ := q.Get(true); got == nil || string(got.Msg.Body) != "fresh" {
		t.Fatalf("get = %v, want fresh", got)
	}
	if d := sink.next(t); string(d.Entry.Msg.Body) != "stale" {
		t.Errorf("dead %q", d.Entry.Msg.Body)
	}
}

func TestMaxLengthOverflow(t *testing.T) {
	for _, tc := range []struct {
		name      string
		overflow  Overflow
		wantRes   Result
		wantReady string
		wantDead  string
	}{
		{"drop-head", DropHead, Enqueued, "bc", "a"},
		{"reject-publish", RejectPublish, Refused, "ab", ""},
		{"reject-publish-dlx", RejectPublishDLX, Refused, "ab", "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := make(deadSink, 10)
			opts := withFeatures(func(f *Features) { f.MaxLength, f.Overflow = 2, tc.overflow })
			opts.DeadLetter = sink.hook
			q := New("q", opts)
			publish(q, "a", "b")
			if res, _ := q.Publish(&Message{Body: []byte("c")}, nil); res != tc.wantRes {
				t.Errorf("third publish = %v, want %v", res, tc.wantRes)
			}
			var ready string
			for e, _ := q.Get(true); e != nil; e, _ = q.Get(true) {
				ready += string(e.Msg.Body)
			}
			if ready != tc.wantReady {
				t.Errorf("ready %q, want %q", ready, tc.wantReady)
			}
			if tc.wantDead == "" {
				sink.none(t)
				return
			}
			if d := sink.next(t); string(d.Entry.Msg.Body) != tc.wantDead || d.Reason != MaxLen {
				t.Errorf("dead %q %s, want %q maxlen", d.Entry.Msg.Body, d.Reason, tc.wantDead)
			}
		})
	}
}

func TestMaxBytesCountsBodiesOfReadyMessagesOnly(t *testing.T) {
	sink := make(deadSink, 10)
	opts := withFeatures(func(f *Features) { f.MaxBytes = 10 })
	opts.DeadLetter = sink.hook
	q := New("q", opts)
	publish(q, "12345", "67890")
	e, _ := q.Get(false) // unacked bytes do not count
	publish(q, "abcde")
	sink.none(t)
	publish(q, "x")
	if d := sink.next(t); string(d.Entry.Msg.Body) != "67890" {
		t.Errorf("dropped %q, want the oldest ready message", d.Entry.Msg.Body)
	}
	q.Settle([]*Entry{e})
}

func TestDeliveryLimitAndReject(t *testing.T) {
	sink := make(deadSink, 10)
	opts := withFeatures(func(f *Features) { f.DeliveryLimit = 2 })
	opts.DeadLetter = sink.hook
	q := New("q", opts)
	publish(q, "poison")
	for i := 1; i <= 2; i++ {
		e, _ := q.Get(false)
		if e == nil {
			t.Fatalf("delivery %d: queue empty", i)
		}
		q.Requeue([]*Entry{e})
		sink.none(t)
	}
	e, _ := q.Get(false)
	q.Requeue([]*Entry{e}) // the third return passes the limit of 2
	if d := sink.next(t); d.Reason != DeliveryLimit || d.Entry.Deliveries != 3 {
		t.Errorf("dead %s after %d deliveries, want delivery_limit after 3", d.Reason, d.Entry.Deliveries)
	}
	publish(q, "bad")
	e, _ = q.Get(false)
	q.Reject([]*Entry{e})
	if d := sink.next(t); d.Reason != Rejected || string(d.Entry.Msg.Body) != "bad" {
		t.Errorf("dead %q %s, want bad rejected", d.Entry.Msg.Body, d.Reason)
	}
	if st := q.Stats(); st.Unacked != 0 || st.Ready != 0 {
		t.Errorf("stats %+v", st)
	}
}

// BenchmarkExpire100k puts 100k messages with TTLs spread over 50–250 ms in a queue and waits
// for all of them to be dead-lettered. It reports how late the latest expiry was (ms past its
// deadline) and the longest a concurrent caller waited for the queue meanwhile (µs, including
// scheduling delay on a busy machine), which is
// what other publishers and consumers of the queue would feel.
func BenchmarkExpire100k(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		var lateMax int64
		sink := make(chan Dead, n)
		opts := withFeatures(func(*Features) {})
		opts.Clock = RealClock{} // what it measures is the real timer's lateness
		opts.DeadLetter = func(_ *Queue, dead []Dead) {
			now := RealClock{}.Now()
			for _, d := range dead {
				lateMax = max(lateMax, now-d.Entry.Expires)
				sink <- d
			}
		}
		q := New("q", opts)
		for i := 0; i < n; i++ {
			q.Publish(ttlMsg("x", int64(50+i%200)), nil)
		}
		stop := make(chan struct{})
		stalled := make(chan time.Duration)
		go func() {
			var worst time.Duration
			for {
				select {
				case <-stop:
					stalled <- worst
					return
				default:
				}
				t0 := time.Now()
				q.Stats()
				worst = max(worst, time.Since(t0))
			}
		}()
		for i := 0; i < n; i++ {
			select {
			case <-sink:
			case <-time.After(10 * time.Second):
				b.Fatalf("only %d of %d expired within 10s", i, n)
			}
		}
		close(stop)
		b.ReportMetric(float64(lateMax), "ms-late-max")
		b.ReportMetric(float64((<-stalled).Microseconds()), "µs-stall-max")
	}
}

func prioMsg(body string, p uint8) *Message {
	m := &Message{Body: []byte(body)}
	m.Properties.Flags |= amqpwire.FlagPriority
	m.Properties.Priority = p
	return m
}

func TestPriorityQueueOrder(t *testing.T) {
	for _, paged := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "paged"}[paged], func(t *testing.T) {
			opts := withFeatures(func(f *Features) { f.MaxPriority = 5 })
			var j *fakeJournal
			if paged {
				j = newFakeJournal()
				opts.Journal, opts.Window = j, Window{Count: 1, Bytes: 1 << 20}
				opts.LevelJournal = func(uint8) Journal { return j.level() }
				defer j.commit()
			}
			q := New("q", opts)
			q.Publish(&Message{Body: []byte("none1")}, nil)
			q.Publish(prioMsg("p9-capped", 9), nil)
			q.Publish(prioMsg("p2a", 2), nil)
			q.Publish(prioMsg("p5", 5), nil)
			q.Publish(prioMsg("p2b", 2), nil)
			q.Publish(prioMsg("p0", 0), nil)
			if j != nil {
				j.commit() // what was paged out is on disk
			}
			first := take(t, q, j, false)
			q.Requeue([]*Entry{first}) // keeps its priority
			var got []string
			for e := take(t, q, j, true); e != nil; e = take(t, q, j, true) {
				got = append(got, string(e.Msg.Body))
			}
			want := "[p9-capped p5 p2a p2b none1 p0]"
			if fmt.Sprint(got) != want {
				t.Errorf("order %v, want %s", got, want)
			}
		})
	}
}

func TestConsumerPriorities(t *testing.T) {
	q := New("q", Options{})
	low := &fakeConsumer{name: "low", credit: 10}
	high := &fakeConsumer{name: "high", credit: 2}
	_ = q.AddConsumer(low, ConsumerOptions{Priority: 1})
	_ = q.AddConsumer(high, ConsumerOptions{Priority: 10})
	publish(q, "1", "2", "3", "4")
	if bodies(high.got) != "12" || bodies(low.got) != "34" {
		t.Errorf("high got %q, low got %q; want the high one first until it is full", bodies(high.got), bodies(low.got))
	}
}

func TestSingleActiveConsumer(t *testing.T) {
	q := New("q", withFeatures(func(f *Features) { f.SingleActiveConsumer = true }))
	first := &fakeConsumer{credit: 2}
	second := &fakeConsumer{credit: 10}
	_ = q.AddConsumer(first, ConsumerOptions{})
	_ = q.AddConsumer(second, ConsumerOptions{Priority: 100}) // priority does not jump the line
	publish(q, "1", "2", "3")
	if bodies(first.got) != "12" || len(second.got) != 0 {
		t.Fatalf("first %q, second %q: only the first may receive", bodies(first.got), bodies(second.got))
	}
	if st := q.Stats(); st.Consumers != 2 || st.Ready != 1 {
		t.Errorf("stats %+v", st)
	}
	q.RemoveConsumer(first)
	if bodies(second.got) != "3" {
		t.Errorf("second got %q after taking over, want 3", bodies(second.got))
	}
}
