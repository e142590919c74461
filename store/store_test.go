package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

func openT(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, NoSync: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

func closeT(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// wait submits through f and waits for its done.
func wait(f func(done func(error))) error {
	ch := make(chan error, 1)
	f(func(err error) { ch <- err })
	return <-ch
}

// declare stores queues with the given IDs, so Open does not drop their records as orphans.
func declare(t testing.TB, s *Store, ids ...uint64) {
	t.Helper()
	for _, id := range ids {
		if err := s.PutQueue(&Queue{Vhost: "/", Name: fmt.Sprint("q", id), ID: id}); err != nil {
			t.Fatal(err)
		}
	}
}

func msg(i int, size int) *Message {
	body := bytes.Repeat([]byte{byte(i)}, size)
	return &Message{Exchange: "ex", RoutingKey: fmt.Sprintf("rk.%d", i%3), Properties: []byte{0x80, 0, 1, 2},
		Body: body, Persistent: true, Expiry: int64(i), Priority: uint8(i % 10)}
}

// hold blocks the writer until the returned func is called, so everything submitted
// meanwhile is taken as one batch.
func hold(s *Store) (release func()) {
	entered, gate := make(chan struct{}), make(chan struct{})
	s.submit(op{kind: opNop, done: func(error) { close(entered); <-gate }})
	<-entered
	return func() { close(gate) }
}

func readAll(t testing.TB, s *Store, q uint64) []Stored {
	t.Helper()
	var all []Stored
	var after uint64
	for {
		page, err := s.ReadQueue(q, after, 100, 1<<20)
		if err != nil {
			t.Fatalf("ReadQueue: %v", err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
}

func has(t testing.TB, s *Store, key []byte) bool {
	t.Helper()
	err := s.db.View(func(txn *badger.Txn) error { _, err := txn.Get(key); return err })
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestDefinitionsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	xs := []Exchange{
		{Vhost: "/", Name: "amq.x", Kind: "topic", Durable: true, Internal: true, Args: []byte{1, 2}},
		{Vhost: "/", Name: "logs", Kind: "fanout", Durable: true, AutoDelete: true},
		{Vhost: "prod", Name: "", Kind: "direct", Durable: true},
	}
	for _, x := range xs {
		if err := s.PutExchange(x); err != nil {
			t.Fatal(err)
		}
	}
	q1 := &Queue{Vhost: "/", Name: "orders", Args: []byte("args")}
	q2 := &Queue{Vhost: "/", Name: "tmp", AutoDelete: true}
	for _, q := range []*Queue{q1, q2} {
		if err := s.PutQueue(q); err != nil {
			t.Fatal(err)
		}
	}
	if q1.ID == 0 || q2.ID == 0 || q1.ID == q2.ID {
		t.Fatalf("queue IDs %d, %d", q1.ID, q2.ID)
	}
	b := Binding{Vhost: "/", Source: "logs", DestKind: 1, Dest: "orders", RoutingKey: "#", Args: []byte("x"), ArgsHash: [32]byte{9}}
	b2 := b
	b2.ArgsHash = [32]byte{8}
	b2.Args = nil
	for _, bb := range []Binding{b, b2} {
		if err := s.PutBinding(bb); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteExchange("prod", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBinding(b2); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)

	s = openT(t, dir)
	defer closeT(t, s)
	gx, gq, gb, err := s.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	// Key order: names are length-prefixed, so shorter names sort first.
	xs[0], xs[1] = xs[1], xs[0]
	*q1, *q2 = *q2, *q1
	if fmt.Sprint(gx) != fmt.Sprint(xs[:2]) {
		t.Errorf("exchanges:\n got %+v\nwant %+v", gx, xs[:2])
	}
	if fmt.Sprint(gq) != fmt.Sprint([]Queue{*q1, *q2}) {
		t.Errorf("queues:\n got %+v\nwant %+v", gq, []Queue{*q1, *q2})
	}
	if fmt.Sprint(gb) != fmt.Sprint([]Binding{b}) {
		t.Errorf("bindings:\n got %+v\nwant %+v", gb, []Binding{b})
	}
	q3 := &Queue{Vhost: "/", Name: "later"}
	if err := s.PutQueue(q3); err != nil {
		t.Fatal(err)
	}
	if q3.ID <= max(q1.ID, q2.ID) {
		t.Errorf("queue ID %d after restart, not above %d and %d", q3.ID, q1.ID, q2.ID)
	}
	long := strings.Repeat("x", 256)
	if err := s.PutExchange(Exchange{Vhost: "/", Name: long}); !errors.Is(err, ErrInvalid) {
		t.Errorf("256-byte name: %v", err)
	}
}

func TestAppendThenRemoveInOneBatch(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	release := hold(s)
	var errs [4]error
	var wg sync.WaitGroup
	wg.Add(4)
	cb := func(i int) func(error) { return func(err error) { errs[i] = err; wg.Done() } }
	s.Append(Ref{1, 1}, 0, msg(1, 10), cb(0))
	s.SetDeliveries(Ref{1, 1}, 2, cb(1))
	s.Remove(Ref{1, 1}, 0, cb(2))
	s.Append(Ref{1, 2}, 0, msg(2, 10), cb(3))
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	got := readAll(t, s, 1)
	if len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("got %+v, want only seq 2", got)
	}
	if has(t, s, deliveriesKey(1, 1)) {
		t.Error("'R' of the removed message survived")
	}
	if s.w.batches.Load() > 3 {
		t.Errorf("%d batches, want the held ops in one", s.w.batches.Load())
	}
}

func TestSharedBodies(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	declare(t, s, 1, 2, 3)
	m := msg(7, 2000)
	id := s.NewMessageID()
	s.PutShared(id, m, 3, nil)
	for q := uint64(1); q <= 3; q++ {
		s.Append(Ref{q, 10}, id, nil, nil)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for q := uint64(1); q <= 3; q++ {
		got := readAll(t, s, q)
		if len(got) != 1 || got[0].MsgID != id || !bytes.Equal(got[0].Msg.Body, m.Body) || !got[0].Msg.Persistent {
			t.Fatalf("queue %d: %+v", q, got)
		}
	}
	var nBodies int
	_ = s.db.View(func(txn *badger.Txn) error {
		return iterate(txn, tagShared, badger.DefaultIteratorOptions, func(*badger.Item) error { nBodies++; return nil })
	})
	if nBodies != 1 {
		t.Fatalf("%d 'P' records, want 1", nBodies)
	}
	// Removing the same ref twice drops one reference.
	s.Remove(Ref{1, 10}, id, nil)
	s.Remove(Ref{1, 10}, id, nil)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !has(t, s, sharedKey(id)) {
		t.Fatal("body deleted with references left")
	}
	closeT(t, s) // refcounts are rebuilt at Open
	s = openT(t, dir)
	defer closeT(t, s)
	if n := s.NewMessageID(); n <= id {
		t.Errorf("NewMessageID after reopen = %d, not above %d", n, id)
	}
	s.Remove(Ref{2, 10}, id, nil)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !has(t, s, sharedKey(id)) {
		t.Fatal("body deleted with a reference left")
	}
	if err := wait(func(d func(error)) { s.Remove(Ref{3, 10}, id, d) }); err != nil {
		t.Fatal(err)
	}
	if has(t, s, sharedKey(id)) {
		t.Fatal("body survived its last reference")
	}
	if err := wait(func(d func(error)) { s.Append(Ref{3, 11}, id, nil, d) }); !errors.Is(err, ErrInvalid) {
		t.Errorf("Append of a deleted body: %v", err)
	}
}

func TestTransientGoneAfterReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	declare(t, s, 1, 2)
	tm := msg(1, 500)
	tm.Persistent = false
	s.Append(Ref{1, 1}, 0, msg(0, 500), nil)
	s.Append(Ref{1, 2}, 0, tm, nil)
	s.SetDeliveries(Ref{1, 2}, 1, nil)
	id := s.NewMessageID()
	s.PutShared(id, tm, 2, nil)
	s.Append(Ref{1, 3}, id, tm, nil)
	s.Append(Ref{2, 3}, id, nil, nil)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, 1); len(got) != 3 || got[1].Msg.Persistent || !got[1].HasDeliveries {
		t.Fatalf("before reopen: %+v", got)
	}
	closeT(t, s)
	s = openT(t, dir)
	defer closeT(t, s)
	if got := readAll(t, s, 1); len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("after reopen: %+v", got)
	}
	if got := readAll(t, s, 2); len(got) != 0 {
		t.Fatalf("after reopen, queue 2: %+v", got)
	}
	if has(t, s, deliveriesKey(1, 2)) || has(t, s, sharedKey(id)) {
		t.Error("'R' or 'P' of a transient message survived")
	}
}

// fill appends n records (every third one shared with queue 99, every fifth with a delivery
// count) to queue q and waits.
func fill(t testing.TB, s *Store, q uint64, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if i%3 == 0 {
			id := s.NewMessageID()
			s.PutShared(id, msg(i, 300), 2, nil)
			s.Append(Ref{q, uint64(i)}, id, nil, nil)
			s.Append(Ref{99, uint64(i)}, id, nil, nil)
		} else {
			s.Append(Ref{q, uint64(i)}, 0, msg(i, 300), nil)
		}
		if i%5 == 0 {
			s.SetDeliveries(Ref{q, uint64(i)}, uint32(i), nil)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

func countKeys(t testing.TB, s *Store, tag byte) int {
	n := 0
	_ = s.db.View(func(txn *badger.Txn) error {
		return iterate(txn, tag, badger.DefaultIteratorOptions, func(*badger.Item) error { n++; return nil })
	})
	return n
}

func TestOrphanRecordsDroppedAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	live := &Queue{Vhost: "/", Name: "live"}
	if err := s.PutQueue(live); err != nil {
		t.Fatal(err)
	}
	if err := s.PutQueue(&Queue{Vhost: "/", Name: "q99", ID: 99}); err != nil {
		t.Fatal(err)
	}
	fill(t, s, 5000, 5000) // no 'Q' record for queue 5000
	s.Append(Ref{live.ID, 1}, 0, msg(1, 10), nil)
	closeT(t, s)

	s = openT(t, dir)
	defer closeT(t, s)
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, 5000); len(got) != 0 {
		t.Fatalf("%d records of the deleted queue survived", len(got))
	}
	if n := countKeys(t, s, tagDeliveries); n != 0 {
		t.Errorf("%d 'R' records survived", n)
	}
	if got := readAll(t, s, live.ID); len(got) != 1 {
		t.Errorf("live queue: %d records", len(got))
	}
	// The bodies shared with queue 99 stay until its references go.
	if n, want := countKeys(t, s, tagShared), 5000/3; n != want {
		t.Errorf("%d bodies, want %d", n, want)
	}
	if err := s.DeleteQueue("/", "q99", 99); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, s, tagShared) + countKeys(t, s, tagMessage); n != 1 {
		t.Errorf("%d records left, want the live queue's one", n)
	}
}

func TestPurgeAndDeleteQueue(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	q := &Queue{Vhost: "/", Name: "q"}
	if err := s.PutQueue(q); err != nil {
		t.Fatal(err)
	}
	fill(t, s, q.ID, 10000)
	s.PurgeQueue(q.ID, 6000)
	// A Remove of a purged ref, racing the purge, must not drop a second reference.
	s.Remove(Ref{q.ID, 3}, 1, nil)
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s, q.ID)
	if len(got) != 4000 || got[0].Seq != 6001 {
		t.Fatalf("after purge: %d records from seq %d", len(got), got[0].Seq)
	}
	if got[4].Seq != 6005 || !got[4].HasDeliveries || got[4].Deliveries != 6005 {
		t.Errorf("delivery count: %+v", got[4])
	}
	if n := countKeys(t, s, tagShared); n != 10000/3 {
		t.Errorf("%d bodies, want %d (queue 99 still refers to all)", n, 10000/3)
	}
	s.PurgeRange(q.ID, 7000, 7010)
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	got = readAll(t, s, q.ID)
	if len(got) != 3990 || got[999].Seq != 7000 || got[1000].Seq != 7011 {
		t.Fatalf("after PurgeRange(7000, 7010]: %d records, %d then %d", len(got), got[999].Seq, got[1000].Seq)
	}
	if err := s.DeleteQueue(q.Vhost, q.Name, q.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, q.ID); len(got) != 0 {
		t.Fatalf("after delete: %d records", len(got))
	}
	if n := countKeys(t, s, tagDeliveries); n != 0 {
		t.Errorf("%d 'R' left", n)
	}
	s.PurgeQueue(99, ^uint64(0))
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, s, tagShared); n != 0 {
		t.Errorf("%d bodies left after every reference went", n)
	}
	if len(s.w.refs) != 0 || len(s.w.rset) != 0 {
		t.Errorf("writer state left: %d refs, %d rset", len(s.w.refs), len(s.w.rset))
	}
}

