package store

import (
	"reflect"
	"testing"
)

func TestParseLogMappings(t *testing.T) {
	maps := `00400000-00c00000 r-xp 00000000 fd:01 100 /usr/bin/warren
7f0000000000-7f0004000000 rw-s 00000000 fd:01 201 /data/dir/000001.vlog
7f0004000000-7f0008000000 r--s 00000000 fd:01 202 /data/dir/000002.vlog
7f0008000000-7f0009000000 rw-s 00000000 fd:01 203 /data/dir/000003.mem
7f0009000000-7f000a000000 rw-s 00000000 fd:01 204 /data/other/000004.vlog
7f000a000000-7f000b000000 rw-s 00000000 fd:01 205 /data/dir/notes.vlog
7f000b000000-7f000c000000 rw-s 00000000 fd:01 206 /data/my dir/000005.vlog
7f000c000000-7f000d000000 rw-p 00000000 00:00 0
`
	got := parseLogMappings([]byte(maps), "/data/dir", ".vlog")
	want := []logMapping{
		{start: 0x7f0000000000, end: 0x7f0004000000, fid: 1},
		{start: 0x7f0004000000, end: 0x7f0008000000, fid: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if n := newest(got); n != 2 {
		t.Fatalf("newest value-log fid %d, want 2", n)
	}
	got = parseLogMappings([]byte(maps), "/data/my dir", ".vlog")
	if len(got) != 1 || got[0].fid != 5 {
		t.Fatalf("path with a space: got %+v", got)
	}
	got = parseLogMappings([]byte(maps), "/data/dir", ".mem")
	if len(got) != 1 || got[0].fid != 3 || newest(got) != 3 {
		t.Fatalf("memtable WALs: got %+v", got)
	}
	if n := newest(nil); n != -1 {
		t.Fatalf("newest of nothing: %d, want -1", n)
	}
}

// The files being written turn random under small commits and normal under large ones, with
// a band between where they keep what they had, and keep it through an idle interval.
func TestAdviseRandom(t *testing.T) {
	for _, c := range []struct {
		random bool
		n, b   int64
		want   bool
	}{
		{false, 100, 100 * 35 << 10, true},  // one publisher's commits, ~35 KiB
		{true, 100, 100 * 1 << 20, false},   // sixteen publishers', ~1 MiB
		{true, 100, 100 * 96 << 10, true},   // between: unchanged
		{false, 100, 100 * 96 << 10, false}, // between: unchanged
		{true, 0, 0, true},                  // idle: unchanged
		{false, 0, 0, false},                // idle: unchanged
		{false, 1, smallCommits, false},     // at the lower bound: not below it
		{true, 1, largeCommits, true},       // at the upper bound: not above it
	} {
		if got := adviseRandom(c.random, c.n, c.b); got != c.want {
			t.Errorf("adviseRandom(%v, %d commits, %d bytes) = %v, want %v", c.random, c.n, c.b, got, c.want)
		}
	}
}
