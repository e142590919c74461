package store

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// pageOut advises MADV_PAGEOUT on every mapped value-log file but the newest. It fails only
// when the kernel or /proc cannot do it at all (no /proc, a kernel before 5.4).
func (s *Store) pageOut() error {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("read /proc/self/maps: %w", err)
	}
	ms := parseVlogMappings(maps, s.absDir)
	newest := -1
	for _, m := range ms {
		newest = max(newest, m.fid)
	}
	for _, m := range ms {
		if m.fid == newest {
			continue
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_PAGEOUT)
		switch {
		case errno == 0, errno == unix.ENOMEM, errno == unix.EAGAIN:
			// ENOMEM: the file was unmapped since /proc/self/maps was read.
		case errors.Is(errno, unix.EINVAL):
			return fmt.Errorf("madvise(MADV_PAGEOUT) is not supported by this kernel (needs Linux 5.4): %w", errno)
		default:
			return fmt.Errorf("madvise(MADV_PAGEOUT) on value-log file %d: %w", m.fid, errno)
		}
	}
	return nil
}
