package server

import (
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
	busy, ok := c.sample()
	if !ok {
		t.Fatal("no sample after 300ms")
	}
	if busy <= 0 || busy > 1 {
		t.Fatalf("busy fraction %v, want in (0, 1] after spinning a CPU for 300ms", busy)
	}
}
