package store

import (
	"fmt"
	"testing"
)

// The ids of a deduplication cache come back after a reopen with their order and expiry;
// a deleted id and a dropped cache do not, and caches of other queues, exchanges or vhosts
// with similar names are untouched.
func TestDedupEntriesPersist(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	q := DedupCache{Vhost: "/", Kind: DedupQueue, Name: "orders"}
	x := DedupCache{Vhost: "/", Kind: DedupExchange, Name: "orders"}
	longer := DedupCache{Vhost: "/", Kind: DedupQueue, Name: "orders2"}
	other := DedupCache{Vhost: "v2", Kind: DedupQueue, Name: "orders"}
	for i := range 3 {
		s.PutDedup(q, DedupEntry{ID: []byte(fmt.Sprint("id", i)), Order: uint64(10 + i), Expires: int64(1000 * i)})
	}
	s.DeleteDedup(q, []byte("id1"))
	for _, c := range []DedupCache{x, longer, other} {
		s.PutDedup(c, DedupEntry{ID: []byte("id0"), Order: 1})
	}
	closeT(t, s)

	s = openT(t, dir)
	defer closeT(t, s)
	got, err := s.DedupEntries(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0].ID) != "id0" || got[0].Order != 10 || got[0].Expires != 0 ||
		string(got[1].ID) != "id2" || got[1].Order != 12 || got[1].Expires != 2000 {
		t.Fatalf("entries after reopen = %+v, want id0 (order 10, no expiry) and id2 (order 12, expires 2000)", got)
	}
	if err := s.DropDedup(q); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DedupEntries(q); err != nil || len(got) != 0 {
		t.Fatalf("entries after DropDedup = %+v, %v; want none", got, err)
	}
	for _, c := range []DedupCache{x, longer, other} {
		if got, err := s.DedupEntries(c); err != nil || len(got) != 1 {
			t.Errorf("cache %+v after dropping another: %+v, %v; want its one id", c, got, err)
		}
	}
}
