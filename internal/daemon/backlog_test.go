package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/store"
)

// downCounters are shared counters that do not answer (Redis down).
type downCounters struct{ store.Counters }

func (downCounters) Charge(context.Context, string, string, time.Time, int64, int64) (store.Totals, error) {
	return store.Totals{}, errors.New("redis: connection refused")
}

// TestCounterBacklogSpool: what the counters counted during a Redis
// outage is written to the spool at a stop and put back at the next
// start (the file then removed); an unreadable file is set aside.
func TestCounterBacklogSpool(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &cluster{spoolDir: dir, log: log, counts: &counter.Failover{Shared: downCounters{}}, scores: &counter.Failover{Shared: downCounters{}}}
	now := time.Now()
	if _, err := c.counts.Charge(ctx, "u@example.org", "q1", now, 1, 60); err != nil {
		t.Fatal(err)
	}
	if _, err := c.scores.Charge(ctx, "u@example.org\x00volume", "", now, 30, 1); err != nil {
		t.Fatal(err)
	}
	c.saveBacklogs()
	for _, name := range []string{"counts-backlog.json", "scores-backlog.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	// The next start, Redis answering: what was kept is added at once,
	// not at the node's next charge.
	sharedCounts, sharedScores := counter.NewMemory(), counter.NewMemory()
	next := &cluster{spoolDir: dir, log: log, counts: &counter.Failover{Shared: sharedCounts}, scores: &counter.Failover{Shared: sharedScores}}
	next.loadBacklogs()
	next.counts.WaitReplay()
	next.scores.WaitReplay()
	if tot, _ := sharedCounts.Peek(ctx, "u@example.org", now); tot.Messages1h != 1 || tot.Recipients1h != 60 || next.counts.IsDegraded() {
		t.Fatalf("counts added %+v, degraded %v", tot, next.counts.IsDegraded())
	}
	if tot, _ := sharedScores.Peek(ctx, "u@example.org\x00volume", now); tot.Messages1h != 30 || !next.scores.Backlog().Empty() {
		t.Fatalf("scores added %+v, still waiting %+v", tot, next.scores.Backlog())
	}
	if _, err := os.Stat(filepath.Join(dir, "counts-backlog.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read file not removed: %v", err)
	}
	// Nothing waiting at the next stop: no file.
	if _, err := next.counts.Charge(ctx, "u@example.org", "q2", now, 1, 1); err != nil {
		t.Fatal(err)
	}
	next.counts.WaitReplay()
	next.saveBacklogs()
	if _, err := os.Stat(filepath.Join(dir, "counts-backlog.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file for an empty backlog: %v", err)
	}

	if err := os.WriteFile(filepath.Join(dir, "counts-backlog.json"), []byte(`{"minutes":[{"account":"","minute":1}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	third := &cluster{spoolDir: dir, log: log, counts: &counter.Failover{Shared: counter.NewMemory()}, scores: &counter.Failover{Shared: counter.NewMemory()}}
	third.loadBacklogs()
	if !third.counts.Backlog().Empty() {
		t.Fatal("an unreadable backlog was restored")
	}
	if _, err := os.Stat(filepath.Join(dir, "counts-backlog.json.bad")); err != nil {
		t.Fatalf("not set aside: %v", err)
	}
}
