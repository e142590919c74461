package server

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestCPULoadSamples(t *testing.T) {
	c, err := newCPULoad()
	if err != nil {
		t.Fatal(err)
	}
	// Keep one CPU busy for 300ms (jiffies are 10ms): at least that CPU's share must show.
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		for i := 0; i < 1e5; i++ {
			_ = i * i
		}
	}
	busy, self, ok := c.sample()
	if !ok {
		t.Fatal("no sample after 300ms")
	}
	if busy <= 0 || busy > 1 {
		t.Fatalf("busy fraction %v, want in (0, 1] after spinning a CPU for 300ms", busy)
	}
	// This process spun; at least a jiffy's worth of the 300ms must be its own.
	if self <= 0 {
		t.Fatalf("own CPU use %v after spinning a CPU for 300ms, want > 0", self)
	}
}

// TestCPULoadSelfExcludesOtherProcesses: while another process spins and this one waits for
// it, the sample's own share stays near zero.
func TestCPULoadSelfExcludesOtherProcesses(t *testing.T) {
	if os.Getenv("WARREN_TEST_SPIN") != "" {
		for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		}
		return
	}
	c, err := newCPULoad()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCPULoadSelfExcludesOtherProcesses$")
	cmd.Env = append(os.Environ(), "WARREN_TEST_SPIN=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("spinning child: %v\n%s", err, out)
	}
	_, self, ok := c.sample()
	if !ok {
		t.Fatal("no sample")
	}
	if self > 0.2 {
		t.Errorf("own CPU use %.2f CPUs while a child process spun and this one waited, want near 0", self)
	}
}
