package counter

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestBacklogAcrossRestart: a node stopped during an outage keeps what it
// counted (Backlog, written to disk by the daemon); the next process puts
// it back (Restore) and, when the shared counters answer, adds it —
// keyed messages under their keys, the rest per minute — so the shared
// counts are what one node counting throughout would have.
func TestBacklogAcrossRestart(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	sh := &flakyShared{Memory: NewMemory()}
	f := &Failover{Shared: sh, RetryEvery: time.Hour, Now: func() time.Time { return now }}
	if _, err := f.Charge(ctx, "u@x", "q1", now, 1, 40); err != nil {
		t.Fatal(err)
	}
	sh.set(true, false)
	for _, c := range []struct {
		key   string
		m, r  int64
		minus time.Duration
	}{{"q2", 1, 30, 0}, {"q3", 1, 5, time.Minute}, {"", 1, 7, 2 * time.Minute}, {"q2", 1, 31, 0}} {
		if _, err := f.Charge(ctx, "u@x", c.key, now.Add(-c.minus), c.m, c.r); err != nil {
			t.Fatal(err)
		}
	}
	b := f.Backlog()
	if len(b.Messages) != 2 || len(b.Minutes) != 1 {
		t.Fatalf("backlog %+v", b)
	}
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeBacklog(data)
	if err != nil {
		t.Fatal(err)
	}

	// The next process; the shared counters answer again.
	sh.set(false, false)
	next := &Failover{Shared: sh, RetryEvery: time.Hour, Now: func() time.Time { return now }}
	next.Restore(back)
	if !next.IsDegraded() {
		t.Fatal("a restored backlog is not waiting for the shared counters")
	}
	if _, err := next.Charge(ctx, "u@x", "q4", now, 1, 1); err != nil || next.IsDegraded() {
		t.Fatalf("first charge: %v, degraded %v", err, next.IsDegraded())
	}
	next.WaitReplay()
	got, _ := sh.Memory.Peek(ctx, "u@x", now)
	// One node: q1 40, q2 31, q3 5, an unkeyed 7, q4 1.
	if got.Messages1h != 5 || got.Recipients1h != 84 {
		t.Fatalf("shared counts %+v, want 5 messages and 84 recipients", got)
	}
	if !next.Backlog().Empty() {
		t.Fatalf("still waiting: %+v", next.Backlog())
	}
}

// FuzzDecodeBacklog: the backlog decoder never panics, and what it
// accepts encodes to what it decodes again.
func FuzzDecodeBacklog(f *testing.F) {
	f.Add([]byte(`{"messages":[{"account":"u@x","key":"q1","at":"2026-12-04T09:00:00Z","messages":1,"recipients":40}],"minutes":[{"account":"u@x\u0000volume","minute":29461440,"messages":1,"recipients":7}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"minutes":[{"account":"u@x","minute":-1,"messages":1,"recipients":7}]}`))
	f.Add([]byte(`{"messages":[{"account":"","key":"q","at":"2026-12-04T09:00:00Z"}]} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBacklog(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeBacklog(again); err != nil {
			t.Fatalf("accepted %q, refused its encoding %q: %v", data, again, err)
		}
	})
}