// TestCrashHelper is the child of TestCleanShutdown: it writes and exits without Close.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv("STORE_CRASH_DIR")
	if dir == "" {
		return // only meaningful as TestCleanShutdown's child process
	}
	s, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := wait(func(d func(error)) { s.Append(Ref{7, 1}, 0, msg(1, 100), d) }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(0) // crash: no Close
}

func TestCleanShutdown(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if !s.CleanShutdown() {
		t.Error("new directory: CleanShutdown false")
	}
	if err := s.PutQueue(&Queue{Vhost: "/", Name: "q", ID: 7}); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	s = openT(t, dir)
	if !s.CleanShutdown() {
		t.Error("after Close: CleanShutdown false")
	}
	closeT(t, s)

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	cmd.Env = append(os.Environ(), "STORE_CRASH_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crash helper: %v\n%s", err, out)
	}
	s = openT(t, dir)
	if s.CleanShutdown() {
		t.Error("after a crash: CleanShutdown true")
	}
	if got := readAll(t, s, 7); len(got) != 1 {
		t.Errorf("the confirmed message did not survive the crash: %+v", got)
	}
	closeT(t, s)
	s = openT(t, dir)
	defer closeT(t, s)
	if !s.CleanShutdown() {
		t.Error("after recovering and closing: CleanShutdown false")
	}
}

