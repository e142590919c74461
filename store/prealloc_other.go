//go:build !linux

package store

import "os"

// preallocate is a no-op where fallocate is not available: the guard then relies on the
// reserve alone (see doc.go, "Disk full").
func preallocate(*os.File, int64) error { return nil }
