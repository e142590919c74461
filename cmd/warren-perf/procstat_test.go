package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// Field 2 with spaces and parentheses; utime 150, stime 50 ticks.
	line := "5892 (beam.smp (x) y) S 1 5892 5892 0 -1 4194560 1 2 3 4 150 50 0 0 20 0 30 0 100 0 0\n"
	d, err := parseStatCPU([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if d != 2*time.Second {
		t.Fatalf("cpu %v, want 2s", d)
	}
	if _, err := parseStatCPU([]byte("1 (x) S 1 2")); err == nil {
		t.Fatal("short line: no error")
	}
}

func TestParseStatusMem(t *testing.T) {
	s := "Name:\twarren\nVmPeak:\t 2000 kB\nVmHWM:\t  300 kB\nVmRSS:\t  200 kB\nThreads:\t9\n"
	m, err := parseStatusMem([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 200<<10 || m.HWM != 300<<10 {
		t.Fatalf("%+v", m)
	}
	if _, err := parseStatusMem([]byte("Name:\tkthreadd\n")); err == nil {
		t.Fatal("no VmRSS: no error")
	}
}

func TestParseIOWriteBytes(t *testing.T) {
	s := "rchar: 6976\nwchar: 0\nread_bytes: 4096\nwrite_bytes: 1310720\ncancelled_write_bytes: 0\n"
	n, err := parseIOWriteBytes([]byte(s))
	if err != nil || n != 1310720 {
		t.Fatalf("write_bytes %d, %v; want 1310720", n, err)
	}
	for _, bad := range []string{"rchar: 1\n", "write_bytes: many\n"} {
		if _, err := parseIOWriteBytes([]byte(bad)); err == nil {
			t.Fatalf("%q: no error", bad)
		}
	}
}

func TestProcSelf(t *testing.T) {
	// warren-perf reads broker CPU and memory from /proc: Linux only, as the broker's targets.
	if _, err := procCPU("self"); err != nil {
		t.Fatal(err)
	}
	m, err := procMem("self")
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Fatalf("%+v %v", m, err)
	}
	if n, err := procWriteBytes("self"); err != nil || n < 0 {
		t.Fatalf("write_bytes %d, %v", n, err)
	}
}

func TestParseFDLimit(t *testing.T) {
	limits := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max processes             95793                95793                processes \n" +
		"Max open files            65536                524288               files     \n" +
		"Max locked memory         8388608              8388608              bytes     \n"
	n, err := parseFDLimit([]byte(limits))
	if err != nil || n != 65536 {
		t.Fatalf("%d %v", n, err)
	}
	if _, err := parseFDLimit([]byte("Max processes 1 1 processes\n")); err == nil {
		t.Fatal("no error without the line")
	}
	if n, err := procFDLimit("self"); err != nil || n <= 0 {
		t.Fatalf("self: %d %v", n, err)
	}
}

func TestCheckFDs(t *testing.T) {
	c := &config{IdleConnections: 1 << 30}
	if err := checkFDs(c); err == nil || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Fatalf("err %v", err)
	}
	if err := checkFDs(&config{IdleConnections: 10}); err != nil {
		t.Fatal(err)
	}
}
