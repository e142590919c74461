package main

import (
	"math"
	"math/bits"
)

// histogram counts durations in nanoseconds in log-linear buckets: exact below 128 ns, and
// 128 buckets per power of two above, so a percentile is within 1/128 (0.8%) of the true
// value. Recording is a few instructions and never allocates. Not safe for concurrent use.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      float64
	min, max int64
}

const (
	histSubBits  = 7
	histSub      = 1 << histSubBits
	histBuckets  = (64 - histSubBits + 1) * histSub
	histMaxIndex = histBuckets - 1
)

// histIndex maps v >= 0 to its bucket.
func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return (shift+1)<<histSubBits + int(v>>uint(shift)) - histSub
}

// histLow and histHigh are the smallest and largest values of bucket i.
func histLow(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := i>>histSubBits - 1
	return uint64(histSub+i&(histSub-1)) << uint(shift)
}

func histHigh(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := i>>histSubBits - 1
	return histLow(i) + (uint64(1)<<uint(shift) - 1)
}

// record adds one value; negative values (clock steps) count as 0.
func (h *histogram) record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(uint64(v))]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

func (h *histogram) reset() { *h = histogram{} }

// percentile returns the value at or below which a fraction p (0..1) of the values lie: the
// midpoint of the bucket holding the ceil(p*n)-th smallest value, clamped to [min, max].
// 0 when empty.
func (h *histogram) percentile(p float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := int64(histLow(i) + (histHigh(i)-histLow(i))/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}
