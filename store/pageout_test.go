package store

import (
	"reflect"
	"testing"
)

func TestParseVlogMappings(t *testing.T) {
	maps := `00400000-00c00000 r-xp 00000000 fd:01 100 /usr/bin/warren
7f0000000000-7f0004000000 rw-s 00000000 fd:01 201 /data/dir/000001.vlog
7f0004000000-7f0008000000 r--s 00000000 fd:01 202 /data/dir/000002.vlog
7f0008000000-7f0009000000 rw-s 00000000 fd:01 203 /data/dir/000003.mem
7f0009000000-7f000a000000 rw-s 00000000 fd:01 204 /data/other/000004.vlog
7f000a000000-7f000b000000 rw-s 00000000 fd:01 205 /data/dir/notes.vlog
7f000b000000-7f000c000000 rw-s 00000000 fd:01 206 /data/my dir/000005.vlog
7f000c000000-7f000d000000 rw-p 00000000 00:00 0
`
	got := parseVlogMappings([]byte(maps), "/data/dir")
	want := []vlogMapping{
		{start: 0x7f0000000000, end: 0x7f0004000000, fid: 1},
		{start: 0x7f0004000000, end: 0x7f0008000000, fid: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	got = parseVlogMappings([]byte(maps), "/data/my dir")
	if len(got) != 1 || got[0].fid != 5 {
		t.Fatalf("path with a space: got %+v", got)
	}
}
