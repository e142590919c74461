package store

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftbench "github.com/hashicorp/raft/bench"
)

func raftLogT(t testing.TB, s *Store, group uint64) *RaftLog {
	t.Helper()
	l, err := s.RaftLog(group)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func wantIndexes(t *testing.T, l *RaftLog, first, last uint64) {
	t.Helper()
	f, _ := l.FirstIndex()
	la, _ := l.LastIndex()
	if f != first || la != last {
		t.Fatalf("first, last = %d, %d; want %d, %d", f, la, first, last)
	}
}

// TestRaftLogStoresReadsAndDeletes: entries come back as stored (term, type, data,
// extensions, time), first and last follow appends and deletions at either end, groups do not
// see each other's entries, and all of it holds after the store is reopened.
func TestRaftLogStoresReadsAndDeletes(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	l := raftLogT(t, s, 7)
	wantIndexes(t, l, 0, 0)
	at := time.Unix(1700000000, 123)
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: i / 4, Type: raft.LogCommand, Data: []byte("cmd" + strconv.Itoa(int(i))),
			Extensions: []byte{byte(i)}, AppendedAt: at})
	}
	logs[2].Data, logs[2].Type = nil, raft.LogNoop
	if err := l.StoreLogs(logs[:6]); err != nil {
		t.Fatal(err)
	}
	for _, lg := range logs[6:] {
		if err := l.StoreLog(lg); err != nil {
			t.Fatal(err)
		}
	}
	wantIndexes(t, l, 1, 10)
	var got raft.Log
	for _, want := range []*raft.Log{logs[2], logs[4], logs[9]} {
		if err := l.GetLog(want.Index, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", want.Index, got, *want)
		}
	}
	if err := l.GetLog(11, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(11) = %v, want ErrLogNotFound", err)
	}
	other := raftLogT(t, s, 8)
	wantIndexes(t, other, 0, 0)
	if err := other.GetLog(5, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("group 8 sees group 7's entry: %v", err)
	}

	if err := l.DeleteRange(1, 3); err != nil { // compaction after a snapshot
		t.Fatal(err)
	}
	if err := l.DeleteRange(8, 20); err != nil { // a follower dropping a conflicting suffix
		t.Fatal(err)
	}
	wantIndexes(t, l, 4, 7)
	if err := l.GetLog(8, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(8) after DeleteRange = %v", err)
	}
	closeT(t, s)

	s = openT(t, dir)
	defer closeT(t, s)
	l = raftLogT(t, s, 7)
	wantIndexes(t, l, 4, 7)
	if err := l.GetLog(6, &got); err != nil || !reflect.DeepEqual(&got, logs[5]) {
		t.Fatalf("GetLog(6) after reopen = %+v, %v", got, err)
	}
	if err := l.DeleteRange(0, 100); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, l, 0, 0)
	if err := s.DropRaftGroup(7); err != nil {
		t.Fatal(err)
	}
}