func TestDirectoryLocked(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	defer closeT(t, s)
	_, err := Open(Options{Dir: dir})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	for _, want := range []string{"in use", dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	t.Log(err)
}

func TestSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(schemaKey(), encodeSchema(99)) }); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	_, err := Open(Options{Dir: dir, NoSync: true})
	if !errors.Is(err, ErrSchemaVersion) || !strings.Contains(err.Error(), "99") {
		t.Fatalf("Open of a schema-99 directory: %v", err)
	}
	t.Log(err)

	// A Badger directory that is not Warren's.
	other := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(other).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if _, err := Open(Options{Dir: other, NoSync: true}); !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("Open of a foreign directory: %v", err)
	}
}

func TestCorruptDirectory(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	closeT(t, s)
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("garbage garbage garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Options{Dir: dir, NoSync: true})
	if err == nil || !strings.Contains(err.Error(), dir) || errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a damaged directory: %v", err)
	}
	t.Log(err)
}

func TestConcurrentAppend(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	const workers, per = 16, 400
	var calls [workers * per]atomic.Int32
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inner sync.WaitGroup
			for i := range per {
				n := g*per + i
				inner.Add(1)
				s.Append(Ref{uint64(g + 1), uint64(i + 1)}, 0, msg(n, 200), func(err error) {
					if err != nil {
						t.Error(err)
					}
					calls[n].Add(1)
					inner.Done()
				})
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("done of op %d called %d times", i, c)
		}
	}
	for g := range workers {
		got := readAll(t, s, uint64(g+1))
		if len(got) != per {
			t.Fatalf("queue %d: %d records", g+1, len(got))
		}
		for i, st := range got {
			if st.Seq != uint64(i+1) || !bytes.Equal(st.Msg.Body, msg(g*per+i, 200).Body) {
				t.Fatalf("queue %d record %d: seq %d", g+1, i, st.Seq)
			}
		}
	}
	t.Logf("%d ops in %d batches, %d commits", s.w.ops.Load(), s.w.batches.Load(), s.w.commits.Load())
}

