package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func heldRec(t testing.TB, x string, due int64, seq uint64, persistent bool, body string) []byte {
	t.Helper()
	d := &Delayed{Due: due, Seq: seq, Keys: []string{"k"}, TTL: -1,
		Msg: Message{Exchange: x, RoutingKey: "k", Properties: []byte{0x80, 0}, Body: []byte(body), Persistent: persistent}}
	b, err := appendSegRecord(nil, "/", x, d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func scanBodies(t *testing.T, b []byte) ([]string, int) {
	t.Helper()
	var out []string
	valid, err := scanSegment(b, func(_, p []byte) error {
		var d Delayed
		if _, err := decodeSegRecord(p, &d); err != nil {
			return err
		}
		out = append(out, string(d.Msg.Body))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, valid
}

// A record cut anywhere inside is a torn tail: the scan returns the records before it and the
// length of that prefix, whatever the cut.
func TestSegmentTornTail(t *testing.T) {
	a, b := heldRec(t, "x", 1, 1, true, "a"), heldRec(t, "x", 2, 2, true, "b")
	c := heldRec(t, "x", 3, 3, true, strings.Repeat("c", 100))
	whole := append(append(append([]byte(nil), a...), b...), c...)
	if got, valid := scanBodies(t, whole); len(got) != 3 || valid != len(whole) {
		t.Fatalf("whole file: %d records, %d of %d bytes valid", len(got), valid, len(whole))
	}
	for cut := len(a) + len(b); cut < len(whole); cut++ {
		got, valid := scanBodies(t, whole[:cut])
		if fmt.Sprint(got) != "[a b]" || valid != len(a)+len(b) {
			t.Fatalf("cut at %d: records %v, valid prefix %d, want [a b] and %d", cut, got, valid, len(a)+len(b))
		}
	}
	// A torn tail of zeros (a preallocated or half-written page) is no record either.
	if got, valid := scanBodies(t, append(append([]byte(nil), a...), make([]byte, 64)...)); len(got) != 1 || valid != len(a) {
		t.Fatalf("zeros after a record: %v, valid %d", got, valid)
	}
}

// A record whose payload does not match its checksum ends the valid prefix, even when whole
// records follow it.
func TestSegmentChecksumMismatch(t *testing.T) {
	a, b, c := heldRec(t, "x", 1, 1, true, "a"), heldRec(t, "x", 2, 2, true, "b"), heldRec(t, "x", 3, 3, true, "c")
	file := append(append(append([]byte(nil), a...), b...), c...)
	file[len(a)+len(b)-1] ^= 0x40 // the last byte of b's body
	got, valid := scanBodies(t, file)
	if fmt.Sprint(got) != "[a]" || valid != len(a) {
		t.Fatalf("records %v, valid prefix %d; want [a] and %d", got, valid, len(a))
	}
}

// writeHeld lays out a held-message directory by hand: segment files of exchange x and a
// journal.
func writeHeld(t *testing.T, root string, segs map[int64][]byte, journal []byte) {
	t.Helper()
	dir := filepath.Join(root, heldDirName, heldDirFor("/"), heldDirFor("x"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for start, b := range segs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(start, segSuffix)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, heldDirName, journalName), journal, 0o600); err != nil {
		t.Fatal(err)
	}
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Recovery after a crash: a segment's torn tail is cut off and the journal puts back what was
// confirmed, once (a record both hold is not doubled); a segment damaged in the middle loses
// what follows the damage unless the journal has it; a torn journal tail is ignored;
// transient records and those marked delivered are gone. What is left reads back in due order
// across slices, whatever order it was written in, and the files are whole again.
func TestHeldRecovery(t *testing.T) {
	root := t.TempDir()
	a, b := heldRec(t, "x", 1500, 1, true, "a"), heldRec(t, "x", 1200, 2, true, "b")
	c := heldRec(t, "x", 1100, 3, true, "c")
	tr := heldRec(t, "x", 1300, 4, false, "transient")
	d, e, f := heldRec(t, "x", 2900, 5, true, "d"), heldRec(t, "x", 2100, 6, true, "e"), heldRec(t, "x", 2050, 7, true, "f")
	g := heldRec(t, "x", 900, 8, true, "g")
	delivered := heldRec(t, "x", 950, 9, true, "delivered")
	h := heldRec(t, "x", 3000, 10, true, "h-torn-in-journal")
	damaged := cat(d, e, f)
	damaged[len(d)+len(e)-1] ^= 1 // e's last byte: e and f are lost from this file
	writeHeld(t, root, map[int64][]byte{
		1000: cat(a, b, tr, c[:len(c)-3]), // c torn
		2000: damaged,
		0:    cat(g, delivered, appendSegMark(nil, []uint64{9})),
	}, cat(b, c, f, h[:len(h)-1])) // the journal has b, c and f since its last checkpoint; h is torn
	l := newDelayedLog(nil, root, true, testLogger(t))
	if err := l.recover(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.journal.Close() }()
	all, err := l.readHeld(heldKey{"/", "x"}, nil, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(bodies(all)); got != "[g c b a f d]" {
		t.Fatalf("recovered %s, want [g c b a f d] (e lost to the damage, the transient, delivered and torn ones gone)", got)
	}
	l.mu.Lock()
	count := l.xs[heldKey{"/", "x"}].count
	l.mu.Unlock()
	if count != 6 {
		t.Errorf("count %d, want 6", count)
	}
	after := DelayedCursor{Due: 1200, Seq: 2}
	if rest, _ := l.readHeld(heldKey{"/", "x"}, &after, 2, 1<<20); fmt.Sprint(bodies(rest)) != "[a f]" {
		t.Errorf("after (1200, 2): %v, want [a f]", bodies(rest))
	}
	// The files were made whole: each scans to its end, and the journal is empty.
	dir := filepath.Join(root, heldDirName, heldDirFor("/"), heldDirFor("x"))
	for _, name := range []string{"0.seg", "1000.seg", "2000.seg"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, valid := scanBodies(t, data); valid != len(data) {
			t.Errorf("%s: %d of %d bytes valid after recovery", name, valid, len(data))
		}
	}
	if fi, err := os.Stat(filepath.Join(root, heldDirName, journalName)); err != nil || fi.Size() != 0 {
		t.Errorf("journal after recovery: %v, %v", fi, err)
	}
}

// A delivered message is not delivered again after a clean restart (a delivery mark), and a
// slice whose messages are all delivered leaves no file behind.
func TestHeldDeliveredAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	first := putDelayed(t, s, "x", 100, true, "first")
	putDelayed(t, s, "x", 200, true, "second")
	done := putDelayed(t, s, "x", 5000, true, "alone in its slice")
	s.DeleteDelayed("/", "x", first, nil)
	s.DeleteDelayed("/", "x", done, nil)
	closeT(t, s)
	s = openT(t, dir)
	defer closeT(t, s)
	if idx, _ := s.IndexDelayed(); fmt.Sprint(idx) != "[{/ x 1}]" {
		t.Fatalf("index after restart %v, want [{/ x 1}]", idx)
	}
	all, err := s.ReadDelayed("/", "x", nil, 10, 1<<20)
	if err != nil || fmt.Sprint(bodies(all)) != "[second]" {
		t.Fatalf("read after restart %v, %v; want [second]", bodies(all), err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, heldDirName, "*", "*", "*"+segSuffix))
	if len(segs) != 1 || filepath.Base(segs[0]) != "0.seg" {
		t.Fatalf("segment files %v, want only the slice of the undelivered message", segs)
	}
}

// Held messages of an earlier version, in Badger, are moved to the held-message log at the
// first IndexDelayed, transient ones dropped.
func TestHeldMigratedFromBadger(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	for i, persistent := range []bool{true, false, true} {
		d := &Delayed{Due: int64(300 - i), Seq: uint64(i + 1), Keys: []string{"k"}, TTL: -1,
			Msg: Message{Exchange: "x", RoutingKey: "k", Body: []byte(fmt.Sprint(i)), Persistent: persistent}}
		v, err := encodeDelayed(d)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := delayedPrefix("/", "x")
		meta := byte(0)
		if !persistent {
			meta = metaTransient
		}
		if err := s.syncWrite(op{kind: opSet, key: delayedKey(p, d.Due, d.Seq), val: v, meta: meta}); err != nil {
			t.Fatal(err)
		}
	}
	if idx, err := s.IndexDelayed(); err != nil || fmt.Sprint(idx) != "[{/ x 2}]" {
		t.Fatalf("index %v, %v; want [{/ x 2}]", idx, err)
	}
	if all, _ := s.ReadDelayed("/", "x", nil, 10, 1<<20); fmt.Sprint(bodies(all)) != "[2 0]" {
		t.Fatalf("moved %v, want [2 0]", bodies(all))
	}
	if idx, _ := s.IndexDelayed(); fmt.Sprint(idx) != "[{/ x 2}]" {
		t.Fatalf("second index %v: the Badger records were not deleted", idx)
	}
}

// The decoder never panics and never reads past its input, whatever the bytes.
func FuzzSegmentDecode(f *testing.F) {
	f.Add(heldRec(f, "x", 1, 2, true, "body"))
	f.Add(cat(heldRec(f, "x", 1, 2, false, ""), appendSegMark(nil, []uint64{2, 3})))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		// The payload decoders on their own, as if the checksum had matched.
		var d Delayed
		_, _ = decodeSegRecord(b, &d)
		_ = parseSegMark(b, func(uint64) {})
		valid, _ := scanSegment(b, func(frame, p []byte) error {
			if isSegMark(p) {
				return parseSegMark(p, func(uint64) {})
			}
			var d Delayed
			_, err := decodeSegRecord(p, &d)
			return err
		})
		if valid < 0 || valid > len(b) {
			t.Fatalf("valid prefix %d of %d bytes", valid, len(b))
		}
		// Whatever a valid record decodes to encodes back to a record that decodes the same.
		_, _ = scanSegment(b[:valid], func(_, p []byte) error {
			var d Delayed
			h, err := decodeSegRecord(p, &d)
			if err != nil {
				return err
			}
			again, err := appendSegRecord(nil, string(h.vhost), string(h.exchange), &d)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			var d2 Delayed
			if _, err := decodeSegRecord(again[segFrameHead:], &d2); err != nil || fmt.Sprint(d2) != fmt.Sprint(d) {
				t.Fatalf("round trip: %+v, %v; want %+v", d2, err, d)
			}
			return nil
		})
	})
}

// A batch whose journal write fails is refused and cut off the segment file it reached, so
// nothing refused is read or recovered, and what was confirmed before stays. When the undo
// itself fails (here: truncating the journal), every later held message is refused until the
// store is opened again.
func TestHeldFailedWriteUndone(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	putDelayed(t, s, "x", 100, true, "confirmed")
	// A read-only handle in place of the journal: the next write to it fails, and so does the
	// truncate that undoes it. The writer is idle: its last use of the field was before the
	// confirm above.
	ro, err := os.Open(filepath.Join(dir, heldDirName, journalName))
	if err != nil {
		t.Fatal(err)
	}
	rw := s.held.journal
	s.held.journal = ro
	put := func(due int64, body string) error {
		seq, _ := s.NewDelayedSeq()
		d := &Delayed{Due: due, Seq: seq, TTL: -1, Msg: Message{Exchange: "x", Body: []byte(body), Persistent: true}}
		return wait(func(done func(error)) { s.PutDelayed("/", "x", d, done) })
	}
	if err := put(150, "refused"); err == nil {
		t.Fatal("a held message was confirmed though its journal write failed")
	}
	data, err := os.ReadFile(filepath.Join(dir, heldDirName, heldDirFor("/"), heldDirFor("x"), "0"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if got, valid := scanBodies(t, data); fmt.Sprint(got) != "[confirmed]" || valid != len(data) {
		t.Fatalf("segment after the failed write: %v, %d of %d bytes valid; want [confirmed] alone", got, valid, len(data))
	}
	if err := put(160, "after"); err == nil {
		t.Fatal("a held message was taken after a failed write could not be undone")
	}
	if all, _ := s.ReadDelayed("/", "x", nil, 10, 1<<20); fmt.Sprint(bodies(all)) != "[confirmed]" {
		t.Fatalf("read %v, want [confirmed]", bodies(all))
	}
	s.held.journal = rw
	_ = ro.Close()
	closeT(t, s)
	s = openT(t, dir)
	defer closeT(t, s)
	if idx, _ := s.IndexDelayed(); fmt.Sprint(idx) != "[{/ x 1}]" {
		t.Fatalf("index after reopening %v, want [{/ x 1}]", idx)
	}
	if err := put(170, "taken again"); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
}
