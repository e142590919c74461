package store

import (
	"fmt"
	"testing"
)

// A view shows the records as they were when it was opened, with their delivery counts,
// whatever is appended or removed afterwards: a Raft snapshot streamed from it is the state
// at one log index.
func TestViewQueueIsConsistent(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	declare(t, s, 7)
	for i := 1; i <= 3; i++ {
		s.Append(Ref{7, uint64(i)}, 0, msg(i, 10), nil)
	}
	s.SetDeliveries(Ref{7, 2}, 3, nil)
	v, err := s.ViewQueue(7)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := wait(func(d func(error)) { s.Remove(Ref{7, 1}, 0, d) }); err != nil {
		t.Fatal(err)
	}
	if err := wait(func(d func(error)) { s.Append(Ref{7, 4}, 0, msg(4, 10), d) }); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = v.Each(func(st *Stored) error {
		got = append(got, fmt.Sprintf("%d:%d:%v:%d", st.Seq, st.Deliveries, st.HasDeliveries, len(st.Msg.Body)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[1:0:false:10 2:3:true:10 3:0:false:10]"; fmt.Sprint(got) != want {
		t.Errorf("view shows %v, want %s", got, want)
	}
}

// DeleteQueueRecords leaves nothing of the queue (messages nor delivery counts, even a count
// left without its message) and, unlike a background purge, never catches a record appended
// after it returns.
func TestDeleteQueueRecords(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)
	declare(t, s, 7, 8)
	for i := 1; i <= 300; i++ {
		s.Append(Ref{7, uint64(i)}, 0, msg(i, 10), nil)
		s.SetDeliveries(Ref{7, uint64(i)}, 1, nil)
	}
	s.Append(Ref{8, 1}, 0, msg(1, 10), nil)
	if err := s.DeleteQueueRecords(7); err != nil {
		t.Fatal(err)
	}
	if err := wait(func(d func(error)) { s.Append(Ref{7, 5}, 0, msg(5, 10), d) }); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	recs, err := s.ReadQueue(7, 0, 1000, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Seq != 5 || recs[0].HasDeliveries {
		t.Errorf("after the delete and one append the queue holds %+v, want seq 5 alone without a delivery count", recs)
	}
	if ix, _ := s.IndexQueue(8); ix.Count != 1 {
		t.Errorf("another queue lost its record: %+v", ix)
	}
}
