package ops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	w := NewHoldWriter(s, HoldWriterOptions{MaxDelay: 20 * time.Millisecond, MaxBatch: 4})
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
	if n := auditCount(t, s, store.AuditHold); n != 9 {
		t.Fatalf("%d hold audit lines, want 9", n)
	}

	// Close writes what is pending, however long the delay.
	slow := NewHoldWriter(s, HoldWriterOptions{MaxDelay: time.Hour, MaxBatch: 256})
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

func (d *downStore) probe(context.Context) error {
	if d.isDown() {
		return errors.New("down")
	}
	return nil
}

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
	w := NewHoldWriter(s, HoldWriterOptions{MaxDelay: 5 * time.Millisecond, MaxBatch: 4, Probe: ds.probe})
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

// spoolService returns a service on a store that is down and its log, for
// writers spooling to dir.
func spoolService(t *testing.T) (*Service, *downStore, *logBuffer) {
	t.Helper()
	s, q := withQueue(t)
	logbuf := &logBuffer{}
	s.Log = slog.New(slog.NewTextHandler(logbuf, nil))
	ds := &downStore{Quarantine: s.Store, down: true}
	s.Quarantine = &quarantine.Service{Store: ds, Queue: q, Log: s.Log, Now: s.Now, Node: "mta-b"}
	return s, ds, logbuf
}

// logBuffer is a log written by the writer's goroutine and read by the
// test's.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func spooledFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.hold"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
	}
}

