package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistIndexBounds(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, math.MaxInt64, math.MaxUint64} {
		i := histIndex(v)
		if i < 0 || i > histMaxIndex {
			t.Fatalf("index(%d) = %d", v, i)
		}
		if lo, hi := histLow(i), histHigh(i); v < lo || v > hi {
			t.Fatalf("%d in bucket %d [%d, %d]", v, i, lo, hi)
		}
	}
	for i := 1; i <= histMaxIndex; i++ {
		if histLow(i) != histHigh(i-1)+1 {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, histLow(i), i-1, histHigh(i-1))
		}
	}
}

func TestPercentilesExactSmall(t *testing.T) {
	var h histogram
	for v := int64(1); v <= 100; v++ {
		h.record(v)
	}
	for _, c := range []struct {
		p    float64
		want int64
	}{{0.5, 50}, {0.99, 99}, {0.999, 100}, {0, 1}, {1, 100}} {
		if got := h.percentile(c.p); got != c.want {
			t.Errorf("p%v = %d, want %d", c.p, got, c.want)
		}
	}
	if h.min != 1 || h.max != 100 || h.mean() != 50.5 {
		t.Fatalf("min %d max %d mean %v", h.min, h.max, h.mean())
	}
}

func TestPercentilesWithinError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	vals := make([]int64, 200000)
	for i := range vals {
		// log-normal-ish latencies between ~10 µs and ~1 s
		vals[i] = int64(math.Exp(r.NormFloat64()*1.5 + 13))
		h.record(vals[i])
	}
	slices.Sort(vals)
	for _, p := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(math.Ceil(p*float64(len(vals))))-1]
		got := h.percentile(p)
		if rel := math.Abs(float64(got-exact)) / float64(exact); rel > 1.0/128 {
			t.Errorf("p%v = %d, exact %d (%.3f%% off)", p, got, exact, rel*100)
		}
	}
}

func TestHistogramMergeResetNegative(t *testing.T) {
	var a, b histogram
	a.record(-5) // a clock step counts as 0
	b.record(1000)
	b.record(3000)
	a.merge(&b)
	if a.n != 3 || a.min != 0 || a.max != 3000 || a.percentile(0.5) < 990 || a.percentile(0.5) > 1010 {
		t.Fatalf("merged: n %d min %d max %d p50 %d", a.n, a.min, a.max, a.percentile(0.5))
	}
	a.reset()
	if a.n != 0 || a.percentile(0.5) != 0 {
		t.Fatal("reset")
	}
}

func TestHistogramRecordAllocates(t *testing.T) {
	var h histogram
	if n := testing.AllocsPerRun(1000, func() { h.record(12345) }); n != 0 {
		t.Fatalf("%v allocs per record", n)
	}
}
