package ops

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/quarantine"
	"github.com/mailbrake/mailbrake/internal/store"
)

// batchStore fails every batch holding queue ID "4BAD" and remembers the
// batch sizes it was given.
type batchStore struct {
	store.Quarantine
	mu      sync.Mutex
	batches []int
}

func (b *batchStore) PutHolds(ctx context.Context, hs []*store.Hold) ([]store.PutResult, error) {
	b.mu.Lock()
	b.batches = append(b.batches, len(hs))
	b.mu.Unlock()
	for _, h := range hs {
		if h.QueueID == "4BAD" {
			return nil, errors.New("refused")
		}
	}
	return b.Quarantine.PutHolds(ctx, hs)
}

type writeResult struct {
	qid     string
	id      int64
	created bool
	err     error
}

// TestHoldWriter: holds are written in batches no larger than the bound;
// each hold's done learns its record; a second hold of one queue ID merges
// (not created, audited once); a hold the store refuses fails alone, the
// rest of its batch is written; Close writes what is pending.
func TestHoldWriter(t *testing.T) {
	s, _ := withQueue(t)
	bs := &batchStore{Quarantine: s.Store}
	s.Quarantine = &quarantine.Service{Store: bs, Queue: s.Quarantine.Queue, Log: s.Log, Now: s.Now}
	w := NewHoldWriter(s, 20*time.Millisecond, 4)
	results := make(chan writeResult, 20)
	record := func(qid string) {
		w.Record(&store.Hold{QueueID: qid, Account: "a@example.org", Reasons: []string{"x"}, HeldAt: s.now()},
			func(h *store.Hold, created bool, err error) {
				r := writeResult{qid: qid, created: created, err: err}
				if h != nil {
					r.id = h.ID
				}
				results <- r
			})
	}
	for i := range 9 {
		record(fmt.Sprintf("4H%02d", i))
	}
	record("4BAD")
	record("4H01")
	got := map[string][]writeResult{}
	for range 11 {
		select {
		case r := <-results:
			got[r.qid] = append(got[r.qid], r)
		case <-time.After(10 * time.Second):
			t.Fatalf("holds not written: %+v", got)
		}
	}
	if r := got["4BAD"]; len(r) != 1 || r[0].err == nil {
		t.Fatalf("refused hold: %+v", r)
	}
	for i := range 9 {
		qid := fmt.Sprintf("4H%02d", i)
		r := got[qid]
		if len(r) == 0 || r[0].err != nil || r[0].id == 0 || !r[0].created {
			t.Fatalf("%s: %+v", qid, r)
		}
	}
	if r := got["4H01"]; len(r) != 2 || r[1].created || r[1].id != r[0].id {
		t.Fatalf("second hold of 4H01 did not merge: %+v", r)
	}
	for _, n := range bs.batches {
		if n > 4 {
			t.Fatalf("batch of %d holds, bound 4: %v", n, bs.batches)
		}
	}
	all, err := s.Store.ListHolds(t.Context(), store.HoldFilter{Limit: 100})
	if err != nil || len(all) != 9 {
		t.Fatalf("%d records, want 9: %v", len(all), err)
	}
	if n := auditCount(t, s, AuditHold); n != 9 {
		t.Fatalf("%d hold audit lines, want 9", n)
	}

	// Close writes what is pending, however long the delay.
	slow := NewHoldWriter(s, time.Hour, 256)
	w = slow
	record("4LATE1")
	record("4LATE2")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := slow.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case r := <-results:
			if r.err != nil || r.id == 0 {
				t.Fatalf("pending hold at close: %+v", r)
			}
		default:
			t.Fatal("Close returned before the pending holds were written")
		}
	}
}

// downStore refuses every write while down, as a PostgreSQL that does not
// answer.
type downStore struct {
	store.Quarantine
	mu   sync.Mutex
	down bool
}

func (d *downStore) isDown() bool  { d.mu.Lock(); defer d.mu.Unlock(); return d.down }
func (d *downStore) set(down bool) { d.mu.Lock(); d.down = down; d.mu.Unlock() }

func (d *downStore) PutHolds(ctx context.Context, hs []*store.Hold) ([]store.PutResult, error) {
	if d.isDown() {
		return nil, errors.New("dial tcp: connection refused")
	}
	return d.Quarantine.PutHolds(ctx, hs)
}

// TestHoldWriterStoreDown: while the store does not answer, holds are kept
// (none fails, none is lost) and written when it answers again, each
// hold's done then learning its record.
func TestHoldWriterStoreDown(t *testing.T) {
	s, _ := withQueue(t)
	ds := &downStore{Quarantine: s.Store, down: true}
	s.Quarantine = &quarantine.Service{Store: ds, Queue: s.Quarantine.Queue, Log: s.Log, Now: s.Now}
	w := NewHoldWriter(s, 5*time.Millisecond, 4)
	w.Probe = func(context.Context) error {
		if ds.isDown() {
			return errors.New("down")
		}
		return nil
	}
	results := make(chan writeResult, 20)
	for i := range 10 {
		qid := fmt.Sprintf("4DOWN%d", i)
		w.Record(&store.Hold{QueueID: qid, Account: "a@example.org", Reasons: []string{"x"}, HeldAt: s.now()},
			func(h *store.Hold, created bool, err error) {
				r := writeResult{qid: qid, created: created, err: err}
				if h != nil {
					r.id = h.ID
				}
				results <- r
			})
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.Parked() != 10 {
		if time.Now().After(deadline) {
			t.Fatalf("parked %d, want 10", w.Parked())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-results:
		t.Fatalf("a hold finished while the store was down: %+v", r)
	default:
	}
	ds.set(false)
	seen := map[string]bool{}
	for range 10 {
		select {
		case r := <-results:
			if r.err != nil || r.id == 0 || !r.created {
				t.Fatalf("after the store came back: %+v", r)
			}
			seen[r.qid] = true
		case <-time.After(15 * time.Second):
			t.Fatalf("only %d holds written after the store came back", len(seen))
		}
	}
	if w.Parked() != 0 {
		t.Fatalf("still parked: %d", w.Parked())
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	hs, _ := s.Store.ListHolds(t.Context(), store.HoldFilter{Limit: 100})
	if len(hs) != 10 {
		t.Fatalf("%d records, want 10", len(hs))
	}
}