// TestHoldWriterSpool: holds parked while the store is down are spooled
// (private files) and stay spooled when the writer closes; a new writer on
// the spool writes them with their whole records once the store answers:
// one the queue sync recorded meanwhile from its mark merges into that
// record, one the killed process had written (its message released
// since) is not written twice, a corrupt file is moved aside with a
// logged error and stops nothing. The queue sync leaves parked holds to
// the writer. No subject or header reaches the log.
func TestHoldWriterSpool(t *testing.T) {
	s, ds, logbuf := spoolService(t)
	dir := filepath.Join(t.TempDir(), "spool", "holds")
	opts := HoldWriterOptions{MaxDelay: 5 * time.Millisecond, MaxBatch: 4, Probe: ds.probe, SpoolDir: dir}
	w := NewHoldWriter(s, opts)
	results := make(chan writeResult, 20)
	at := s.now().Add(-time.Minute).Truncate(time.Microsecond)
	for i := range 6 {
		qid := fmt.Sprintf("4SP%d", i)
		path := []string{"policy", "milter"}[i%2]
		w.Record(&store.Hold{QueueID: qid, Path: path, Account: "eve@example.org", Reasons: []string{"rate-recipients-hour"}, Client: "zclient/8.8",
			Subject: "secret-subject-" + qid, Headers: "Subject: secret-subject-" + qid + "\r\n", RecipientCount: 60, HeldAt: at.Add(time.Duration(i) * time.Second)},
			func(h *store.Hold, created bool, err error) {
				results <- writeResult{qid: qid, created: created, err: err}
			})
	}
	waitFor(t, "6 holds spooled", func() bool { n, _ := w.Spooled(); return w.Parked() == 6 && n == 6 })
	if !w.Unwritten("4SP0") || w.Unwritten("4OTHER") {
		t.Fatal("Unwritten does not tell the parked holds")
	}
	files := spooledFiles(t, dir)
	if len(files) != 6 {
		t.Fatalf("spool files %v", files)
	}
	for _, f := range append(files, dir) {
		fi, err := os.Stat(f)
		want := os.FileMode(0o600)
		if f == dir {
			want = 0o700
		}
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	// Stopped while the store is down: the holds stay spooled.
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if r := <-results; r.err == nil {
			t.Fatalf("hold finished without its record written: %+v", r)
		}
	}
	if n := len(spooledFiles(t, dir)); n != 6 {
		t.Fatalf("%d spool files after Close, want 6", n)
	}
	if !strings.Contains(logbuf.String(), "holds left in the spool") {
		t.Fatalf("log:\n%s", logbuf.String())
	}

	// Meanwhile: the queue sync recorded 4SP1 from its mark (no client,
	// no subject); the process that was killed had written 4SP2 just
	// before, and it has been released since; a file went bad.
	ctx := t.Context()
	if _, err := s.Store.PutHold(ctx, &store.Hold{QueueID: "4SP1", Node: "mta-b", Path: "milter", Account: "eve@example.org",
		Reasons: []string{"rate-recipients-hour"}, HeldAt: at.Truncate(time.Second)}); err != nil {
		t.Fatal(err)
	}
	old, err := s.Store.PutHold(ctx, &store.Hold{QueueID: "4SP2", Node: "mta-b", Path: "policy", Account: "eve@example.org",
		Reasons: []string{"rate-recipients-hour"}, HeldAt: at.Add(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.SetHoldState(ctx, old.ID, store.HoldHeld, store.HoldReleased, "web:alice", s.now()); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "00000000000000000001.hold")
	if err := os.WriteFile(corrupt, []byte("mailbrake-hold 1 9 00000000\nsecret-body"), 0o600); err != nil {
		t.Fatal(err)
	}

	ds.set(false)
	w2 := NewHoldWriter(s, opts)
	waitFor(t, "the spooled holds written", func() bool { n, _ := w2.Spooled(); return w2.Parked() == 0 && n == 0 })
	if err := w2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if w2.Unwritten("4SP0") {
		t.Fatal("a written hold still unwritten")
	}
	if files := spooledFiles(t, dir); len(files) != 0 {
		t.Fatalf("spool files left: %v", files)
	}
	if _, err := os.Stat(filepath.Join(dir, "failed", filepath.Base(corrupt))); err != nil {
		t.Fatalf("corrupt file not moved aside: %v", err)
	}
	all, err := s.Store.ListHolds(ctx, store.HoldFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	byQID := map[string][]store.Hold{}
	for _, h := range all {
		byQID[h.QueueID] = append(byQID[h.QueueID], h)
	}
	for i := range 6 {
		qid := fmt.Sprintf("4SP%d", i)
		hs := byQID[qid]
		if len(hs) != 1 {
			t.Fatalf("%s: %d records, want 1: %+v", qid, len(hs), hs)
		}
		h := hs[0]
		if h.Node != "mta-b" || strings.Join(h.Reasons, ",") != "rate-recipients-hour" || h.Account != "eve@example.org" {
			t.Errorf("%s: %+v", qid, h)
		}
		if qid != "4SP2" && (h.Client != "zclient/8.8" || h.Subject != "secret-subject-"+qid || h.RecipientCount != 60 || h.State != store.HoldHeld) {
			t.Errorf("%s not written whole: %+v", qid, h)
		}
		if want := []string{"policy", "milter"}[i%2]; h.Path != want {
			t.Errorf("%s: path %q, want %q", qid, h.Path, want)
		}
	}
	if h := byQID["4SP2"][0]; h.State != store.HoldReleased {
		t.Errorf("4SP2 written again over its released record: %+v", h)
	}
	if n := auditCount(t, s, store.AuditHold); n != 4 {
		t.Errorf("%d hold audit lines, want 4 (the records created)", n)
	}
	logged := logbuf.String()
	if !strings.Contains(logged, "level=ERROR") || !strings.Contains(logged, filepath.Join("failed", filepath.Base(corrupt))) {
		t.Errorf("the corrupt file is not logged:\n%s", logged)
	}
	if strings.Contains(logged, "secret-") {
		t.Errorf("the log shows a subject, header or body:\n%s", logged)
	}
}

// TestHoldWriterSpoolBounds: beyond the bound of parked holds, and of
// spool bytes (also for the holds found at start), the oldest are left to
// the queue sync: their files removed, counted, logged once; the rest is
// written when the store answers.
func TestHoldWriterSpoolBounds(t *testing.T) {
	s, ds, logbuf := spoolService(t)
	dir := filepath.Join(t.TempDir(), "holds")
	opts := HoldWriterOptions{MaxDelay: 5 * time.Millisecond, MaxBatch: 2, Probe: ds.probe, SpoolDir: dir}
	w := newHoldWriter(s, opts, 3, 1<<30)
	var mu sync.Mutex
	failed := map[string]bool{}
	for i := range 5 {
		qid := fmt.Sprintf("4B%d", i)
		w.Record(&store.Hold{QueueID: qid, Account: "eve@example.org", Reasons: []string{"x"}, HeldAt: s.now()}, func(_ *store.Hold, _ bool, err error) {
			mu.Lock()
			defer mu.Unlock()
			failed[qid] = err != nil
		})
	}
	waitFor(t, "2 holds given up", func() bool { return w.GivenUp() == 2 && w.Parked() == 3 })
	if n, _ := w.Spooled(); n != 3 || len(spooledFiles(t, dir)) != 3 || w.Unwritten("4B0") || !w.Unwritten("4B4") {
		t.Fatalf("spooled %d, files %v", n, spooledFiles(t, dir))
	}
	mu.Lock()
	if !failed["4B0"] || !failed["4B1"] || len(failed) != 2 {
		t.Fatalf("done of the holds given up: %v", failed)
	}
	mu.Unlock()
	_, size := w.Spooled()
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if strings.Count(logbuf.String(), "too many holds waiting for the store") != 1 {
		t.Fatalf("log:\n%s", logbuf.String())
	}

	// Room for two of the three files: the oldest goes at start.
	ds.set(false)
	w2 := newHoldWriter(s, opts, 100, size*2/3+1)
	waitFor(t, "the rest written", func() bool { n, _ := w2.Spooled(); return w2.Parked() == 0 && n == 0 })
	w2.Close(t.Context())
	if w2.GivenUp() != 1 {
		t.Fatalf("given up at start: %d", w2.GivenUp())
	}
	all, _ := s.Store.ListHolds(t.Context(), store.HoldFilter{Limit: 100})
	if len(all) != 2 || all[0].QueueID != "4B4" || all[1].QueueID != "4B3" {
		t.Fatalf("records %+v", all)
	}
}

// TestHoldWriterSpoolUnwritable: a spool that cannot be written (or
// opened) costs no hold: they are kept in memory, counted, and written
// when the store answers.
func TestHoldWriterSpoolUnwritable(t *testing.T) {
	s, ds, logbuf := spoolService(t)
	dir := filepath.Join(t.TempDir(), "holds")
	w := NewHoldWriter(s, HoldWriterOptions{MaxDelay: 5 * time.Millisecond, MaxBatch: 4, Probe: ds.probe, SpoolDir: dir})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	w.Record(&store.Hold{QueueID: "4U0", Account: "eve@example.org", Reasons: []string{"x"}}, nil)
	waitFor(t, "the hold parked", func() bool { return w.Parked() == 1 && w.SpoolErrors() == 1 })
	if !strings.Contains(logbuf.String(), "holds not spooled, kept in memory only") {
		t.Fatalf("log:\n%s", logbuf.String())
	}
	ds.set(false)
	waitFor(t, "the hold written", func() bool { return w.Parked() == 0 })
	w.Close(t.Context())

	// A file where the spool should be: the writer runs without it.
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w = NewHoldWriter(s, HoldWriterOptions{MaxDelay: 5 * time.Millisecond, MaxBatch: 4, Probe: ds.probe, SpoolDir: dir})
	done := make(chan error, 1)
	w.Record(&store.Hold{QueueID: "4U1", Account: "eve@example.org", Reasons: []string{"x"}}, func(_ *store.Hold, _ bool, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.Close(t.Context())
	if !strings.Contains(logbuf.String(), "the hold spool cannot be used") {
		t.Fatalf("log:\n%s", logbuf.String())
	}
	if hs, _ := s.Store.ListHolds(t.Context(), store.HoldFilter{Limit: 10}); len(hs) != 2 {
		t.Fatalf("%d records, want 2", len(hs))
	}
}