func TestTxnTooBigSplits(t *testing.T) {
	// A 1 MiB memtable caps a transaction at ~150 KB of LSM entries: 2000 inline records
	// of ~220 bytes need several.
	s, err := open(Options{Dir: t.TempDir(), NoSync: true, Logger: testLogger(t)},
		func(o *badger.Options) { o.MemTableSize = 1 << 20 })
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, s)
	release := hold(s)
	var failed atomic.Int32
	var wg sync.WaitGroup
	const n = 2000
	wg.Add(n + 1)
	id := s.NewMessageID()
	s.PutShared(id, msg(0, 100), 1, func(err error) {
		if err != nil {
			failed.Add(1)
		}
		wg.Done()
	})
	for i := 1; i <= n; i++ {
		var mid uint64
		var m *Message
		if i == n/2 {
			mid = id
		} else {
			m = msg(i, 200)
		}
		s.Append(Ref{1, uint64(i)}, mid, m, func(err error) {
			if err != nil {
				t.Error(err)
				failed.Add(1)
			}
			wg.Done()
		})
	}
	commits := s.w.commits.Load()
	release()
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d ops failed", failed.Load())
	}
	if c := s.w.commits.Load() - commits; c < 2 {
		t.Errorf("%d commits for one oversized batch, want a split", c)
	} else {
		t.Logf("one batch of %d ops committed in %d transactions", n+1, c)
	}
	if got := readAll(t, s, 1); len(got) != n || got[n/2-1].MsgID != id {
		t.Fatalf("%d records read back", len(got))
	}
}

