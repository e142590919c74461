package metrics

import (
	"os"
	"syscall"
)

// fds returns the process's open file descriptors and their limit (RLIMIT_NOFILE's soft one).
func fds() (open, limit uint64, ok bool) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, 0, false
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, false
	}
	return uint64(len(ents)), rl.Cur, true
}