// TestRaftStableValues: a missing key is raft's "not found", values and uint64s persist over
// a reopen, and DropRaftGroup removes a group's values and entries only.
func TestRaftStableValues(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	l := raftLogT(t, s, 1)
	if _, err := l.Get([]byte("LastVoteCand")); err == nil || err.Error() != "not found" {
		t.Fatalf("Get of a missing key = %v, want raft's \"not found\"", err)
	}
	if v, err := l.GetUint64([]byte("CurrentTerm")); v != 0 || err == nil || err.Error() != "not found" {
		t.Fatalf("GetUint64 of a missing key = %d, %v", v, err)
	}
	if err := l.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := l.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if err := raftLogT(t, s, 2).SetUint64([]byte("CurrentTerm"), 9); err != nil {
		t.Fatal(err)
	}
	if err := l.StoreLog(&raft.Log{Index: 1, Term: 42, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)

	s = openT(t, dir)
	defer closeT(t, s)
	l = raftLogT(t, s, 1)
	if v, err := l.GetUint64([]byte("CurrentTerm")); v != 42 || err != nil {
		t.Fatalf("CurrentTerm after reopen = %d, %v", v, err)
	}
	if v, err := l.Get([]byte("LastVoteCand")); string(v) != "n2" || err != nil {
		t.Fatalf("LastVoteCand after reopen = %q, %v", v, err)
	}
	if err := s.DropRaftGroup(1); err != nil {
		t.Fatal(err)
	}
	l = raftLogT(t, s, 1)
	wantIndexes(t, l, 0, 0)
	if _, err := l.GetUint64([]byte("CurrentTerm")); err == nil {
		t.Fatal("group 1's term survived DropRaftGroup")
	}
	if v, err := raftLogT(t, s, 2).GetUint64([]byte("CurrentTerm")); v != 9 || err != nil {
		t.Fatalf("group 2's term = %d, %v after dropping group 1", v, err)
	}
}

// countFSM records the commands it applies, in order.
type countFSM struct {
	mu  sync.Mutex
	got []string
}

func (f *countFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	f.got = append(f.got, string(l.Data))
	f.mu.Unlock()
	return nil
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots here") }
func (f *countFSM) Restore(io.ReadCloser) error         { return errors.New("no snapshots here") }

func (f *countFSM) applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

// TestRaftClusterOnTheStore runs three hashicorp/raft nodes whose logs and stable stores are
// RaftLogs in three stores: commands applied on the leader reach every node in order, and a
// follower stopped and restarted on its store rebuilds its state from the log and catches up
// on what it missed.
func TestRaftClusterOnTheStore(t *testing.T) {
	type node struct {
		dir   string
		st    *Store
		r     *raft.Raft
		fsm   *countFSM
		addr  raft.ServerAddress
		trans *raft.InmemTransport
	}
	nodes := make([]*node, 3)
	var servers []raft.Server
	for i := range nodes {
		addr, trans := raft.NewInmemTransport(raft.ServerAddress("n" + strconv.Itoa(i)))
		nodes[i] = &node{dir: t.TempDir(), addr: addr, trans: trans}
		servers = append(servers, raft.Server{ID: raft.ServerID(addr), Address: addr})
	}
	connect := func() {
		for _, a := range nodes {
			for _, b := range nodes {
				if a != b {
					a.trans.Connect(b.addr, b.trans)
				}
			}
		}
	}
	connect()
	start := func(n *node, bootstrap bool) {
		n.st = openT(t, n.dir)
		l := raftLogT(t, n.st, 0)
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(n.addr)
		conf.HeartbeatTimeout, conf.ElectionTimeout = 100*time.Millisecond, 100*time.Millisecond
		conf.LeaderLeaseTimeout, conf.CommitTimeout = 50*time.Millisecond, 5*time.Millisecond
		conf.LogOutput = io.Discard
		n.fsm = &countFSM{}
		if bootstrap {
			if err := raft.BootstrapCluster(conf, l, l, raft.NewInmemSnapshotStore(), n.trans, raft.Configuration{Servers: servers}); err != nil {
				t.Fatal(err)
			}
		}
		r, err := raft.NewRaft(conf, n.fsm, l, l, raft.NewInmemSnapshotStore(), n.trans)
		if err != nil {
			t.Fatal(err)
		}
		n.r = r
	}
	stop := func(n *node) {
		if err := n.r.Shutdown().Error(); err != nil {
			t.Fatal(err)
		}
		closeT(t, n.st)
	}
	for _, n := range nodes {
		start(n, true)
	}
	defer func() {
		for _, n := range nodes {
			stop(n)
		}
	}()
	leader := func() *node {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, n := range nodes {
				if n.r.State() == raft.Leader {
					return n
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("no leader within 10s")
		return nil
	}
	apply := func(from, to int) {
		l := leader()
		var last raft.ApplyFuture
		for i := from; i < to; i++ {
			last = l.r.Apply([]byte(fmt.Sprintf("c%03d", i)), 5*time.Second)
		}
		if err := last.Error(); err != nil {
			t.Fatal(err)
		}
	}
	want := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, fmt.Sprintf("c%03d", i))
		}
		return out
	}
	waitApplied := func(n *node, count int) {
		deadline := time.Now().Add(10 * time.Second)
		for len(n.fsm.applied()) < count && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := n.fsm.applied(); !reflect.DeepEqual(got, want(count)) {
			t.Fatalf("%s applied %d commands, want c000..c%03d in order: %v", n.addr, len(got), count-1, got)
		}
	}

	apply(0, 200)
	for _, n := range nodes {
		waitApplied(n, 200)
	}
	var follower *node
	for _, n := range nodes {
		if n.r.State() != raft.Leader {
			follower = n
			break
		}
	}
	stop(follower)
	apply(200, 250)
	_, follower.trans = raft.NewInmemTransport(follower.addr)
	connect()
	start(follower, false)
	waitApplied(follower, 250)
}

func BenchmarkRaftLogStore(b *testing.B) {
	for name, bench := range map[string]func(*testing.B, raft.LogStore){
		"StoreLogs": raftbench.StoreLogs, "GetLog": raftbench.GetLog, "StoreLog": raftbench.StoreLog,
	} {
		b.Run(name, func(b *testing.B) {
			s := openT(b, b.TempDir())
			defer closeT(b, s)
			bench(b, raftLogT(b, s, 1))
		})
	}
}
