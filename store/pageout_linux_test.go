package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// openPageOutT opens a store in a fresh directory (symlinks resolved, as /proc/self/maps
// names it) with the given page-out interval.
func openPageOutT(t *testing.T, interval time.Duration) (*Store, string) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Options{Dir: dir, NoSync: true, Logger: testLogger(t), PageOutInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

// randomRead reports, for each mapping of dir's files with the suffix (".vlog", ".mem"), by
// fid, whether its VmFlags in /proc/self/smaps hold "rr" (MADV_RANDOM).
func randomRead(t *testing.T, dir, suffix string) map[int]bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[int]bool)
	fid := -1
	for line := range strings.SplitSeq(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			fid = -1
			if len(fields) >= 6 && strings.HasSuffix(line, suffix) && filepath.Dir(fields[len(fields)-1]) == dir {
				if n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(fields[len(fields)-1]), suffix)); err == nil {
					fid = n
				}
			}
			continue
		}
		if fid >= 0 && len(fields) > 0 && fields[0] == "VmFlags:" {
			out[fid] = slices.Contains(fields[1:], "rr")
		}
	}
	return out
}

// adviceSettled: the newest value-log file and every memtable WAL are advised MADV_RANDOM
// when random is set and not otherwise; the older value-log files never are.
func adviceSettled(t *testing.T, dir string, random bool) (bool, string) {
	vlogs, mems := randomRead(t, dir, ".vlog"), randomRead(t, dir, ".mem")
	newest := -1
	for fid := range vlogs {
		newest = max(newest, fid)
	}
	if newest < 0 || len(mems) == 0 {
		return false, fmt.Sprintf("no mappings seen: value log %v, memtables %v", vlogs, mems)
	}
	for fid, rr := range vlogs {
		if rr != (random && fid == newest) {
			return false, fmt.Sprintf("value-log files (fid: random) %v, newest %d, want random %v", vlogs, newest, random)
		}
	}
	for fid, rr := range mems {
		if rr != random {
			return false, fmt.Sprintf("memtable WAL %d: random %v, want %v", fid, rr, random)
		}
	}
	return true, ""
}

// awaitAdvice waits up to 10 s for adviceSettled(random).
func awaitAdvice(t *testing.T, dir string, random bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, why := adviceSettled(t, dir, random)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Small commits (one 1 KiB message each) turn the files being written to MADV_RANDOM, so a
// sync writes back pages, not whole read-around folios; large commits turn them back to
// MADV_NORMAL. Older value-log files stay normal throughout.
func TestWrittenFilesAdvisedByCommitSize(t *testing.T) {
	s, dir := openPageOutT(t, 20*time.Millisecond)
	defer closeT(t, s)
	declare(t, s, 1)
	seq := uint64(0)
	small := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			seq++
			if err := wait(func(done func(error)) { s.Append(Ref{1, seq}, 0, msg(int(seq), 1024), done) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	large := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			release := hold(s)
			for range 64 {
				seq++
				s.Append(Ref{1, seq}, 0, msg(int(seq), 16<<10), nil)
			}
			release()
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	small(200 * time.Millisecond)
	awaitAdvice(t, dir, true)
	large(200 * time.Millisecond)
	awaitAdvice(t, dir, false)
	small(200 * time.Millisecond)
	awaitAdvice(t, dir, true)
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

// checkBodies reads queue 1 back and checks it holds fillBodies' n messages intact.
func checkBodies(t *testing.T, s *Store, n, size int) {
	t.Helper()
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

// A backlog in the value log must not stay resident: after writing 256 MiB of bodies, the
// mapped value-log pages in RSS shrink to about the file being written, and every body reads
// back intact afterwards.
func TestValueLogPagedOut(t *testing.T) {
	const n, size = 4096, 64 << 10
	s, dir := openPageOutT(t, 20*time.Millisecond)
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
	checkBodies(t, s, n, size)
}

// The control for the test above: without the loop the written value log stays resident and
// no mapping is advised, which is what the loop exists to change.
func TestValueLogResidentWithoutPageOut(t *testing.T) {
	const n, size = 4096, 64 << 10
	s, dir := openPageOutT(t, -1)
	defer closeT(t, s)
	fillBodies(t, s, n, size)
	if got := residentVlog(t, dir); got < 3*valueLogFileSize {
		t.Fatalf("value-log pages resident without page-out: %d MiB, expected about 256 MiB", got>>20)
	}
	for _, suffix := range []string{".vlog", ".mem"} {
		for fid, rr := range randomRead(t, dir, suffix) {
			if rr {
				t.Fatalf("%d%s advised random with the loop off", fid, suffix)
			}
		}
	}
}

// Eager page-out (the broker's memory over its paging threshold) also hands back the file
// being written: well under one value-log file stays resident, with a page-out interval so
// long that only the eager path can have run. The bodies still read back intact.
func TestEagerPageOutIncludesTheFileBeingWritten(t *testing.T) {
	const n, size = 1024, 32 << 10 // 32 MiB: all in the first value-log file
	s, dir := openPageOutT(t, time.Hour)
	defer closeT(t, s)
	fillBodies(t, s, n, size)
	if got := residentVlog(t, dir); got < 16<<20 {
		t.Fatalf("only %d MiB of the value log resident before eager page-out: the test measures nothing", got>>20)
	}
	s.SetEagerPageOut(true)
	const limit = 4 << 20
	deadline := time.Now().Add(10 * time.Second)
	for residentVlog(t, dir) > limit {
		if time.Now().After(deadline) {
			t.Fatalf("value-log pages resident after 10 s of eager page-out: %d MiB, want at most %d MiB",
				residentVlog(t, dir)>>20, limit>>20)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkBodies(t, s, n, size)
}
