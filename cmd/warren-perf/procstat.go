package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux
// architecture Go supports.
const clockTick = 100

// procCPU returns the user+system CPU time a process has used, from /proc/PID/stat
// ("self" for this process).
func procCPU(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/PID/stat line. The
// command name (field 2) is in parentheses and may contain spaces, so fields are counted
// from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no ')' in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the name", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat: utime %q stime %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// memStatus holds the resident set figures of /proc/PID/status, in bytes.
type memStatus struct {
	RSS, HWM int64
}

func procMem(pid string) (memStatus, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return memStatus{}, err
	}
	return parseStatusMem(b)
}

// parseStatusMem reads VmRSS and VmHWM ("VmRSS:	  123456 kB") from /proc/PID/status.
func parseStatusMem(b []byte) (memStatus, error) {
	var m memStatus
	var found int
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("/proc status: %q", line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc status: %q", line)
		}
		if k == "VmRSS" {
			m.RSS = n << 10
		} else {
			m.HWM = n << 10
		}
		found++
	}
	if found != 2 {
		return m, fmt.Errorf("/proc status: no VmRSS/VmHWM (a kernel thread?)")
	}
	return m, nil
}

// procWriteBytes returns the bytes a process has caused to be written to storage
// (write_bytes in /proc/PID/io; reading it needs the same rights as ptrace on the process).
// It counts pages written back from the process's file mappings, so it includes whatever a
// sync writes beyond the bytes the process changed.
func procWriteBytes(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/io")
	if err != nil {
		return 0, err
	}
	return parseIOWriteBytes(b)
}

// parseIOWriteBytes reads "write_bytes: N" from /proc/PID/io text.
func parseIOWriteBytes(b []byte) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != "write_bytes" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc io: %q", line)
		}
		return n, nil
	}
	return 0, fmt.Errorf("/proc io: no write_bytes")
}

// resetHWM resets a process's VmHWM to its current RSS (Linux 4.0 and later), so that
// VmHWM at the end is the peak of this run rather than of the process's life. Writing
// /proc/PID/clear_refs needs the same rights as ptrace on the process.
func resetHWM(pid string) error {
	return os.WriteFile("/proc/"+pid+"/clear_refs", []byte("5"), 0)
}
