package quorum

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/cluster/raftmux"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// A publish through the leader's core is confirmed only once its message is committed and in
// the leader's store; every member then holds it and counts it, so declare-ok agrees on
// every node.
func TestPublishIsConfirmedOnceCommitted(t *testing.T) {
	c := newCluster(t, 3, testTiming)
	leader, q := c.leader()
	chs := publish(t, q, "a", "b", "c")
	for i, ch := range chs {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		case <-time.After(waitLong):
			t.Fatalf("publish %d never confirmed", i)
		}
		// At the confirm the leader has applied it: it is in its store.
		recs, err := leader.st.ReadQueue(testQueueID, uint64(i), 1, 1<<20)
		if err != nil || len(recs) == 0 || recs[0].Seq != uint64(i+1) {
			t.Fatalf("publish %d confirmed before it was in the leader's store: %v %+v", i, err, recs)
		}
	}
	c.everyMemberHolds("a,b,c", 3)
	for _, m := range c.nodes {
		if s := m.g.Status(); s.Leader != leader.name || s.Messages != 3 {
			t.Errorf("%s: status %+v, want leader %s and 3 messages", m.name, s, leader.name)
		}
	}
	eventually(t, "leader's view", func() string {
		for _, ms := range leader.g.Status().Members {
			if !ms.Known || !ms.Online || ms.Lag != 0 {
				return fmt.Sprintf("member %+v not online and caught up", ms)
			}
		}
		return ""
	})
}

// Acks, returns and delivery counts replicate; when the leader goes, the new leader's core
// has exactly the committed messages: the acked one is gone, the unacked one comes back
// redelivered, and the returned one keeps its delivery count.
func TestFailoverKeepsCommittedState(t *testing.T) {
	c := newCluster(t, 3, testTiming)
	old, q := c.leader()
	publishConfirmed(t, q, "acked", "returned", "unacked", "ready")
	e1, _ := q.Get(false)
	e2, _ := q.Get(false)
	e3, _ := q.Get(false)
	if e1 == nil || e2 == nil || e3 == nil {
		t.Fatal("could not get three messages")
	}
	q.Settle([]*queue.Entry{e1})
	q.Requeue([]*queue.Entry{e2})
	c.everyMemberHolds("returned(1),unacked,ready", 3)

	c.stop(old)
	nl, nq := c.leader()
	if nl == old {
		t.Fatal("the stopped member still leads")
	}
	got := ""
	for {
		e, _ := nq.Get(false)
		if e == nil {
			break
		}
		got += fmt.Sprintf("%s:%d:%v ", e.Msg.Body, e.Deliveries, e.Redelivered)
		nq.Settle([]*queue.Entry{e})
	}
	// The returned one was delivered twice in all now; the unacked one came back redelivered.
	if want := "returned:2:true unacked:1:true ready:1:true "; got != want {
		t.Errorf("the new leader delivers %q, want %q", got, want)
	}
	c.everyMemberHolds("", 0)
}

