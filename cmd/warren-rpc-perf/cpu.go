package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/PID/stat's CPU times (100 on every
// architecture Go supports).
const clockTick = 10 * time.Millisecond

// processCPU is the CPU time (user + system) process pid has used so far, from /proc.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read the broker's CPU time: %w", err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a /proc/PID/stat line. The command
// name (field 2) is in parentheses and may hold spaces, so fields are counted after its end.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat %q: no command name", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat %q: %d fields", stat, len(f)+2)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc stat CPU time %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// cpuFigures turns CPU times read at the start and end of the measured period into cores used
// and microseconds per round trip; zero when either reading is missing (-1).
func cpuFigures(before, after, period time.Duration, roundTrips int) (cores, perRoundTrip float64) {
	if before < 0 || after < 0 || roundTrips == 0 {
		return 0, 0
	}
	used := after - before
	return used.Seconds() / period.Seconds(), float64(used.Microseconds()) / float64(roundTrips)
}
