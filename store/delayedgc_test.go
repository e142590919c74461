package store

import "testing"

// While an exchange's held messages are being read (drained in due order), value-log GC is
// put off, so it does not rewrite the half of each file still held while the other half is
// delivered; but only for maxGCDeferrals intervals in a row, so an exchange that is never
// idle still gets its value log collected, and not at all when nothing is read.
func TestDelayedReadsPutOffValueLogGC(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	putDelayed(t, s, "x", 100, true, "held")
	deferred := 0
	if s.deferGC(&deferred) {
		t.Fatal("GC put off with no held message read")
	}
	for i := 1; i <= maxGCDeferrals; i++ {
		if _, err := s.ReadDelayed("/", "x", nil, 10, 1<<20); err != nil {
			t.Fatal(err)
		}
		if !s.deferGC(&deferred) {
			t.Fatalf("interval %d: GC not put off while held messages are read", i)
		}
	}
	if _, err := s.ReadDelayed("/", "x", nil, 10, 1<<20); err != nil {
		t.Fatal(err)
	}
	if s.deferGC(&deferred) {
		t.Fatalf("GC put off for more than %d intervals in a row", maxGCDeferrals)
	}
	if _, err := s.ReadDelayed("/", "x", nil, 10, 1<<20); err != nil {
		t.Fatal(err)
	}
	if !s.deferGC(&deferred) {
		t.Fatal("GC not put off again after it ran")
	}
	if s.deferGC(&deferred) {
		t.Fatal("GC put off for an interval with no held message read")
	}
}
