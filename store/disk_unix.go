//go:build linux || darwin || freebsd

package store

import "syscall"

// freeBytes is the space available to unprivileged users on the file system holding dir.
func freeBytes(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}

// exists reports whether path exists, without os.Stat's allocations for a missing file (the
// writer asks twice per commit).
func exists(path string) bool {
	var st syscall.Stat_t
	return syscall.Stat(path, &st) == nil
}
