package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistAccuracy compares histogram quantiles with exact ones over
// latencies from 50 ns to 20 s (log-uniform): every one within 1 %.
func TestHistAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h, a, b hist
	vals := make([]time.Duration, 200000)
	for i := range vals {
		vals[i] = time.Duration(math.Exp(rng.Float64()*math.Log(4e8)) * 50)
		h.add(vals[i])
		if i%2 == 0 {
			a.add(vals[i])
		} else {
			b.add(vals[i])
		}
	}
	a.merge(&b)
	if a != h {
		t.Fatal("merging two halves differs from one histogram")
	}
	slices.Sort(vals)
	for _, q := range []float64{0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
		want := vals[max(int(math.Ceil(q*float64(len(vals))))-1, 0)]
		got := h.quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
			t.Errorf("q%v: %v, exact %v (%.2f%% off)", q, got, want, 100*rel)
		}
	}
	if time.Duration(h.min) != vals[0] || time.Duration(h.max) != vals[len(vals)-1] {
		t.Errorf("min %v max %v, want %v %v", time.Duration(h.min), time.Duration(h.max), vals[0], vals[len(vals)-1])
	}
}

func TestHistEdges(t *testing.T) {
	var h hist
	if h.quantile(0.5) != 0 || h.mean() != 0 {
		t.Fatal("empty histogram")
	}
	h.add(-time.Second) // a clock step backwards counts as 0
	h.add(time.Hour)    // beyond the last bucket: clamped, max exact
	if h.n != 2 || h.min != 0 || time.Duration(h.max) != time.Hour || h.quantile(1) > time.Hour {
		t.Fatalf("n %d min %d max %v q1 %v", h.n, h.min, time.Duration(h.max), h.quantile(1))
	}
	for v := uint64(0); v < 1<<20; v = v*3/2 + 1 {
		if i := histIndex(v); i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d", v, i)
		}
		if got := histValue(histIndex(v)); math.Abs(float64(got)-float64(v)) > float64(v)/200+1 {
			t.Fatalf("histValue(histIndex(%d)) = %d", v, got)
		}
	}
	if histIndex(math.MaxUint64) != histBuckets-1 {
		t.Fatal("largest value not in the last bucket")
	}
}
