//go:build linux || darwin || freebsd

package store

import (
	"errors"
	"fmt"
	"testing"
)

// Below the disk reserve a held message is refused with ErrDiskFull, as a message write is,
// and never shows up later (not read, not counted after a restart); once there is room again
// the next one is taken.
func TestHeldRefusedBelowDiskReserve(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	putDelayed(t, s, "x", 100, true, "before")
	s.SetDiskReserve(1 << 62)
	seq, _ := s.NewDelayedSeq()
	refused := &Delayed{Due: 150, Seq: seq, TTL: -1, Msg: Message{Exchange: "x", Body: []byte("refused"), Persistent: true}}
	if err := wait(func(done func(error)) { s.PutDelayed("/", "x", refused, done) }); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("PutDelayed below the reserve: %v, want ErrDiskFull", err)
	}
	s.SetDiskReserve(-1)
	putDelayed(t, s, "x", 200, true, "after")
	if all, _ := s.ReadDelayed("/", "x", nil, 10, 1<<20); fmt.Sprint(bodies(all)) != "[before after]" {
		t.Fatalf("read %v, want [before after]", bodies(all))
	}
	closeT(t, s)
	s = openT(t, dir)
	defer closeT(t, s)
	if idx, _ := s.IndexDelayed(); fmt.Sprint(idx) != "[{/ x 2}]" {
		t.Fatalf("index after restart %v, want [{/ x 2}]", idx)
	}
}
