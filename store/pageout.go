package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultPageOutInterval is how often the store hands the value-log pages it has mapped back
// to the kernel (see pageOutLoop).
const DefaultPageOutInterval = time.Second

// adviseCheck is how often pageOutLoop looks for a value-log or memtable file Badger has just
// opened, to advise its mapping (see pageOutLoop) soon after it starts being written.
const adviseCheck = 100 * time.Millisecond

// Commits averaging under smallCommits bytes over a page-out interval make the files being
// written MADV_RANDOM; over largeCommits, MADV_NORMAL again (see pageOutLoop).
const (
	smallCommits = 64 << 10
	largeCommits = 128 << 10
)

// logMapping is one mapping of a Badger log file (value log or memtable WAL) in this
// process's address space.
type logMapping struct {
	start, end uintptr
	fid        int
}

// parseLogMappings picks the mappings of dir's files named <fid><suffix> (".vlog", ".mem")
// out of /proc/self/maps text. Lines look like
// "7f12a0000000-7f12a4000000 rw-s 00000000 fd:01 1234 /data/000007.vlog".
func parseLogMappings(maps []byte, dir, suffix string) []logMapping {
	var out []logMapping
	for line := range strings.SplitSeq(string(maps), "\n") {
		if !strings.HasSuffix(line, suffix) {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 6 {
			continue
		}
		path := strings.Join(fields[5:], " ")
		if filepath.Dir(path) != dir {
			continue
		}
		fid, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(path), suffix))
		if err != nil {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, logMapping{start: uintptr(start), end: uintptr(end), fid: fid})
	}
	return out
}

// newest is the highest fid among ms, -1 for none.
func newest(ms []logMapping) int {
	n := -1
	for _, m := range ms {
		n = max(n, m.fid)
	}
	return n
}

// pageOutLoop manages how the kernel treats Badger's mapped log files. Badger writes and
// reads the value log and the memtables' WALs through shared mmaps.
//
// Page-out: Badger never unmaps a file it still uses, so every body written or read stays
// resident as a file page: a 2M × 1 KiB backlog held 2.2 GB of RSS (RssFile) though the Go
// heap was under 60 MB. Every interval, the loop advises the kernel to page out the mappings
// of every value-log file except the newest (the one being written), with MADV_PAGEOUT: clean
// pages are dropped, and a read that needs one again faults it back in from disk.
//
// Advice for the files being written: a write fault in a shared file mapping goes through
// the page cache's read-around, which allocates folios as large as the device's read-ahead
// (up to 2 MiB with read_ahead_kb 8192), and each commit's msync writes back every folio it
// dirtied in whole. With one publisher confirming 1 KiB messages (commits of about 35 KB) the
// disk wrote 26 KB per message (RabbitMQ: 2.5 KB). MADV_RANDOM (no read-around, page-sized
// folios) cuts that 14 times, but costs a page fault per 4 KiB written instead of one per
// folio: with 16 publishers (commits of about 1 MB, where whole folios are mostly new data
// anyway) that took 28 % more CPU per message on a 2-vCPU VM. So the advice follows the
// commits: while they average under smallCommits bytes over an interval, the newest
// value-log file and the memtable WALs get MADV_RANDOM; once they average over largeCommits,
// MADV_NORMAL. Older value-log files, which are only read, always get MADV_NORMAL. The loop
// looks every adviseCheck for the next file Badger opens, so a new file gets the current
// advice within that time of its creation.
//
// Eager page-out (SetEagerPageOut, while the broker's memory is over its paging threshold):
// every adviseCheck, and the files being written too. Their committed pages are clean, so they
// go at once; the page being written faults back in. A publisher writing 180 MiB/s otherwise
// kept the newest value-log file and a second's worth of rotated ones resident: 200 MiB of
// file pages beside a 128 MiB memory limit.
//
// Advice never changes what a mapping holds, so it is safe even if Badger unmaps or replaces
// a file between the read of /proc/self/maps and the advice.
func (s *Store) pageOutLoop(interval time.Duration) {
	defer close(s.pageOutDone)
	if interval < 0 {
		return
	}
	if interval == 0 {
		interval = DefaultPageOutInterval
	}
	t := time.NewTicker(min(interval, adviseCheck))
	defer t.Stop()
	pageOut, random := true, false
	var last time.Time
	var commits, bytes int64
	newestVlog, newestMem := -1, -1
	for {
		select {
		case <-s.gcStop:
			return
		case <-t.C:
		}
		due := time.Since(last) >= interval
		eager := s.eagerPaging.Load()
		if !due && !eager && !s.newLogFile(newestVlog, newestMem) {
			continue
		}
		if due {
			last = time.Now()
			c, b := s.w.commits.Load(), s.w.commitBytes.Load()
			random = adviseRandom(random, c-commits, b-bytes)
			commits, bytes = c, b
		}
		var err error
		newestVlog, newestMem, err = s.adviseLogs(random, pageOut && (due || eager), pageOut && eager)
		if err != nil {
			s.log.Warn().Err(err).Msg("store: cannot page out the value log; its pages stay resident")
			if errors.Is(err, errNoAdvice) {
				return
			}
			pageOut = false // the advice for the files being written goes on
		}
	}
}

// SetEagerPageOut turns eager page-out on or off (see pageOutLoop): the broker's memory monitor
// turns it on while memory is over its paging threshold.
func (s *Store) SetEagerPageOut(on bool) { s.eagerPaging.Store(on) }

// errNoAdvice: this system cannot advise the log files' mappings at all (not Linux, or no
// /proc/self/maps), so pageOutLoop stops.
var errNoAdvice = errors.New("no advice for mapped files")

// adviseRandom: whether the files being written get MADV_RANDOM, after n commits of b bytes
// in an interval when they had random before.
func adviseRandom(random bool, n, b int64) bool {
	switch {
	case n == 0:
		return random
	case b/n < smallCommits:
		return true
	case b/n > largeCommits:
		return false
	}
	return random
}

// newLogFile: Badger has created a value-log or memtable file past the newest ones seen.
func (s *Store) newLogFile(newestVlog, newestMem int) bool {
	for _, name := range []string{fmt.Sprintf("%06d.vlog", newestVlog+1), fmt.Sprintf("%05d.mem", newestMem+1)} {
		if _, err := os.Stat(filepath.Join(s.absDir, name)); err == nil {
			return true
		}
	}
	return false
}
