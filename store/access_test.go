package store

import (
	"slices"
	"testing"

	"github.com/rs/zerolog"
)

// Access records come back after a reopen, in key order, and deleting one removes it.
func TestAccessRecordsPersist(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []AccessRecord{
		{Kind: 'u', Key: []string{"bob"}, Val: []byte(`{"tags":[]}`)},
		{Kind: 'p', Key: []string{"/", "bob"}, Val: []byte(`{"configure":".*"}`)},
		{Kind: 'p', Key: []string{"/", "al"}, Val: []byte(`{}`)},
		{Kind: 's', Val: []byte(`{}`)},
	} {
		if err := s.PutAccess(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteAccess('p', "/", "al"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(Options{Dir: dir, Logger: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.AccessRecords()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Kind)+":"+joinKey(r.Key)+"="+string(r.Val))
	}
	want := []string{`p:/,bob={"configure":".*"}`, `s:={}`, `u:bob={"tags":[]}`}
	if !slices.Equal(got, want) {
		t.Errorf("records = %q, want %q", got, want)
	}
	// Nothing else in the store reads them as exchanges, queues or bindings.
	if xs, qs, bs, err := s.Definitions(); err != nil || len(xs)+len(qs)+len(bs) != 0 {
		t.Errorf("definitions = %v %v %v %v", xs, qs, bs, err)
	}
}

func joinKey(k []string) string {
	out := ""
	for i, s := range k {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}
