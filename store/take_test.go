package store

import (
	"sync"
	"testing"
)

// The writer takes batches off the front of pending while submitters keep appending. Whatever
// the interleaving of partial batches, compaction and whole-slice swaps, every op comes out
// once, in submission order.
func TestTakeKeepsOrderWhileBehind(t *testing.T) {
	s := &Store{}
	s.room = sync.NewCond(&s.mu)
	w := &s.w
	w.s = s
	next, want := uint64(1), uint64(1)
	submit := func(n int) {
		for range n {
			s.pending = append(s.pending, op{kind: opAppend, msgID: next})
			next++
		}
	}
	takeAll := func() {
		for s.head < len(s.pending) {
			batch := w.take()
			if len(batch) == 0 || len(batch) > maxBatchOps {
				t.Fatalf("batch of %d ops", len(batch))
			}
			for _, o := range batch {
				if o.msgID != want {
					t.Fatalf("took op %d, want %d", o.msgID, want)
				}
				want++
			}
			clear(batch)
			w.spare = batch[:0]
			submit(maxBatchOps / 3) // the submitters keep going while the writer commits
			if want > 200_000 {
				return
			}
		}
	}
	submit(3*maxBatchOps + 17)
	takeAll()
	if want <= 200_000 {
		t.Fatalf("only %d ops taken", want-1)
	}
	// Drain what is left without new submissions: the last batch empties pending.
	for s.head < len(s.pending) {
		for _, o := range w.take() {
			if o.msgID != want {
				t.Fatalf("took op %d, want %d", o.msgID, want)
			}
			want++
		}
	}
	if want != next {
		t.Fatalf("took %d ops of %d", want-1, next-1)
	}
	if s.head != 0 || len(s.pending) != 0 {
		t.Fatalf("pending not reset when empty: head %d, len %d", s.head, len(s.pending))
	}
}
