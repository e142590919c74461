package store

import (
	"bytes"
	"testing"
)

func TestReadQueuePaging(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	const n = 1000
	want := map[uint64]*Message{}
	for i := 1; i <= n; i++ {
		m := msg(i, 50+i%400)
		want[uint64(2*i)] = m // seqs 2, 4, 6, …: gaps are normal
		s.Append(Ref{1, uint64(2 * i)}, 0, m, nil)
		if i%10 == 0 {
			s.SetDeliveries(Ref{1, uint64(2 * i)}, uint32(i), nil)
		}
		if i%100 == 0 {
			if err := s.Flush(); err != nil { // records spread over many batches
				t.Fatal(err)
			}
		}
	}
	s.Append(Ref{2, 1}, 0, msg(0, 10), nil) // the next queue's records must not leak in
	s.Remove(Ref{1, 4}, 0, nil)
	delete(want, 4)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}

	var after uint64
	seen := 0
	for {
		page, err := s.ReadQueue(1, after, 7, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 7 {
			t.Fatalf("page of %d records, maxCount 7", len(page))
		}
		for _, st := range page {
			m := want[st.Seq]
			if m == nil || st.Seq <= after {
				t.Fatalf("unexpected seq %d after %d", st.Seq, after)
			}
			if !bytes.Equal(st.Msg.Body, m.Body) || st.Msg.RoutingKey != m.RoutingKey || st.Msg.Expiry != m.Expiry ||
				st.Msg.Priority != m.Priority || !bytes.Equal(st.Msg.Properties, m.Properties) {
				t.Fatalf("seq %d: got %+v", st.Seq, st.Msg)
			}
			i := st.Seq / 2
			if st.HasDeliveries != (i%10 == 0) || (st.HasDeliveries && st.Deliveries != uint32(i)) {
				t.Fatalf("seq %d: deliveries %d %v", st.Seq, st.Deliveries, st.HasDeliveries)
			}
			after = st.Seq
			seen++
		}
	}
	if seen != len(want) {
		t.Fatalf("read %d records, want %d", seen, len(want))
	}

	// maxBytes: three records of one size fit in three sizes plus a byte; the first record
	// comes back even when it alone is larger.
	size := int(msg(0, 50+1%400).StoredSize())
	for _, tc := range []struct{ maxBytes, want int }{{0, 1}, {size - 1, 1}, {size, 1}} {
		page, err := s.ReadQueue(1, 0, 100, tc.maxBytes)
		if err != nil || len(page) != tc.want {
			t.Errorf("maxBytes %d: %d records (%v), want %d", tc.maxBytes, len(page), err, tc.want)
		}
	}
	page, _ := s.ReadQueue(1, 0, 100, 1<<30)
	var total int
	for i, st := range page[:5] {
		total += int(st.Msg.StoredSize())
		got, _ := s.ReadQueue(1, 0, 100, total)
		if len(got) != i+1 {
			t.Errorf("maxBytes %d (the first %d records): %d records", total, i+1, len(got))
		}
	}
	if page, _ := s.ReadQueue(1, 2*n, 10, 1<<20); len(page) != 0 {
		t.Errorf("after the last seq: %d records", len(page))
	}
	if page, _ := s.ReadQueue(1, ^uint64(0), 10, 1<<20); len(page) != 0 {
		t.Errorf("after MaxUint64: %d records", len(page))
	}
}

func TestIndexQueueBytesExact(t *testing.T) {
	d := t.TempDir()
	s := openT(t, d)
	declare(t, s, 1)
	var want QueueIndex
	add := func(seq uint64, size int64) {
		if want.Count == 0 {
			want.FirstSeq = seq
		}
		want.LastSeq = seq
		want.Count++
		want.Bytes += size
	}
	// Record sizes on both sides of the value threshold and of each varint length.
	seq := uint64(10)
	for _, body := range []int{0, 1, 100, 200, 230, 231, 232, 240, 300, 1000, 16300, 16400, 20000, 200_000, 2_097_100, 2_097_200, 3 << 20} {
		m := msg(int(seq), body)
		s.Append(Ref{1, seq}, 0, m, nil)
		add(seq, m.StoredSize())
		seq += 3
	}
	sharedMsg := msg(1, 5000)
	id := s.NewMessageID()
	s.PutShared(id, sharedMsg, 2, nil)
	s.Append(Ref{1, seq}, id, nil, nil)
	s.Append(Ref{2, seq}, id, nil, nil)
	add(seq, sharedMsg.StoredSize())
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		got, err := s.IndexQueue(1)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: IndexQueue = %+v, want %+v", when, got, want)
		}
	}
	check("in the memtable")
	closeT(t, s) // flushes the memtable to an SST
	s = openT(t, d)
	defer closeT(t, s)
	check("after reopen")
	if ix, _ := s.IndexQueue(77); ix != (QueueIndex{}) {
		t.Errorf("empty queue: %+v", ix)
	}
}
