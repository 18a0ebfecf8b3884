package quarantine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// fakeQueue is a Postfix queue in memory: queue ID → queue name.
type fakeQueue struct {
	mu        sync.Mutex
	q         map[string]string
	headers   map[string]string // queue ID → header block (postcat -h)
	arrived   map[string]time.Time
	calls     []string
	fail      error // returned by the next Release/Delete
	failAfter bool  // fail after acting (postsuper moved the file, then failed)
}

func (f *fakeQueue) Headers(_ context.Context, qid string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.headers[qid]
	if !ok {
		return "", ErrNotInHold
	}
	return h, nil
}

func (f *fakeQueue) act(op, qid, to string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+qid)
	if err := f.fail; err != nil && !f.failAfter {
		f.fail = nil
		return err
	}
	if f.q[qid] != "hold" {
		return ErrNotInHold
	}
	if to == "" {
		delete(f.q, qid)
	} else {
		f.q[qid] = to
	}
	if err := f.fail; err != nil {
		f.fail, f.failAfter = nil, false
		return err
	}
	return nil
}

func (f *fakeQueue) Release(_ context.Context, qid string) error {
	return f.act("release", qid, "active")
}
func (f *fakeQueue) Delete(_ context.Context, qid string) error { return f.act("delete", qid, "") }
func (f *fakeQueue) Hold(_ context.Context, qid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.q[qid]; !ok {
		return ErrNotInHold
	}
	f.q[qid] = "hold"
	return nil
}
func (f *fakeQueue) Queue(context.Context) ([]QueueEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []QueueEntry
	for id, name := range f.q {
		out = append(out, QueueEntry{QueueID: id, QueueName: name, Sender: "s-" + id + "@example.org", Recipients: []string{"r@example.net"},
			ArrivalTime: f.arrived[id].Unix()})
	}
	return out, nil
}

func newService(t *testing.T) (*Service, *fakeQueue, *time.Time) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	q := &fakeQueue{q: map[string]string{}, headers: map[string]string{}, arrived: map[string]time.Time{}}
	s := &Service{Store: st, Queue: q, Log: slog.New(slog.DiscardHandler), MaxQueueLifetime: 5 * 24 * time.Hour, Grace: DefaultGrace}
	nowp := &now
	s.Now = func() time.Time { return *nowp }
	return s, q, nowp
}

