package counter

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// flakyShared is the shared counters (a Memory) with the failures of a
// network between: down refuses every call without acting; late carries
// a charge out and then fails, as a pipeline Redis ran and answered after
// the client's timeout.
type flakyShared struct {
	*Memory
	mu         sync.Mutex
	down, late bool
}

var errTimeout = errors.New("redis counters: i/o timeout")

func (s *flakyShared) Charge(ctx context.Context, acct, msgKey string, t time.Time, msgs, rcpts int64) (store.Totals, error) {
	s.mu.Lock()
	down, late := s.down, s.late
	s.mu.Unlock()
	if down {
		return store.Totals{}, errTimeout
	}
	tot, err := s.Memory.Charge(ctx, acct, msgKey, t, msgs, rcpts)
	if late {
		return store.Totals{}, errTimeout
	}
	return tot, err
}

func (s *flakyShared) Peek(ctx context.Context, acct string, t time.Time) (store.Totals, error) {
	s.mu.Lock()
	down := s.down || s.late
	s.mu.Unlock()
	if down {
		return store.Totals{}, errTimeout
	}
	return s.Memory.Peek(ctx, acct, t)
}

func (s *flakyShared) set(down, late bool) {
	s.mu.Lock()
	s.down, s.late = down, late
	s.mu.Unlock()
}

// TestFailoverCountsOnce: after an outage the shared counts are what one
// node counting throughout would have — a charge the shared counters
// carried out but answered too late is not added again, and a message
// whose two protocol paths charged on either side of the outage's start
// is counted once (its largest report).
func TestFailoverCountsOnce(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	sh := &flakyShared{Memory: NewMemory()}
	clock := now
	f := &Failover{Shared: sh, RetryEvery: time.Second, Now: func() time.Time { return clock }}
	// Message q1: its RCPT path charged 1 message, 40 recipients shared.
	if _, err := f.Charge(ctx, "u@x", "q1", now, 1, 40); err != nil {
		t.Fatal(err)
	}
	// Message q2 is charged, Redis runs it and answers too late.
	sh.set(false, true)
	if _, err := f.Charge(ctx, "u@x", "q2", now, 1, 30); err != nil || !f.IsDegraded() {
		t.Fatalf("late answer: %v, degraded %v", err, f.IsDegraded())
	}
	sh.set(true, false)
	// During the outage: q1's end of message (the same message, now known
	// with 60 recipients), and q3.
	if _, err := f.Charge(ctx, "u@x", "q1", now, 1, 60); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Charge(ctx, "u@x", "q3", now, 1, 5); err != nil {
		t.Fatal(err)
	}
	sh.set(false, false)
	clock = clock.Add(2 * time.Second) // past RetryEvery
	if _, err := f.Charge(ctx, "u@x", "q4", now, 1, 1); err != nil || f.IsDegraded() {
		t.Fatalf("after the outage: %v, degraded %v", err, f.IsDegraded())
	}
	f.WaitReplay()
	got, _ := sh.Memory.Peek(ctx, "u@x", now)
	// One node: q1 60, q2 30, q3 5, q4 1 — four messages, 96 recipients.
	if got.Messages1h != 4 || got.Recipients1h != 96 {
		t.Fatalf("shared counts after the outage %+v, want 4 messages and 96 recipients", got)
	}
}

// TestFailoverRecoveryRace: a charge routed to this process just before
// another call found the shared counters answering again goes to them,
// not to a list only the next outage's end would replay.
func TestFailoverRecoveryRace(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	sh := &flakyShared{Memory: NewMemory()}
	f := &Failover{Shared: sh}
	f.degraded, f.nextTry = true, time.Now().Add(time.Hour)
	if shared, _ := f.route(); shared {
		t.Fatal("routed to the shared counters while degraded and before the retry time")
	}
	f.answered(ctx, nil, false) // another call: they answer again
	if _, err := f.chargeLocal(ctx, "u@x", "q9", now, 1, 7, false); err != nil {
		t.Fatal(err)
	}
	f.WaitReplay()
	if got, _ := sh.Memory.Peek(ctx, "u@x", now); got.Messages1h != 1 || got.Recipients1h != 7 {
		t.Fatalf("shared counts %+v, want the charge routed during the recovery", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pending) != 0 || len(f.keyed) != 0 {
		t.Fatalf("left for the next outage: %v %v", f.pending, f.keyed)
	}
}
