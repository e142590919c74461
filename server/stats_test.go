package server

import "testing"

// TestMessageSizeHistogramCounts counts bodies on and around every bound: a body of exactly a
// bound counts in that bucket (Prometheus's le), one byte more in the next, larger than the
// last bound in +Inf; the sum is the bytes; and counting allocates nothing.
func TestMessageSizeHistogramCounts(t *testing.T) {
	var c counters
	var want [MessageSizeBuckets]uint64
	var sum uint64
	for i, b := range MessageSizeBounds() {
		c.observeSize(int(b))
		c.observeSize(int(b) + 1)
		want[i]++
		want[i+1]++
		sum += 2*b + 1
	}
	c.observeSize(0)
	want[0]++
	for i := range want {
		if got := c.sizes[i].Load(); got != want[i] {
			t.Errorf("bucket %d: %d, want %d", i, got, want[i])
		}
	}
	if got := c.sizeSum.Load(); got != sum {
		t.Errorf("sum %d, want %d", got, sum)
	}
	if n := testing.AllocsPerRun(100, func() { c.observeSize(4096) }); n != 0 {
		t.Errorf("observeSize allocates %v times per message", n)
	}
}

// BenchmarkObserveSize is the histogram's cost per published message, from every core at
// once (publishers on many connections share the counters).
func BenchmarkObserveSize(b *testing.B) {
	var c counters
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.observeSize(1024)
		}
	})
}
