//go:build linux || darwin || freebsd

package store

import (
	"errors"
	"testing"
	"time"
)

// TestDiskReserveAtRuntime: the broker's disk alarm polls DiskFree (kept fresh while the store
// is idle) and changes the reserve with SetDiskReserve; the next message write obeys it.
func TestDiskReserveAtRuntime(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	free, ok := s.DiskFree()
	if !ok || free == 0 {
		t.Fatalf("DiskFree right after Open: %d, %v", free, ok)
	}
	// Idle: the guard reads statfs again within a second. Fill a reading we can recognise.
	s.disk.free.Store(1)
	deadline := time.Now().Add(5 * time.Second)
	for f, _ := s.DiskFree(); f == 1; f, _ = s.DiskFree() {
		if time.Now().After(deadline) {
			t.Fatal("DiskFree not refreshed within 5 s while the store was idle")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := wait(func(d func(error)) { s.Append(Ref{1, 1}, 0, msg(1, 100), d) }); err != nil {
		t.Fatal(err)
	}
	s.SetDiskReserve(1 << 62)
	err := wait(func(d func(error)) { s.Append(Ref{1, 2}, 0, msg(2, 100), d) })
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Append with a reserve larger than the disk: %v, want ErrDiskFull", err)
	}
	s.SetDiskReserve(-1)
	if err := wait(func(d func(error)) { s.Append(Ref{1, 3}, 0, msg(3, 100), d) }); err != nil {
		t.Fatalf("Append with the check off: %v", err)
	}
}
