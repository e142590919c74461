//go:build linux || darwin || freebsd

package store

import (
	"os"
	"syscall"
)

// allocated is the disk space a file takes (sparse files count only written blocks).
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
