package server

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// processMemory is the process's resident anonymous memory: resident pages minus those backed
// by files (the store's mapped files can be dropped by the kernel at any time, so they do not
// count, as RabbitMQ's rss strategy counts the VM's resident memory). One read of
// /proc/self/statm.
func processMemory() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 3 {
		return 0, false
	}
	resident, err1 := strconv.ParseUint(string(f[1]), 10, 64)
	shared, err2 := strconv.ParseUint(string(f[2]), 10, 64)
	if err1 != nil || err2 != nil || shared > resident {
		return 0, false
	}
	return (resident - shared) * uint64(os.Getpagesize()), true
}

// SystemMemory is the memory this process may use: the machine's, or its cgroup's limit when
// that is lower (cgroup v2 memory.max, or v1 memory.limit_in_bytes).
func SystemMemory() (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("reading the machine's memory: %w", err)
	}
	var total uint64
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing MemTotal in /proc/meminfo: %w", err)
			}
			total = kb << 10
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
	}
	if cg, ok := cgroupMemoryLimit(); ok && cg < total {
		return cg, nil
	}
	return total, nil
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup, if it has one.
func cgroupMemoryLimit() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case parts[0] == "0" && parts[1] == "": // v2
			file = "/sys/fs/cgroup" + parts[2] + "/memory.max"
		case strings.Contains(","+parts[1]+",", ",memory,"): // v1
			file = "/sys/fs/cgroup/memory" + parts[2] + "/memory.limit_in_bytes"
		default:
			continue
		}
		v, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(v)), 10, 64)
		if err != nil { // "max": no limit
			continue
		}
		return n, true
	}
	return 0, false
}
