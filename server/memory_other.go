//go:build !linux

package server

import (
	"errors"
	"runtime/metrics"
)

// processMemory is the memory the Go runtime holds from the system and has not returned.
func processMemory() (uint64, bool) {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0, false
	}
	return s[0].Value.Uint64() - s[1].Value.Uint64(), true
}

// SystemMemory is not known on this platform: set the memory limit in bytes.
func SystemMemory() (uint64, error) {
	return 0, errors.New("the machine's memory is only read on Linux: give memory-limit in bytes")
}
