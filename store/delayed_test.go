package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func putDelayed(t *testing.T, s *Store, x string, due int64, persistent bool, body string) DelayedCursor {
	t.Helper()
	seq, err := s.NewDelayedSeq()
	if err != nil {
		t.Fatal(err)
	}
	d := &Delayed{Due: due, Seq: seq, Keys: []string{"rk", "cc"}, TTL: -1,
		Msg: Message{Exchange: x, RoutingKey: "rk", Properties: []byte{0x80, 0}, Body: []byte(body), Persistent: persistent}}
	if err := wait(func(done func(error)) { s.PutDelayed("/", x, d, done) }); err != nil {
		t.Fatalf("PutDelayed: %v", err)
	}
	return DelayedCursor{Due: due, Seq: seq}
}

func bodies(ds []Delayed) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(d.Msg.Body))
	}
	return out
}

// Held messages come back in due order whatever the order they were stored in, a page at a
// time from a cursor, and only those of their own exchange; a deleted one is gone.
func TestDelayedOrderAndCursor(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	for i, due := range []int64{500, 100, 300, 100, 200} {
		putDelayed(t, s, "x", due, true, fmt.Sprint(due, "-", i))
	}
	putDelayed(t, s, "x2", 50, true, "other exchange")
	putDelayed(t, s, "x-longer", 60, true, "longer name")
	first, err := s.ReadDelayed("/", "x", nil, 2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(bodies(first)); got != "[100-1 100-3]" {
		t.Fatalf("first page %s, want [100-1 100-3]", got)
	}
	c := DelayedCursor{Due: first[1].Due, Seq: first[1].Seq}
	rest, err := s.ReadDelayed("/", "x", &c, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(bodies(rest)); got != "[200-4 300-2 500-0]" {
		t.Fatalf("after the cursor %s, want [200-4 300-2 500-0]", got)
	}
	if d := rest[0]; fmt.Sprint(d.Keys) != "[rk cc]" || d.TTL != -1 || d.Msg.RoutingKey != "rk" || !d.Msg.Persistent {
		t.Fatalf("record read back as %+v", d)
	}
	if err := wait(func(done func(error)) {
		s.DeleteDelayed("/", "x", DelayedCursor{Due: rest[0].Due, Seq: rest[0].Seq}, done)
	}); err != nil {
		t.Fatal(err)
	}
	s.held.settle()
	all, _ := s.ReadDelayed("/", "x", nil, 10, 1<<20)
	if got := fmt.Sprint(bodies(all)); got != "[100-1 100-3 300-2 500-0]" {
		t.Fatalf("after a delete %s", got)
	}
}

// After a reopen the persistent held messages are indexed per exchange and the transient
// ones are gone; DropDelayed deletes one exchange's and leaves the others'.
func TestDelayedReopenIndexDrop(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	for i := range 5 {
		putDelayed(t, s, "x", int64(100+i), i%2 == 0, fmt.Sprint(i))
	}
	putDelayed(t, s, "y", 1, true, "y")
	closeT(t, s)
	s = openT(t, dir)
	defer closeT(t, s)
	idx, err := s.IndexDelayed()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(idx); got != "[{/ x 3} {/ y 1}]" {
		t.Fatalf("index %s, want [{/ x 3} {/ y 1}]", got)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	all, _ := s.ReadDelayed("/", "x", nil, 10, 1<<20)
	if got := fmt.Sprint(bodies(all)); got != "[0 2 4]" {
		t.Fatalf("after reopen %s, want the persistent [0 2 4]", got)
	}
	if n, err := s.DropDelayed("/", "x"); err != nil || n != 3 {
		t.Fatalf("DropDelayed = %d, %v; want 3", n, err)
	}
	if all, _ := s.ReadDelayed("/", "x", nil, 10, 1<<20); len(all) != 0 {
		t.Fatalf("%d left after the drop", len(all))
	}
	if _, err := os.Stat(filepath.Join(dir, heldDirName, heldDirFor("/"), heldDirFor("x"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dropped exchange's directory: %v, want it gone", err)
	}
	if ys, _ := s.ReadDelayed("/", "y", nil, 10, 1<<20); len(ys) != 1 {
		t.Fatalf("the other exchange kept %d, want 1", len(ys))
	}
	// Sequence numbers keep growing across the restart, so keys never collide.
	seq, _ := s.NewDelayedSeq()
	if seq <= all0Seq(t, s) {
		t.Fatalf("sequence went back to %d", seq)
	}
}

func all0Seq(t *testing.T, s *Store) uint64 {
	t.Helper()
	ys, err := s.ReadDelayed("/", "y", nil, 1, 1<<20)
	if err != nil || len(ys) != 1 {
		t.Fatalf("read y: %v", err)
	}
	return ys[0].Seq
}

// A small held message is padded to the value log's threshold and reads back the same; a
// large one is not padded.
func TestDelayedRecordPadding(t *testing.T) {
	for _, size := range []int{0, 10, 300} {
		d := &Delayed{Due: 1, Seq: 2, Keys: []string{"a", "bcd"}, TTL: 42,
			Msg: Message{Exchange: "x", RoutingKey: "a", Properties: []byte{0x80, 0}, Body: make([]byte, size), Persistent: true}}
		v, err := encodeDelayed(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) < valueThreshold || size == 300 && len(v) > 300+64 {
			t.Errorf("body %d: record of %d bytes", size, len(v))
		}
		var got Delayed
		if err := decodeDelayed(v, &got); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.Keys) != "[a bcd]" || got.TTL != 42 || len(got.Msg.Body) != size || got.Msg.Exchange != "x" {
			t.Errorf("body %d: read back %+v", size, got)
		}
	}
}

// A page stops at the byte budget, after at least one message.
func TestDelayedReadByteBudget(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	for i := range 5 {
		putDelayed(t, s, "x", int64(i), true, strings.Repeat("b", 100))
	}
	if ds, _ := s.ReadDelayed("/", "x", nil, 10, 250); len(ds) != 3 {
		t.Errorf("read %d under a 250-byte budget of 102-byte messages, want 3", len(ds))
	}
	if ds, _ := s.ReadDelayed("/", "x", nil, 10, 1); len(ds) != 1 {
		t.Errorf("read %d under a 1-byte budget, want the first one", len(ds))
	}
}
