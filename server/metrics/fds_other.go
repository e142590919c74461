//go:build !linux

package metrics

// fds is not measured outside Linux: the fd metrics are left out.
func fds() (open, limit uint64, ok bool) { return 0, 0, false }
