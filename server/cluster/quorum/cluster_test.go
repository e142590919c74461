package quorum

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/cluster/raftmux"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// The tests run three members of one queue's group in the test binary, each with its own
// store in a temporary directory and its own cluster transport on 127.0.0.1, with short Raft
// timings. Waits are generous: the machine running them may be slow and shared.

const (
	testQueueID = 42
	waitLong    = 45 * time.Second
)

var testTiming = Timing{HeartbeatTimeout: time.Second, ElectionTimeout: time.Second,
	LeaderLeaseTimeout: 500 * time.Millisecond, CommitTimeout: 50 * time.Millisecond, CommitBound: 3 * time.Second}

type member struct {
	name, dir, addr string
	st              *store.Store
	mux             *raftmux.Mux
	hub             *Hub
	g               *Group
	leads           chan *queue.Queue
	follows         chan []queue.Consumer
}

type testCluster struct {
	t       testing.TB
	members []Member
	nodes   []*member
	timing  Timing
	noSync  bool
}

func newCluster(t *testing.T, n int, timing Timing) *testCluster {
	t.Helper()
	return startCluster(t, n, timing, true)
}

// newBenchCluster is a cluster of three whose stores sync to disk.
func newBenchCluster(b *testing.B) *testCluster {
	return startCluster(b, 3, testTiming, false)
}

func startCluster(t testing.TB, n int, timing Timing, noSync bool) *testCluster {
	c := &testCluster{t: t, timing: timing, noSync: noSync}
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		lns = append(lns, ln) // held until every port is picked: no two members get the same one
		name := fmt.Sprintf("n%d", i+1)
		c.members = append(c.members, Member{Name: name, Address: addr})
		c.nodes = append(c.nodes, &member{name: name, dir: t.TempDir(), addr: addr})
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, m := range c.nodes {
		c.start(m)
	}
	t.Cleanup(func() {
		for _, m := range c.nodes {
			if m.g != nil {
				c.stop(m)
			}
		}
	})
	return c
}

// start opens m's store, transport and group member.
func (c *testCluster) start(m *member) {
	t := c.t
	t.Helper()
	st, err := store.Open(store.Options{Dir: m.dir, NoSync: c.noSync, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	// The node's metadata keeps the queue's record, so the store keeps its messages.
	if err := st.PutQueue(&store.Queue{Vhost: "/", Name: "qq", ID: testQueueID}); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	deadline := time.Now().Add(waitLong)
	for {
		if ln, err = net.Listen("tcp", m.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the port of a stopped member may linger briefly
	}
	if err != nil {
		t.Fatal(err)
	}
	mux := raftmux.New(raftmux.Config{Listener: ln, Node: m.name, Secret: []byte("0123456789abcdef"), Logger: zerolog.Nop()})
	hub, err := NewHub(mux, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	m.st, m.mux, m.hub = st, mux, hub
	m.leads, m.follows = make(chan *queue.Queue, 16), make(chan []queue.Consumer, 16)
	g, err := Start(Config{ID: testQueueID, Name: "qq", Self: m.name, Members: c.members, Hub: hub, Store: st,
		DataDir: m.dir, Timing: c.timing, Logger: zerolog.Nop(),
		Options: func() queue.Options {
			return queue.Options{Features: queue.NoFeatures, Window: queue.Window{Count: 4, Bytes: 1 << 20}}
		},
		OnLeader: func(q *queue.Queue) {
			select {
			case m.leads <- q:
			default: // nobody is watching
			}
		},
		OnFollower: func(_ *queue.Queue, cs []queue.Consumer) {
			select {
			case m.follows <- cs:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.g = g
}

// stop stops m as a node stops: its group member, transport and store.
func (c *testCluster) stop(m *member) {
	c.t.Helper()
	if err := m.g.Close(); err != nil {
		c.t.Error(err)
	}
	_ = m.hub.Close()
	_ = m.mux.Close()
	if err := m.st.Close(); err != nil {
		c.t.Error(err)
	}
	m.g = nil
}

// leader waits until one running member has a core, and returns it.
func (c *testCluster) leader() (*member, *queue.Queue) {
	c.t.Helper()
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		for _, m := range c.nodes {
			if m.g == nil {
				continue
			}
			if q := m.g.Core(); q != nil {
				return m, q
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no member became the leader")
	return nil, nil
}

func (c *testCluster) running() []*member {
	var out []*member
	for _, m := range c.nodes {
		if m.g != nil {
			out = append(out, m)
		}
	}
	return out
}

// eventually retries check until it returns "" or the wait runs out.
func eventually(t testing.TB, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	var last string
	for time.Now().Before(deadline) {
		if last = check(); last == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

func message(body string) *queue.Message {
	return &queue.Message{Exchange: "", RoutingKey: "qq", Body: []byte(body), Persistent: true}
}

// publish publishes bodies through the core and returns what each publish's done got.
func publish(t *testing.T, q *queue.Queue, bodies ...string) []chan error {
	t.Helper()
	var out []chan error
	for _, b := range bodies {
		ch := make(chan error, 1)
		if res, written := q.Publish(message(b), func(err error) { ch <- err }); res != queue.Enqueued || !written {
			t.Fatalf("publish %s: result %v, written %v", b, res, written)
		}
		out = append(out, ch)
	}
	return out
}

func waitDone(t *testing.T, chs []chan error) []error {
	t.Helper()
	var errs []error
	for i, ch := range chs {
		select {
		case err := <-ch:
			errs = append(errs, err)
		case <-time.After(waitLong):
			t.Fatalf("publish %d: done never ran", i)
		}
	}
	return errs
}

func publishConfirmed(t *testing.T, q *queue.Queue, bodies ...string) {
	t.Helper()
	for i, err := range waitDone(t, publish(t, q, bodies...)) {
		if err != nil {
			t.Fatalf("publish %s: %v", bodies[i], err)
		}
	}
}

// records describes m's stored records of the queue: body(deliveries) in seq order.
func records(t testing.TB, m *member) string {
	t.Helper()
	recs, err := m.st.ReadQueue(testQueueID, 0, 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	s := ""
	for _, r := range recs {
		if s != "" {
			s += ","
		}
		s += string(r.Msg.Body)
		if r.HasDeliveries {
			s += fmt.Sprintf("(%d)", r.Deliveries)
		}
	}
	return s
}

// everyMemberHolds waits until every running member's store and committed count show want.
func (c *testCluster) everyMemberHolds(want string, count int) {
	c.t.Helper()
	eventually(c.t, "replicas", func() string {
		for _, m := range c.running() {
			if got := records(c.t, m); got != want {
				return fmt.Sprintf("%s stores %q, want %q", m.name, got, want)
			}
			if n, _ := m.g.Committed(); n != count {
				return fmt.Sprintf("%s counts %d committed, want %d", m.name, n, count)
			}
		}
		return ""
	})
}

func dirExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
