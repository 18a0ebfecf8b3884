// Package gctune sizes the Go garbage collector's target to the live heap.
//
// A fixed GOGC trades memory for collector work in proportion to the live
// heap: at 400 (4× headroom) a daemon with a few MiB live spends almost no
// time collecting, but one that keeps a million accounts' state (hundreds
// of MiB live) would grow to five times that. The tuner gives the heap a
// headroom of max(Floor, Fraction × live): generous while the heap is
// small, 30 % of the live heap when it is large — what keeps 100,000
// accounts under 200 MiB (docs/performance.md). It is the technique of the GC tuners
// large Go services run (a GOGC recomputed from the live heap), kept to
// one loop reading runtime/metrics.
package gctune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Options bounds the tuner. Zero fields take the defaults.
type Options struct {
	Floor    uint64        // headroom never below this (default 32 MiB)
	Fraction float64       // headroom as a share of the live heap (default 0.3)
	Min, Max int           // GOGC bounds (defaults 25 and 400)
	Every    time.Duration // how often the live heap is read (default 1 s)
}

func (o *Options) defaults() {
	if o.Floor == 0 {
		o.Floor = 32 << 20
	}
	if o.Fraction <= 0 {
		o.Fraction = 0.3
	}
	if o.Min <= 0 {
		o.Min = 25
	}
	if o.Max <= 0 {
		o.Max = 400
	}
	if o.Every <= 0 {
		o.Every = time.Second
	}
}

// Percent is the GOGC that gives a heap of live bytes its headroom.
func Percent(live uint64, o Options) int {
	o.defaults()
	if live == 0 {
		return o.Max
	}
	head := max(float64(o.Floor), o.Fraction*float64(live))
	p := int(head * 100 / float64(live))
	return min(o.Max, max(o.Min, p))
}

const liveMetric = "/gc/heap/live:bytes"

// Live returns the live heap as of the last collection.
func Live() uint64 {
	s := []metrics.Sample{{Name: liveMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Run sets GOGC from the live heap until ctx ends, then restores the
// setting it found. It returns at once when the environment sets GOGC
// (the operator's choice wins); callers run it in a goroutine.
func Run(ctx context.Context, o Options, gogcFromEnv bool) {
	if gogcFromEnv {
		return
	}
	o.defaults()
	cur := Percent(Live(), o)
	prev := debug.SetGCPercent(cur)
	defer debug.SetGCPercent(prev)
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Change only on a move of more than a tenth: each call
		// recomputes the heap goal.
		if p := Percent(Live(), o); p*10 < cur*9 || p*10 > cur*11 {
			debug.SetGCPercent(p)
			cur = p
		}
	}
}
