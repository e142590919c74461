package forward

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

const testBeat = 50 * time.Millisecond

// TestSilentNodeBreaksTheStream: a node that keeps its connection open but answers nothing
// (paused with SIGSTOP, or cut off behind a proxy) is taken for dead after three heartbeat
// intervals: the publish in flight to it fails and a consume waiting on it returns, both
// with ErrStreamBroken, instead of waiting for ever.
func TestSilentNodeBreaksTheStream(t *testing.T) {
	base := runtime.NumGoroutine()
	a, b := newMux(t, "a"), newMux(t, "b")
	la, err := a.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(lb, zerolog.Nop(), Options{Heartbeat: testBeat})
	defer func() {
		c.Close()
		_ = b.Close()
		_ = a.Close()
		checkGoroutines(t, base)
	}()
	done := make(chan error, 1)
	c.Publish(a.Addr(), "/", "q", msg("x"), true, func(err error) { done <- err })
	silent, err := la.Accept() // node A takes the stream and then says nothing
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	consumed := make(chan error, 1)
	go func() {
		_, err := c.Consume(context.Background(), a.Addr(), "/", "q", ConsumeOptions{}, newRecorder())
		consumed <- err
	}()
	for _, ch := range []chan error{done, consumed} {
		select {
		case err := <-ch:
			if !errors.Is(err, ErrStreamBroken) || !strings.Contains(err.Error(), "heartbeat") {
				t.Fatalf("request to a silent node: %v, want ErrStreamBroken naming the heartbeat", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a request to a silent node is still waiting after 30s")
		}
	}
}

// TestSilentClientIsDropped: when the node that forwards goes silent, the queue's node
// drops its consumers and requeues their unacked messages after three heartbeat intervals,
// as when the stream breaks.
func TestSilentClientIsDropped(t *testing.T) {
	local := newFakeLocal("q")
	q := local.queues["q"]
	q.put(nums("m", 3)...)
	base := runtime.NumGoroutine()
	a, b := newMux(t, "a"), newMux(t, "b")
	la, err := a.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	srv := Serve(la, local, zerolog.Nop(), Options{Heartbeat: testBeat})
	defer func() {
		_ = srv.Close()
		_ = b.Close()
		_ = a.Close()
		checkGoroutines(t, base)
	}()
	st, err := lb.Dial(raft.ServerAddress(a.Addr()), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// B asks for a consumer, then never says anything again (nor reads).
	if _, err := st.Write(appendFrame(nil, &frame{typ: tConsume, id: 1, vhost: "/", queue: "q"})); err != nil {
		t.Fatal(err)
	}
	local.waitFor(t, "the delivered messages requeued and the consumer gone", func() bool {
		_, consumers, _, _, requeued := q.snapshot()
		return consumers == 0 && requeued == 3
	})
}

// TestIdleStreamStaysUp: two live nodes exchange pings, so a stream with no traffic for many
// heartbeat intervals is not taken for dead.
func TestIdleStreamStaysUp(t *testing.T) {
	local := newFakeLocal("q")
	a, b := newMux(t, "a"), newMux(t, "b")
	la, err := a.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	srv := Serve(la, local, zerolog.Nop(), Options{Heartbeat: testBeat})
	c := NewClient(lb, zerolog.Nop(), Options{Heartbeat: testBeat})
	defer func() {
		c.Close()
		_ = srv.Close()
		_ = b.Close()
		_ = a.Close()
	}()
	if _, err := c.Stats(ctx30(t), a.Addr(), "/", "q"); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	cc := c.conns[a.Addr()]
	c.mu.Unlock()
	// Wait until ten of A's pings have come (ten intervals with nothing else on the stream).
	deadline := time.Now().Add(30 * time.Second)
	for cc.w.recv.Load() < 11 {
		if time.Now().After(deadline) {
			t.Fatalf("%d frames in 30s", cc.w.recv.Load())
		}
		time.Sleep(testBeat)
	}
	if _, err := c.Stats(ctx30(t), a.Addr(), "/", "q"); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	same := c.conns[a.Addr()] == cc
	c.mu.Unlock()
	if !same {
		t.Fatal("an idle stream between live nodes was broken")
	}
}

// blockingLocal's Publish waits for release, as a publish held by a disk that is behind.
type blockingLocal struct {
	*fakeLocal
	entered chan struct{}
	release chan struct{}
}

func (l *blockingLocal) Publish(vhost, queue string, m *Message, confirm bool, done func(error, func())) {
	close(l.entered)
	<-l.release
	l.fakeLocal.Publish(vhost, queue, m, confirm, done)
}

// TestBusyNodeIsNotSilent: a queue's node whose stream reader is stuck in its own work (a
// publish waiting for the disk) for many heartbeat intervals keeps the stream: the peer's
// pings it has not read yet are not silence.
func TestBusyNodeIsNotSilent(t *testing.T) {
	local := &blockingLocal{fakeLocal: newFakeLocal("q"), entered: make(chan struct{}), release: make(chan struct{})}
	a, b := newMux(t, "a"), newMux(t, "b")
	la, err := a.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	srv := Serve(la, local, zerolog.Nop(), Options{Heartbeat: testBeat})
	c := NewClient(lb, zerolog.Nop(), Options{Heartbeat: testBeat})
	defer func() {
		c.Close()
		_ = srv.Close()
		_ = b.Close()
		_ = a.Close()
	}()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(local.release) }) }
	defer release() // before the nodes stop, whatever happened
	done := make(chan error, 1)
	c.Publish(a.Addr(), "/", "q", msg("slow"), true, func(err error) { done <- err })
	<-local.entered
	c.mu.Lock()
	cc := c.conns[a.Addr()]
	c.mu.Unlock()
	// Ten of A's pings arrive while its reader is stuck: ten intervals.
	deadline := time.Now().Add(30 * time.Second)
	for cc.w.recv.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d frames from A in 30s", cc.w.recv.Load())
		}
		time.Sleep(testBeat)
	}
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the slow publish: %v, want its confirm", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no answer to the slow publish")
	}
}
