package main

import (
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

func TestProcSelf(t *testing.T) {
	// warren-perf reads broker CPU and memory from /proc: Linux only, as the broker's targets.
	if _, err := procCPU("self"); err != nil {
		t.Fatal(err)
	}
	m, err := procMem("self")
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Fatalf("%+v %v", m, err)
	}
}