// A leader cut off from the majority cannot confirm: the publisher's done gets an error
// within the commit bound, and the core is dropped so its consumers go elsewhere.
func TestMinorityLeaderNacks(t *testing.T) {
	// A long lease, so the leader is still leading when the publish comes (however slowly
	// the followers stop) and the commit bound, shorter, is what fails it.
	timing := testTiming
	timing.HeartbeatTimeout, timing.ElectionTimeout, timing.LeaderLeaseTimeout = 5*time.Second, 5*time.Second, 5*time.Second
	timing.CommitBound = 2 * time.Second
	c := newCluster(t, 3, timing)
	leader, q := c.leader()
	publishConfirmed(t, q, "before")
	var consumer fakeConsumer
	if err := q.AddConsumer(&consumer, queue.ConsumerOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.nodes {
		if m != leader {
			c.stop(m)
		}
	}
	start := time.Now()
	errs := waitDone(t, publish(t, q, "after"))
	if errs[0] == nil {
		t.Fatal("a publish without a majority was confirmed")
	}
	if !errors.Is(errs[0], ErrNotLeader) && !errors.Is(errs[0], ErrCommitTimeout) {
		t.Errorf("done got %v, want ErrNotLeader or ErrCommitTimeout", errs[0])
	}
	if took := time.Since(start); took > c.timing.CommitBound+10*time.Second {
		t.Errorf("the nack took %s, bound %s", took, c.timing.CommitBound)
	}
	select {
	case cs := <-leader.follows:
		if len(cs) != 1 || cs[0] != &consumer {
			t.Errorf("OnFollower got consumers %v, want the one attached", cs)
		}
	case <-time.After(waitLong):
		t.Fatal("the cut-off leader kept its core")
	}
	if leader.g.Core() != nil {
		t.Error("the cut-off leader still has a core")
	}
}

type fakeConsumer struct{}

func (*fakeConsumer) Deliver(*queue.Queue, *queue.Entry) bool { return false }

// A member that was down catches up from the log when it comes back.
func TestRestartedMemberCatchesUpFromTheLog(t *testing.T) {
	c := newCluster(t, 3, testTiming)
	leader, q := c.leader()
	var down *member
	for _, m := range c.nodes {
		if m != leader {
			down = m
			break
		}
	}
	c.stop(down)
	publishConfirmed(t, q, "1", "2", "3")
	// The leader shows the member offline and behind.
	eventually(t, "the leader's view of the stopped member", func() string {
		for _, ms := range leader.g.Status().Members {
			if ms.Name == down.name && (!ms.Known || ms.Online || ms.Lag == 0) {
				return fmt.Sprintf("%+v, want known, offline, lagging", ms)
			}
		}
		return ""
	})
	c.start(down)
	c.everyMemberHolds("1,2,3", 3)
	eventually(t, "the leader's view of the restarted member", func() string {
		for _, ms := range leader.g.Status().Members {
			if ms.Name == down.name && (!ms.Online || ms.Lag != 0) {
				return fmt.Sprintf("%+v, want online, caught up", ms)
			}
		}
		return ""
	})
}

// A member that was down for longer than the log kept behind a snapshot catches up from the
// leader's snapshot.
func TestRestartedMemberCatchesUpFromASnapshot(t *testing.T) {
	timing := testTiming
	timing.SnapshotThreshold, timing.TrailingLogs, timing.SnapshotInterval = 4, 2, 50*time.Millisecond
	c := newCluster(t, 3, timing)
	leader, q := c.leader()
	var down *member
	for _, m := range c.nodes {
		if m != leader {
			down = m
			break
		}
	}
	c.stop(down)
	want := ""
	for i := 0; i < 30; i++ {
		b := fmt.Sprint(i)
		publishConfirmed(t, q, b) // one entry each
		if want != "" {
			want += ","
		}
		want += b
	}
	e, _ := q.Get(false)
	q.Requeue([]*queue.Entry{e})
	want = "0(1)" + want[1:]
	if err := leader.g.r.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, _ := leader.st.RaftLog(testQueueID); first != nil {
		if fi, _ := first.FirstIndex(); fi <= 2 {
			t.Fatalf("the leader's log was not compacted (first index %d)", fi)
		}
	}
	c.start(down)
	c.everyMemberHolds(want, 30)
	if s := down.g.r.Stats()["last_snapshot_index"]; s == "0" {
		t.Errorf("the member caught up without installing a snapshot")
	}
}

// Deleting the queue deletes what every member holds of it.
func TestDeleteCleansEveryMember(t *testing.T) {
	c := newCluster(t, 3, testTiming)
	_, q := c.leader()
	publishConfirmed(t, q, "x", "y")
	c.everyMemberHolds("x,y", 2)
	for _, m := range c.nodes {
		if err := m.g.Delete(); err != nil {
			t.Fatal(err)
		}
		_ = m.hub.Close()
		_ = m.mux.Close()
		if got := records(t, m); got != "" {
			t.Errorf("%s still stores %q", m.name, got)
		}
		l, err := m.st.RaftLog(testQueueID)
		if err != nil {
			t.Fatal(err)
		}
		if last, _ := l.LastIndex(); last != 0 {
			t.Errorf("%s still holds the group's log through %d", m.name, last)
		}
		if dirExists(m.g.snapDir) {
			t.Errorf("%s still has %s", m.name, m.g.snapDir)
		}
		if err := m.st.Close(); err != nil {
			t.Error(err)
		}
		m.g = nil
	}
}

// Stopping every member (group, transports, store) leaves no goroutine behind, even with a
// publish that was waiting for a majority when its leader stopped.
func TestStoppedMembersLeaveNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	c := newCluster(t, 3, testTiming)
	leader, q := c.leader()
	publishConfirmed(t, q, "a")
	for _, m := range c.nodes {
		if m != leader {
			c.stop(m)
		}
	}
	// The leader may have stepped down already (then the core is gone and nothing waits).
	pending := make(chan error, 1)
	res, _ := q.Publish(message("b"), func(err error) { pending <- err })
	c.stop(leader)
	if res == queue.Enqueued {
		waitDone(t, []chan error{pending})
	}
	eventually(t, "goroutines after stopping every member", func() string {
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			return fmt.Sprintf("%d goroutines, %d before; %s", n, before, buf[:runtime.Stack(buf, true)])
		}
		return ""
	})
}

// A core whose options give no features (the zero value) is a plain quorum queue, not one
// limited to zero messages.
func TestZeroFeaturesAreNoLimits(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: dir, NoSync: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := raftmux.New(raftmux.Config{Listener: ln, Node: "solo", Logger: zerolog.Nop()})
	defer mux.Close()
	hub, err := NewHub(mux, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	leads := make(chan *queue.Queue, 1)
	g, err := Start(Config{ID: 7, Name: "zero", Self: "solo", Members: []Member{{Name: "solo", Address: ln.Addr().String()}},
		Hub: hub, Store: st, DataDir: dir, Timing: testTiming, Logger: zerolog.Nop(),
		Options:  func() queue.Options { return queue.Options{} },
		OnLeader: func(q *queue.Queue) { leads <- q }})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var q *queue.Queue
	select {
	case q = <-leads:
	case <-time.After(waitLong):
		t.Fatal("the single member never led")
	}
	publishConfirmed(t, q, "a", "b")
	if s := q.Stats(); s.Ready != 2 {
		t.Errorf("%d ready after two publishes, want 2", s.Ready)
	}
}