func hold(t *testing.T, s *Service, q *fakeQueue, qid string) *store.Hold {
	t.Helper()
	q.mu.Lock()
	q.q[qid] = "hold"
	q.mu.Unlock()
	h, err := s.Record(t.Context(), &store.Hold{QueueID: qid, Account: "a@example.org", Recipients: []string{"r@example.net"}, RecipientCount: 1, Reasons: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestTransitions: release and delete act on Postfix and then record the
// state; acting on a hold that is not held is a conflict; when Postfix no
// longer has the message in hold, the service syncs and reports what
// happened instead of recording its own action.
func TestTransitions(t *testing.T) {
	s, q, clock := newService(t)
	ctx := t.Context()
	a := hold(t, s, q, "4AAA")
	got, err := s.Release(ctx, a.ID, "cli:root")
	if err != nil || got.State != store.HoldReleased || got.StateBy != "cli:root" || q.q["4AAA"] != "active" {
		t.Fatalf("release: %+v %v (queue %q)", got, err, q.q["4AAA"])
	}
	if _, err := s.Release(ctx, a.ID, "cli:root"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second release: %v, want a conflict", err)
	}
	if _, err := s.Delete(ctx, a.ID, "cli:root"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete after release: %v, want a conflict", err)
	}
	b := hold(t, s, q, "4BBB")
	if got, err := s.Delete(ctx, b.ID, "web:admin"); err != nil || got.State != store.HoldDeleted || q.q["4BBB"] != "" {
		t.Fatalf("delete: %+v %v", got, err)
	}
	// Someone released it with postsuper directly: the service finds out.
	c := hold(t, s, q, "4CCC")
	q.q["4CCC"] = "deferred"
	*clock = clock.Add(2 * DefaultGrace)
	got, err = s.Delete(ctx, c.ID, "cli:root")
	if !errors.Is(err, ErrNotInHold) || got.State != store.HoldReleased || got.StateBy != "postfix" {
		t.Fatalf("delete of a message released elsewhere: %+v %v", got, err)
	}
	// A failing postsuper records nothing.
	d := hold(t, s, q, "4DDD")
	q.fail = errors.New("postsuper: fatal: queue busy")
	if got, err := s.Release(ctx, d.ID, "cli:root"); err == nil || got.State != store.HoldHeld {
		t.Fatalf("failed release: %+v %v", got, err)
	}
	if h, _ := s.Store.GetHold(ctx, d.ID); h.State != store.HoldHeld {
		t.Fatalf("failed release recorded %s", h.State)
	}
	// postsuper moved the message, then exited non-zero (issue 13): the
	// queue shows it acted, so the admin's release is recorded, not a
	// later "deleted by postfix".
	e := hold(t, s, q, "4EEE")
	q.fail, q.failAfter = errors.New("postsuper: warning: exit 1 after moving"), true
	if got, err := s.Release(ctx, e.ID, "cli:root"); err != nil || got.State != store.HoldReleased || got.StateBy != "cli:root" {
		t.Fatalf("release that moved the message but failed: %+v %v", got, err)
	}
	f := hold(t, s, q, "4FFF")
	q.fail, q.failAfter = errors.New("postsuper: exit 1 after deleting"), true
	if got, err := s.Delete(ctx, f.ID, "cli:root"); err != nil || got.State != store.HoldDeleted {
		t.Fatalf("delete that removed the message but failed: %+v %v", got, err)
	}
}

// TestSyncPaging: Sync walks every held record however many pages there
// are (it reads 500 at a time while records leave the held state under
// it), and records each one's fate once: still held, released (now in
// another queue) or deleted (gone). Expiry: TestSyncExpired.
func TestSyncPaging(t *testing.T) {
	s, q, now := newService(t)
	ctx := t.Context()
	const n = 1234
	want := map[string]store.HoldState{}
	for i := range n {
		qid := fmt.Sprintf("Q%05X", i)
		hold(t, s, q, qid)
		switch i % 3 {
		case 0:
			want[qid] = store.HoldHeld
		case 1:
			q.q[qid] = "deferred"
			want[qid] = store.HoldReleased
		case 2:
			delete(q.q, qid)
			want[qid] = store.HoldDeleted
		}
	}
	*now = now.Add(2 * DefaultGrace) // the holds are older than the grace
	changes, err := s.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, c := range changes {
		seen[c.QueueID]++
	}
	all, err := s.Store.ListHolds(ctx, store.HoldFilter{Limit: 2 * n})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("%d records, want %d", len(all), n)
	}
	wrong := 0
	for _, h := range all {
		if h.State != want[h.QueueID] {
			wrong++
		}
		if want[h.QueueID] != store.HoldHeld && seen[h.QueueID] != 1 {
			t.Errorf("%s changed %d times in the sync", h.QueueID, seen[h.QueueID])
		}
	}
	if wrong > 0 {
		t.Fatalf("%d of %d records in the wrong state after Sync", wrong, n)
	}
	if again, err := s.Sync(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second sync: %d changes, %v", len(again), err)
	}
}

// TestSyncExpired: a held message gone from the queue after
// maximal_queue_lifetime expired; one gone sooner was deleted.
func TestSyncExpired(t *testing.T) {
	s, q, now := newService(t)
	ctx := t.Context()
	old := hold(t, s, q, "4OLD")
	*now = now.Add(6 * 24 * time.Hour)
	young := hold(t, s, q, "4NEW")
	delete(q.q, "4OLD")
	delete(q.q, "4NEW")
	*now = now.Add(2 * DefaultGrace)
	if _, err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Store.GetHold(ctx, old.ID); h.State != store.HoldExpired {
		t.Errorf("old: %s, want expired", h.State)
	}
	if h, _ := s.Store.GetHold(ctx, young.ID); h.State != store.HoldDeleted {
		t.Errorf("young: %s, want deleted", h.State)
	}
}

// TestHoldQueuedFrom: a restricted account's queued mail goes on hold;
// another sender's does not; a message gone meanwhile is reported.
func TestHoldQueuedFrom(t *testing.T) {
	s, q, _ := newService(t)
	q.q = map[string]string{"A1": "deferred", "A2": "active", "A3": "hold", "B1": "deferred"}
	// fakeQueue names every sender s-<qid>@example.org: match A1 only.
	held, err := s.HoldQueuedFrom(context.Background(), "S-A1@example.org")
	if err != nil || len(held) != 1 || held[0] != "A1" || q.q["A1"] != "hold" || q.q["B1"] != "deferred" {
		t.Fatalf("held %v, %v, queue %v", held, err, q.q)
	}
}

// TestHoldQueuedFromSparesReleased: a message mailbrake held that is now
// out of the hold queue was released by an admin (through mailbrake, or
// postsuper -H by hand); holding the sender's queued mail does not undo
// that, while the sender's other mail goes on hold.
func TestHoldQueuedFromSparesReleased(t *testing.T) {
	s, q, _ := newService(t)
	ctx := t.Context()
	h := hold(t, s, q, "R1")
	if _, err := s.Release(ctx, h.ID, "cli:root"); err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	q.q["R1"] = "active" // being delivered
	q.mu.Unlock()
	// By hand: postsuper -H of a hold whose record still says held.
	hold(t, s, q, "R2")
	q.mu.Lock()
	q.q["R2"] = "deferred"
	q.mu.Unlock()
	held, err := s.HoldQueuedFrom(ctx, "s-r1@example.org")
	if err != nil || len(held) != 0 || q.q["R1"] != "active" {
		t.Fatalf("released message held again: %v %v %v", held, err, q.q)
	}
	if held, _ := s.HoldQueuedFrom(ctx, "s-r2@example.org"); len(held) != 0 || q.q["R2"] != "deferred" {
		t.Fatalf("message released by hand held again: %v %v", held, q.q)
	}
}

// TestSyncGrace: a fresh hold not (yet) in the hold queue is not gone —
// Postfix commits the queue file after the answer — and is not marked
// deleted; once older than the grace it is.
func TestSyncGrace(t *testing.T) {
	s, q, now := newService(t)
	ctx := t.Context()
	h := hold(t, s, q, "4FRSH")
	delete(q.q, "4FRSH") // not in the queue listing yet
	if changes, err := s.Sync(ctx); err != nil || len(changes) != 0 {
		t.Fatalf("fresh hold changed: %+v %v", changes, err)
	}
	q.q["4FRSH"] = "incoming" // the transaction is still being committed
	if changes, err := s.Sync(ctx); err != nil || len(changes) != 0 {
		t.Fatalf("fresh incoming hold changed: %+v %v", changes, err)
	}
	// A young hold whose message is already deferred was released
	// (postsuper -H at once): no grace.
	r := hold(t, s, q, "4QUICK")
	q.q["4QUICK"] = "deferred"
	if changes, err := s.Sync(ctx); err != nil || len(changes) != 1 || changes[0].ID != r.ID || changes[0].To != store.HoldReleased {
		t.Fatalf("young released hold: %+v %v", changes, err)
	}
	delete(q.q, "4FRSH")
	*now = now.Add(2 * DefaultGrace)
	if changes, _ := s.Sync(ctx); len(changes) != 1 || changes[0].To != store.HoldDeleted {
		t.Fatalf("old hold: %+v", changes)
	}
	// It reappears in the hold queue (the listing missed it): revived, one
	// record for the queue ID.
	q.q["4FRSH"] = "hold"
	q.arrived["4FRSH"] = now.Add(-time.Hour)
	changes, err := s.Sync(ctx)
	if err != nil || len(changes) != 1 || !changes[0].Revived || changes[0].ID != h.ID {
		t.Fatalf("revive: %+v %v", changes, err)
	}
	if got, _ := s.Store.GetHold(ctx, h.ID); got.State != store.HoldHeld {
		t.Fatalf("revived record is %s", got.State)
	}
	if all, _ := s.Store.ListHolds(ctx, store.HoldFilter{}); len(all) != 2 {
		t.Fatalf("%d records for two queue IDs", len(all))
	}
}

// TestSyncRecoversUnrecordedHolds: a message in the hold queue without a
// record (mailbrake killed before writing it) is recorded, with the account
// and reasons of the milter's mark; one without a mark (postsuper -h by
// hand) as held outside mailbrake; a forged mark for another queue ID does
// not count; a young entry waits for the writer, and so does one whose
// record the writer still has (Unwritten: the store did not answer).
func TestSyncRecoversUnrecordedHolds(t *testing.T) {
	s, q, now := newService(t)
	ctx := t.Context()
	old := now.Add(-10 * time.Minute)
	q.q["4MARK01"], q.arrived["4MARK01"] = "hold", old
	q.headers["4MARK01"] = "Received: by mx\r\nSubject: Dear\r\n friend\r\n" + MarkHeader + ": " + FormatMark("4MARK01", "mallory@example.edu", []string{"bulk-from-scripted-client"}) + "\r\n"
	q.q["4HAND01"], q.arrived["4HAND01"] = "hold", old
	q.headers["4HAND01"] = "Subject: x\r\n" + MarkHeader + ": 4OTHER1 account=victim@example.edu reasons=forged\r\n"
	q.q["4YOUNG1"], q.arrived["4YOUNG1"] = "hold", *now
	q.q["4DEFER1"], q.arrived["4DEFER1"] = "deferred", old
	changes, err := s.Sync(ctx)
	if err != nil || len(changes) != 2 {
		t.Fatalf("changes %+v %v", changes, err)
	}
	m, err := s.Store.HoldByQueueID(ctx, "4MARK01")
	if err != nil || m.Account != "mallory@example.edu" || m.Reasons[0] != "bulk-from-scripted-client" || m.Path != "milter" || m.Subject != "Dear friend" || m.State != store.HoldHeld {
		t.Fatalf("recovered with its mark: %+v %v", m, err)
	}
	h, err := s.Store.HoldByQueueID(ctx, "4HAND01")
	if err != nil || h.Reasons[0] != ReasonHeldOutside || h.Account != "s-4HAND01@example.org" {
		t.Fatalf("held by hand: %+v %v", h, err)
	}
	if _, err := s.Store.HoldByQueueID(ctx, "4YOUNG1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a young hold-queue entry was recorded: %v", err)
	}
	if again, _ := s.Sync(ctx); len(again) != 0 {
		t.Fatalf("second sync: %+v", again)
	}

	parked := map[string]bool{"4PARK01": true}
	s.Unwritten = func(qid string) bool { return parked[qid] }
	q.q["4PARK01"], q.arrived["4PARK01"] = "hold", old
	if changes, err := s.Sync(ctx); err != nil || len(changes) != 0 {
		t.Fatalf("a message whose record waits in the writer: %+v %v", changes, err)
	}
	delete(parked, "4PARK01") // the writer gave it up: the sync records it
	if changes, err := s.Sync(ctx); err != nil || len(changes) != 1 || !changes[0].Recovered || changes[0].QueueID != "4PARK01" {
		t.Fatalf("given up by the writer: %+v %v", changes, err)
	}
}

// TestHeaderField: a folded header is read whole (a Message-ID folded
// onto its next line, as mail clients write long ones), a continuation
// line with a colon is not taken for a header, and the first copy wins.
func TestHeaderField(t *testing.T) {
	block := "Subject: a\n\tlong: subject\nMessage-ID:\n <0123456789.abcdef@mail.example.edu>\nX-Note: x\nMessage-ID: <second@example.org>\n"
	if got := HeaderField(block, "message-id"); got != "<0123456789.abcdef@mail.example.edu>" {
		t.Errorf("folded Message-ID: %q", got)
	}
	if got := HeaderField(block, "Subject"); got != "a long: subject" {
		t.Errorf("Subject: %q", got)
	}
	if got := HeaderField(block, "long"); got != "" {
		t.Errorf("a continuation line read as a header: %q", got)
	}
}
