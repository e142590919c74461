package store

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// residentVlog sums the resident size of this process's mappings of dir's value-log files,
// from /proc/self/smaps.
func residentVlog(t *testing.T, dir string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && strings.HasSuffix(line, ".vlog") && filepath.Dir(fields[len(fields)-1]) == dir
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

// fillBodies appends n messages of size bytes to queue 1 and flushes.
func fillBodies(t *testing.T, s *Store, n, size int) {
	t.Helper()
	declare(t, s, 1)
	for i := 1; i <= n; i++ {
		m := msg(i, size)
		s.Append(Ref{1, uint64(i)}, 0, m, nil)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A backlog in the value log must not stay resident: after writing 256 MiB of bodies, the
// mapped value-log pages in RSS shrink to about the file being written, and every body reads
// back intact afterwards.
func TestValueLogPagedOut(t *testing.T) {
	const n, size = 4096, 64 << 10
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Options{Dir: dir, NoSync: true, Logger: testLogger(t), PageOutInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, s)
	fillBodies(t, s, n, size)
	limit := int64(valueLogFileSize + 8<<20)
	deadline := time.Now().Add(10 * time.Second)
	for residentVlog(t, dir) > limit {
		if time.Now().After(deadline) {
			t.Fatalf("value-log pages resident after 10 s: %d MiB, want at most %d MiB",
				residentVlog(t, dir)>>20, limit>>20)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := readAll(t, s, 1)
	if len(got) != n {
		t.Fatalf("read back %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if want := msg(i+1, size).Body; !bytes.Equal(m.Msg.Body, want) {
			t.Fatalf("message %d: body differs after page-out", i+1)
		}
	}
}

// The control for the test above: without page-out the written value log stays resident,
// which is what the loop exists to undo.
func TestValueLogResidentWithoutPageOut(t *testing.T) {
	const n, size = 4096, 64 << 10
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Options{Dir: dir, NoSync: true, Logger: testLogger(t), PageOutInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, s)
	fillBodies(t, s, n, size)
	if got := residentVlog(t, dir); got < 3*valueLogFileSize {
		t.Fatalf("value-log pages resident without page-out: %d MiB, expected about 256 MiB", got>>20)
	}
}
