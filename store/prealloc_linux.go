package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// preallocate gives the first n bytes of f disk blocks (fallocate), so writes through a
// mapping of them cannot fault for want of space. Already allocated ranges cost nothing.
func preallocate(f *os.File, n int64) error {
	if n <= 0 {
		return nil
	}
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, n)
		if err != unix.EINTR {
			return err
		}
	}
}
