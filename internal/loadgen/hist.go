package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram layout. Values below histSub nanoseconds are exact; above that
// each power of two is split into histSub buckets, so a bucket is at most
// 1/128 of its lower bound wide and its midpoint is within 0.4 % of every
// value in it (the requirement is < 1 %). 2^40 ns is about 18 minutes,
// longer than any run may last; larger values are clamped into the last
// bucket (the exact maximum is kept separately).
const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histMaxBits = 40
	histBuckets = (histMaxBits - histSubBits + 1) * histSub
)

// hist is a fixed-size log-linear latency histogram in nanoseconds. It
// needs no allocation per sample, so the load loop stays cheap and memory
// stays bounded however long a run is: 17 KiB per connection (uint32
// counts; a 10-minute run cannot put 2^32 samples in one bucket).
type hist struct {
	counts [histBuckets]uint32
	n      uint64
	sum    uint64
	min    uint64
	max    uint64
}

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	if v >= 1<<histMaxBits {
		v = 1<<histMaxBits - 1
	}
	e := bits.Len64(v) - histSubBits - 1 // v>>e lies in [histSub, 2*histSub)
	return (e+1)*histSub + int(v>>uint(e)) - histSub
}

// histValue returns the midpoint of bucket idx.
func histValue(idx int) uint64 {
	if idx < histSub {
		return uint64(idx)
	}
	e := idx/histSub - 1
	m := uint64(idx%histSub + histSub)
	return m<<uint(e) + (uint64(1)<<uint(e))/2
}

func (h *hist) add(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[histIndex(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

func (h *hist) merge(o *hist) {
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

// quantile returns the latency at quantile q (0..1), nearest rank.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	rank = min(rank, h.n)
	var cum uint64
	for i, c := range h.counts {
		cum += uint64(c)
		if cum >= rank {
			v := histValue(i)
			v = min(max(v, h.min), h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

func (h *hist) latency() Latency {
	return Latency{
		Min:  time.Duration(h.min),
		Mean: h.mean(),
		P50:  h.quantile(0.50),
		P90:  h.quantile(0.90),
		P99:  h.quantile(0.99),
		P999: h.quantile(0.999),
		Max:  time.Duration(h.max),
	}
}
