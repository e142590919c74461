package store

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// adviseLogs reads this process's mappings of Badger's log files and advises them (see
// pageOutLoop): the newest value-log file and every memtable WAL MADV_RANDOM when random,
// else MADV_NORMAL; the older value-log files MADV_NORMAL and, when pageOut, MADV_PAGEOUT;
// with all, the files being written are paged out too. It returns the newest fids it saw, and
// an error only when page-out cannot work at all (no /proc, a kernel before 5.4).
func (s *Store) adviseLogs(random, pageOut, all bool) (newestVlog, newestMem int, err error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return -1, -1, fmt.Errorf("%w: read /proc/self/maps: %w", errNoAdvice, err)
	}
	vlogs := parseLogMappings(maps, s.absDir, ".vlog")
	mems := parseLogMappings(maps, s.absDir, ".mem")
	newestVlog, newestMem = newest(vlogs), newest(mems)
	writing := unix.MADV_NORMAL
	if random {
		writing = unix.MADV_RANDOM
	}
	for _, m := range mems {
		madvise(m, writing)
		if all {
			madvise(m, unix.MADV_PAGEOUT)
		}
	}
	for _, m := range vlogs {
		if m.fid == newestVlog {
			madvise(m, writing)
			if !all {
				continue
			}
		} else {
			madvise(m, unix.MADV_NORMAL)
		}
		if !pageOut {
			continue
		}
		switch errno := madvise(m, unix.MADV_PAGEOUT); {
		case errno == 0, errno == unix.ENOMEM, errno == unix.EAGAIN:
			// ENOMEM: the file was unmapped since /proc/self/maps was read.
		case errors.Is(errno, unix.EINVAL):
			return newestVlog, newestMem, fmt.Errorf("madvise(MADV_PAGEOUT) is not supported by this kernel (needs Linux 5.4): %w", errno)
		default:
			return newestVlog, newestMem, fmt.Errorf("madvise(MADV_PAGEOUT) on value-log file %d: %w", m.fid, errno)
		}
	}
	return newestVlog, newestMem, nil
}

// madvise advises one mapping; the raw syscall, since the mapping is Badger's, not a slice
// of ours.
func madvise(m logMapping, advice int) unix.Errno {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, uintptr(advice))
	return errno
}