func TestDiskFull(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	if err := wait(func(d func(error)) { s.Append(Ref{1, 1}, 0, msg(1, 10), d) }); err != nil {
		t.Fatal(err)
	}
	release := hold(s)
	s.w.freeSpace = func(string) (uint64, bool) { return 1 << 20, true }
	s.w.sinceDiskCheck = 1 << 62
	release()
	err := wait(func(d func(error)) { s.Append(Ref{1, 2}, 0, msg(2, 10), d) })
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Append on a full disk: %v", err)
	}
	t.Log(err)
	if err := wait(func(d func(error)) { s.Remove(Ref{1, 1}, 0, d) }); err != nil {
		t.Fatalf("Remove on a full disk: %v", err)
	}
	release = hold(s)
	s.w.freeSpace = freeBytes
	release()
	if err := wait(func(d func(error)) { s.Append(Ref{1, 3}, 0, msg(3, 10), d) }); err != nil {
		t.Fatalf("Append after space came back: %v", err)
	}
	if got := readAll(t, s, 1); len(got) != 1 || got[0].Seq != 3 {
		t.Fatalf("records: %+v", got)
	}
}

func TestClosed(t *testing.T) {
	s := openT(t, t.TempDir())
	closeT(t, s)
	if err := wait(func(d func(error)) { s.Append(Ref{1, 1}, 0, msg(1, 10), d) }); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if err := s.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// The broker passes the message's shared ID to Remove even for a queue that stored the
// message inline (a non-durable queue); that must not drop a reference held by another.
func TestRemoveInlineWithMsgIDKeepsBody(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	id := s.NewMessageID()
	m := msg(1, 400)
	s.PutShared(id, m, 1, nil)
	s.Append(Ref{1, 1}, id, nil, nil)
	s.Append(Ref{2, 1}, 0, m, nil)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	release := hold(s) // the same in one batch: an inline Append then its Remove
	s.Append(Ref{2, 2}, 0, m, nil)
	s.Remove(Ref{2, 2}, id, nil)
	release()
	s.Remove(Ref{2, 1}, id, nil)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !has(t, s, sharedKey(id)) {
		t.Fatal("removing inline records deleted a body still referenced")
	}
	if got := readAll(t, s, 1); len(got) != 1 || !bytes.Equal(got[0].Msg.Body, m.Body) {
		t.Fatalf("queue 1: %+v", got)
	}
}

func TestWaitBelowTracksPendingWrites(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 4096)
	for i := uint64(1); i <= 2000; i++ {
		s.Append(Ref{QueueID: 1, Seq: i}, 0, &Message{Body: body, Persistent: true}, nil)
	}
	if s.PendingBytes() <= 0 {
		// The writer may already have taken everything; submit more so something is waiting.
		for i := uint64(2001); i <= 4000; i++ {
			s.Append(Ref{QueueID: 1, Seq: i}, 0, &Message{Body: body, Persistent: true}, nil)
		}
	}
	s.WaitBelow(0)
	if n := s.PendingBytes(); n != 0 {
		t.Errorf("WaitBelow(0) returned with %d bytes pending", n)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.WaitBelow(0) // must not block after Close
}

func TestLevelRecordsSurviveWithTheirQueue(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	q := Queue{Vhost: "/", Name: "prio"}
	if err := s.PutQueue(&q); err != nil {
		t.Fatal(err)
	}
	lvl := LevelQueueID(q.ID, 9)
	s.Append(Ref{QueueID: lvl, Seq: 1}, 0, &Message{Body: []byte("high"), Persistent: true}, nil)
	orphan := LevelQueueID(q.ID+1000, 9) // a level of a queue that has no record
	s.Append(Ref{QueueID: orphan, Seq: 1}, 0, &Message{Body: []byte("lost"), Persistent: true}, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ix, err := s.IndexQueue(lvl); err != nil || ix.Count != 1 {
		t.Errorf("level records after reopen: %+v, %v; want 1", ix, err)
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if ix, _ := s.IndexQueue(orphan); ix.Count != 0 {
		t.Errorf("records of a level whose queue is gone: %d, want 0", ix.Count)
	}
}

// A body of MaxBody, the most any max-message-size lets through, is stored and read back
// after a reopen; a record past what one value-log file holds is refused with ErrInvalid,
// inline or shared, rather than handed to Badger.
func TestLargestMessage(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	declare(t, s, 1)
	big := msg(7, MaxBody)
	big.Properties = bytes.Repeat([]byte{0xaa}, 64<<10)
	if err := wait(func(d func(error)) { s.Append(Ref{1, 1}, 0, big, d) }); err != nil {
		t.Fatalf("Append of a %d-byte body: %v", MaxBody, err)
	}
	over := msg(8, maxRecord)
	if err := wait(func(d func(error)) { s.Append(Ref{1, 2}, 0, over, d) }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Append of a %d-byte body: %v, want ErrInvalid", maxRecord, err)
	}
	if err := wait(func(d func(error)) { s.PutShared(10, over, 1, d) }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("PutShared of a %d-byte body: %v, want ErrInvalid", maxRecord, err)
	}
	closeT(t, s)

	s = openT(t, dir)
	defer closeT(t, s)
	got := readAll(t, s, 1)
	if len(got) != 1 || !bytes.Equal(got[0].Msg.Body, big.Body) || !bytes.Equal(got[0].Msg.Properties, big.Properties) {
		t.Fatalf("after reopen: %d records, want the one %d-byte message", len(got), MaxBody)
	}
}
