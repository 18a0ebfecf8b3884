package gctune

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 400},         // nothing measured yet
		{1, 400},         // capped at Max
		{8 * mib, 400},   // the 32 MiB floor is 400 %
		{10 * mib, 320},  // 32/10
		{20 * mib, 160},  // 32/20
		{64 * mib, 50},   // floor = half of live
		{100 * mib, 32},  // the floor still above 30 %
		{128 * mib, 30},  // from here 30 % of live
		{1024 * mib, 30}, // large heaps
		{1 << 40, 30},
	} {
		if got := Percent(c.live, Options{}); got != c.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", c.live/mib, got, c.want)
		}
	}
	if got := Percent(1<<30, Options{Fraction: 0.1, Min: 25}); got != 25 {
		t.Errorf("min bound: %d", got)
	}
}

// Run sets GOGC from the live heap, leaves it alone when the environment
// chose one, and restores what it found when it stops.
func TestRun(t *testing.T) {
	gogc := func() int {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return int(s[0].Value.Uint64())
	}
	prev := debug.SetGCPercent(123)
	defer debug.SetGCPercent(prev)

	// The environment's GOGC wins: Run returns at once, nothing changed.
	Run(context.Background(), Options{}, true)
	if got := debug.SetGCPercent(123); got != 123 {
		t.Fatalf("with GOGC from the environment the setting changed to %d", got)
	}

	runtime.GC()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, Options{Every: time.Millisecond}, false); close(done) }()
	want := Percent(Live(), Options{})
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := gogc()
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d, want %d for a live heap of %d bytes", got, want, Live())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := debug.SetGCPercent(prev); got != 123 {
		t.Fatalf("after Run GOGC is %d, want the 123 it found", got)
	}
}
