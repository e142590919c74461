package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuLoad samples how busy the CPUs this process can use are: the host's, from /proc/stat,
// and, when the process's cgroup (v2) has a CPU quota, the cgroup's usage against that quota.
// A sample is the busier of the two since the previous sample. It also measures the CPU time
// this process itself used (getrusage), so that a host kept busy by other processes while
// Warren idles can be told from a broker that is short of CPU.
type cpuLoad struct {
	busy, total uint64 // /proc/stat jiffies at the last sample

	cgStat    string  // cpu.stat of a cgroup with a quota, "" without one
	cgCPUs    float64 // the quota in CPUs
	cgUsage   uint64  // usage_usec at the last sample
	cgSampled time.Time

	selfCPU     time.Duration // this process's user + system time at the last sample
	selfSampled time.Time
}

func newCPULoad() (*cpuLoad, error) {
	c := &cpuLoad{}
	busy, total, err := readProcStat()
	if err != nil {
		return nil, err
	}
	c.busy, c.total = busy, total
	if c.selfCPU, err = processCPU(); err != nil {
		return nil, err
	}
	c.selfSampled = time.Now()
	c.findCgroupQuota()
	return c, nil
}

// processCPU is the user and system CPU time this process has used.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// sample returns the busy fraction (0..1) of the CPUs since the last call, and the CPUs this
// process used meanwhile (1 is one CPU for the whole interval; under a cgroup quota of less
// than one CPU, 1 is the whole quota); ok is false when nothing could be measured (no time
// passed, or the files went away).
func (c *cpuLoad) sample() (busy, self float64, ok bool) {
	now := time.Now()
	if cpu, err := processCPU(); err == nil {
		if wall := now.Sub(c.selfSampled); wall > 0 && cpu >= c.selfCPU {
			self = float64(cpu-c.selfCPU) / float64(wall)
			if c.cgStat != "" && c.cgCPUs < 1 {
				self /= c.cgCPUs
			}
		}
		c.selfCPU, c.selfSampled = cpu, now
	}
	b, t, err := readProcStat()
	if err == nil && t > c.total {
		busy, ok = float64(b-c.busy)/float64(t-c.total), true
		c.busy, c.total = b, t
	}
	if c.cgStat != "" {
		if u, err := readCgroupUsage(c.cgStat); err == nil && u >= c.cgUsage {
			if wall := now.Sub(c.cgSampled).Microseconds(); wall > 0 {
				cg := float64(u-c.cgUsage) / (float64(wall) * c.cgCPUs)
				busy, ok = max(busy, min(cg, 1)), true
			}
			c.cgUsage, c.cgSampled = u, now
		}
	}
	return busy, self, ok
}

// readProcStat returns the busy and total jiffies of the "cpu" line of /proc/stat. Idle and
// iowait count as not busy.
func readProcStat() (busy, total uint64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, errors.New("read /proc/stat: no cpu line")
	}
	var idle uint64
	for i, f := range fields[1:] {
		if i >= 8 { // guest and guest_nice are already counted in user and nice
			break
		}
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("read /proc/stat: %w", err)
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total - idle, total, nil
}

// findCgroupQuota looks for a cgroup v2 CPU quota on this process's cgroup.
func (c *cpuLoad) findCgroupQuota() {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return
	}
	var rel string
	for _, line := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel = p
		}
	}
	if rel == "" {
		return
	}
	dir := filepath.Join("/sys/fs/cgroup", rel)
	max, err := os.ReadFile(filepath.Join(dir, "cpu.max"))
	if err != nil {
		return
	}
	f := strings.Fields(string(max))
	if len(f) != 2 || f[0] == "max" {
		return
	}
	quota, err1 := strconv.ParseFloat(f[0], 64)
	period, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil || quota <= 0 || period <= 0 {
		return
	}
	stat := filepath.Join(dir, "cpu.stat")
	u, err := readCgroupUsage(stat)
	if err != nil {
		return
	}
	c.cgStat, c.cgCPUs, c.cgUsage, c.cgSampled = stat, quota/period, u, time.Now()
}

func readCgroupUsage(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("read %s: no usage_usec", path)
}
