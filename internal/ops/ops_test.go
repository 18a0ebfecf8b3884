package ops

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/quarantine"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// memQueue is a Postfix queue in memory for the quarantine service. Every
// message's sender is eve@example.org unless from names another.
type memQueue struct {
	q    map[string]string
	from map[string]string // queue ID → sender
}

func (m *memQueue) Release(_ context.Context, qid string) error {
	if m.q[qid] != "hold" {
		return quarantine.ErrNotInHold
	}
	m.q[qid] = "active"
	return nil
}
func (m *memQueue) Delete(_ context.Context, qid string) error {
	if m.q[qid] != "hold" {
		return quarantine.ErrNotInHold
	}
	delete(m.q, qid)
	return nil
}
func (m *memQueue) Hold(_ context.Context, qid string) error {
	if _, ok := m.q[qid]; !ok {
		return quarantine.ErrNotInHold
	}
	m.q[qid] = "hold"
	return nil
}
func (m *memQueue) Headers(context.Context, string) (string, error) {
	return "", quarantine.ErrNotInHold
}
func (m *memQueue) Queue(context.Context) ([]quarantine.QueueEntry, error) {
	var out []quarantine.QueueEntry
	for id, name := range m.q {
		sender := "eve@example.org"
		if f, ok := m.from[id]; ok {
			sender = f
		}
		out = append(out, quarantine.QueueEntry{QueueID: id, QueueName: name, Sender: sender})
	}
	return out, nil
}

func withQueue(t *testing.T) (*Service, *memQueue) {
	t.Helper()
	s, _, _ := newService(t)
	q := &memQueue{q: map[string]string{}}
	s.Quarantine = &quarantine.Service{Store: s.Store, Queue: q, Log: s.Log, Now: s.Now}
	return s, q
}

func auditCount(t *testing.T, s *Service, action store.AuditAction) int {
	t.Helper()
	es, err := s.Audit.ListAudit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Action == action {
			n++
		}
	}
	return n
}

// TestRecordHoldOncePerMessage: the two protocol paths holding one message
// make one record, one audit line, one count; the second path's reasons
// join the record.
func TestRecordHoldOncePerMessage(t *testing.T) {
	s, q := withQueue(t)
	ctx := context.Background()
	q.q["4ABC"] = "hold"
	at := s.now()
	first, created, err := s.RecordHold(ctx, &store.Hold{QueueID: "4ABC", Path: "policy", Account: "eve@example.org", Reasons: []string{"rate-recipients-hour"}, HeldAt: at})
	if err != nil || !created {
		t.Fatalf("first: %v created=%v", err, created)
	}
	second, created, err := s.RecordHold(ctx, &store.Hold{QueueID: "4ABC", Path: "milter", Account: "eve@example.org", Reasons: []string{"bulk-from-scripted-client"}, HeldAt: at.Add(time.Millisecond)})
	if err != nil || created || second.ID != first.ID {
		t.Fatalf("second: %v created=%v ids %d %d", err, created, first.ID, second.ID)
	}
	if got := strings.Join(second.Reasons, ","); !strings.Contains(got, "rate-recipients-hour") || !strings.Contains(got, "bulk-from-scripted-client") {
		t.Errorf("merged reasons %q", got)
	}
	if n := auditCount(t, s, store.AuditHold); n != 1 {
		t.Errorf("%d hold audit lines, want 1", n)
	}
}

// TestReleaseHold: an admin's release acts on Postfix, is audited with the
// actor, and the Released hook learns of it (re-injection expected).
func TestReleaseHold(t *testing.T) {
	s, q := withQueue(t)
	ctx := admin(context.Background())
	q.q["4REL"] = "hold"
	h, _, err := s.RecordHold(ctx, &store.Hold{QueueID: "4REL", Path: "milter", Account: "eve@example.org", Reasons: []string{"x"}, HeldAt: s.now()})
	if err != nil {
		t.Fatal(err)
	}
	var told *store.Hold
	s.Released = func(h *store.Hold) { told = h }
	got, err := s.ReleaseHold(ctx, h.ID)
	if err != nil || got.State != store.HoldReleased || q.q["4REL"] != "active" || told == nil || told.QueueID != "4REL" {
		t.Fatalf("release: %+v %v, hook %+v", got, err, told)
	}
	if n := auditCount(t, s, store.AuditRelease); n != 1 {
		t.Errorf("%d release audit lines", n)
	}
	if _, err := s.ReleaseHold(ctx, h.ID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second release: %v", err)
	}
}

// TestAccountStates: an admin may move an account up and down with a
// reason; escalation only raises; restricting puts the account's queued
// mail on hold.
func TestAccountStates(t *testing.T) {
	s, q := withQueue(t)
	ctx := admin(context.Background())
	q.q["Q1"], q.q["Q2"] = "deferred", "active"
	if _, err := s.SetAccountState(ctx, api.SetAccountStateRequest{Account: "eve@example.org", State: "restricted"}); err == nil {
		t.Fatal("a state change without a reason was accepted")
	}
	a, err := s.SetAccountState(ctx, api.SetAccountStateRequest{Account: " Eve@Example.org ", State: "restricted", Reason: "spam run"})
	if err != nil || a.Name != "eve@example.org" || a.State != store.AccountRestricted {
		t.Fatalf("restrict: %+v %v", a, err)
	}
	if q.q["Q1"] != "hold" || q.q["Q2"] != "hold" {
		t.Errorf("queued mail not held: %v", q.q)
	}
	if s.States.AccountState("eve@example.org") != store.AccountRestricted {
		t.Error("the engine's view of the state did not change")
	}
	// Escalation never lowers.
	if a, err := s.Escalate(context.Background(), "eve@example.org", store.AccountWatch, "score"); err != nil || a.State != store.AccountRestricted {
		t.Fatalf("escalate down: %+v %v", a, err)
	}
	if a, err := s.SetAccountState(ctx, api.SetAccountStateRequest{Account: "eve@example.org", State: "normal", Reason: "password reset"}); err != nil || a.State != store.AccountNormal {
		t.Fatalf("unrestrict: %+v %v", a, err)
	}
	if n := auditCount(t, s, store.AuditAccountState); n != 2 {
		t.Errorf("%d account-state audit lines, want 2", n)
	}
}

// TestRemovedUsersTokensRevoked: API tokens go with the user who created
// them (issue 13); others' tokens stay.
func TestRemovedUsersTokensRevoked(t *testing.T) {
	s, _, _ := newService(t)
	st := s.Store.(*sqlite.Store)
	as := auth.New(st, auth.Options{})
	s.Users, s.Tokens, s.Sessions = st, as, as
	hash, _ := auth.HashPassword("correct horse battery")
	for _, n := range []string{"alice", "bob"} {
		if err := st.PutUser(t.Context(), store.User{Name: n, Role: "admin", Hash: hash, Created: time.Now(), Updated: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(by, name string) string {
		tok, err := s.CreateToken(api.WithActor(t.Context(), api.Actor{Name: by}), api.CreateTokenRequest{Name: name, Role: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Secret
	}
	aliceTok, bobTok := mk("web:alice", "alice-script"), mk("web:bob", "bob-script")
	authn := func(secret string) error {
		r := httptest.NewRequest("GET", "/api/v1/holds", nil)
		r.Header.Set("Authorization", "Bearer "+secret)
		_, err := as.Authenticate(r)
		return err
	}
	if authn(aliceTok) != nil || authn(bobTok) != nil {
		t.Fatal("tokens do not work before")
	}
	if err := s.RemoveUser(admin(t.Context()), "alice"); err != nil {
		t.Fatal(err)
	}
	if authn(aliceTok) == nil {
		t.Error("a removed user's token still works")
	}
	if authn(bobTok) != nil {
		t.Error("another user's token was revoked")
	}
}

// TestUserChangeEndsSessionsOnEveryNode: an admin on node A removes,
// demotes or resets the password of bob, signed in on node B (two auth
// Services over one store): bob's session on node B is refused at its
// next request.
func TestUserChangeEndsSessionsOnEveryNode(t *testing.T) {
	s, _, _ := newService(t)
	st := s.Store.(*sqlite.Store)
	nodeA, nodeB := auth.New(st, auth.Options{}), auth.New(st, auth.Options{})
	s.Users, s.Tokens, s.Sessions = st, nodeA, nodeA
	ctx := admin(t.Context())
	const pw = "correct horse battery"
	signIn := func() string {
		t.Helper()
		p, err := nodeB.Login(ctx, "bob", pw, "192.0.2.9")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := nodeB.Session(ctx, p.SessionID); err != nil || got.Name != "bob" {
			t.Fatalf("bob's session on node B: %+v, %v", got, err)
		}
		return p.SessionID
	}
	for _, change := range []struct {
		name string
		do   func() error
	}{
		{"demoted", func() error {
			_, err := s.PutUser(ctx, api.PutUserRequest{Name: "bob", Role: "viewer"})
			return err
		}},
		{"password reset", func() error {
			_, err := s.PutUser(ctx, api.PutUserRequest{Name: "bob", Password: "another horse battery"})
			return err
		}},
		{"removed", func() error { return s.RemoveUser(ctx, "bob") }},
	} {
		if _, err := s.PutUser(ctx, api.PutUserRequest{Name: "bob", Role: "admin", Password: pw}); err != nil {
			t.Fatal(err)
		}
		id := signIn()
		if err := change.do(); err != nil {
			t.Fatalf("%s: %v", change.name, err)
		}
		if got, err := nodeB.Session(ctx, id); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("bob %s on node A: his session on node B gives %+v, %v", change.name, got, err)
		}
	}
}

// TestAccountNamesNormalised: an admin's '<User9@Example.edu>' is the
// account the engine charges (issue 13): one normalisation everywhere.
func TestAccountNamesNormalised(t *testing.T) {
	s, _, _ := newService(t)
	ctx := admin(t.Context())
	if _, err := s.SetAccountState(ctx, api.SetAccountStateRequest{Account: " <User9@Example.edu> ", State: "restricted", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	key := store.AccountKey("user9@example.edu")
	if got := s.States.AccountState(key); got != store.AccountRestricted {
		t.Errorf("engine's view of %s: %s", key, got)
	}
	d, err := s.GetAccount(ctx, "<USER9@example.EDU>")
	if err != nil || d.Account.State != store.AccountRestricted || d.Account.Name != "user9@example.edu" {
		t.Errorf("account show: %+v %v", d, err)
	}
	if store.AccountKey("<a b@x>") != "" || store.AccountKey("<>") != "" {
		t.Error("a name with a space or nothing in it is accepted")
	}
}

// TestAccountTimeline: the account's last day by the hour and its last six
// hours by five minutes, from the counters and the holds: two messages five
// minutes apart are one hourly point and two five-minute ones.
func TestAccountTimeline(t *testing.T) {
	s, _, clk := newService(t)
	ctx := admin(t.Context())
	c := counter.NewMemory()
	s.Counters = c
	now := clk.now() // 09:00
	// In time order: the counters put a late charge in their newest bucket.
	c.Charge(ctx, "u@example.edu", "q3", now.Add(-8*time.Hour), 1, 2)     // 01:00: only in the day
	c.Charge(ctx, "u@example.edu", "q1", now.Add(-19*time.Minute), 1, 30) // 08:41
	c.Charge(ctx, "u@example.edu", "q2", now.Add(-13*time.Minute), 1, 50) // 08:47
	if _, err := s.Store.PutHold(ctx, &store.Hold{QueueID: "Q2", Account: "u@example.edu", State: store.HoldHeld, HeldAt: now.Add(-13 * time.Minute), RecipientCount: 50, Reasons: []string{"bulk-from-scripted-client"}}); err != nil {
		t.Fatal(err)
	}
	tl, err := s.AccountTimeline(ctx, "U@example.edu")
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.Points) != 24 || len(tl.Recent) != 72 {
		t.Fatalf("%d hourly and %d five-minute points, want 24 and 72", len(tl.Points), len(tl.Recent))
	}
	if last := tl.Recent[71]; !last.Time.Equal(now) || !tl.Recent[0].Time.Equal(now.Add(-355*time.Minute)) {
		t.Fatalf("five-minute points span %s to %s", tl.Recent[0].Time, last.Time)
	}
	at := func(ps []api.VolumePoint, t time.Time) api.VolumePoint {
		for _, p := range ps {
			if p.Time.Equal(t) {
				return p
			}
		}
		return api.VolumePoint{}
	}
	if h := at(tl.Points, now.Add(-time.Hour)); h.Messages != 2 || h.Recipients != 80 || h.Held != 1 {
		t.Errorf("08:00 hour: %+v", h)
	}
	if p := at(tl.Recent, now.Add(-20*time.Minute)); p.Messages != 1 || p.Recipients != 30 || p.Held != 0 {
		t.Errorf("08:40: %+v", p)
	}
	if p := at(tl.Recent, now.Add(-15*time.Minute)); p.Messages != 1 || p.Recipients != 50 || p.Held != 1 {
		t.Errorf("08:45: %+v", p)
	}
	if h := at(tl.Points, now.Add(-8*time.Hour)); h.Messages != 1 {
		t.Errorf("01:00 hour: %+v", h)
	}
	var recent int64
	for _, p := range tl.Recent {
		recent += p.Messages
	}
	if recent != 2 {
		t.Errorf("the last six hours hold %d messages, want 2", recent)
	}
	if len(tl.Events) != 1 || tl.Events[0].Kind != "hold" {
		t.Errorf("events: %+v", tl.Events)
	}
}

// TestBulkHolds: "delete everything held for this account" acts on every
// held message of that account the admin saw (through the newest ID on the
// page), leaves other accounts, messages no longer held and mail held
// since alone, refuses when more match than were confirmed, and writes one
// summary audit line with the count beside each message's own.
func TestBulkHolds(t *testing.T) {
	s, q := withQueue(t)
	ctx := admin(t.Context())
	hold := func(qid, account string) int64 {
		t.Helper()
		q.q[qid] = "hold"
		h, _, err := s.RecordHold(ctx, &store.Hold{QueueID: qid, Path: "milter", Account: account, Reasons: []string{"bulk-from-scripted-client"}, HeldAt: s.now()})
		if err != nil {
			t.Fatal(err)
		}
		return h.ID
	}
	var eve []int64
	for i := range 5 {
		eve = append(eve, hold(fmt.Sprintf("4E%d", i), "eve@example.org"))
	}
	other := hold("4O1", "bob@example.org")
	if _, err := s.ReleaseHold(ctx, eve[0]); err != nil { // no longer held
		t.Fatal(err)
	}
	l, err := s.ListHolds(ctx, api.ListHoldsRequest{State: "held", Account: "Eve@example.org", Limit: 2})
	if err != nil || len(l.Holds) != 2 || l.Total != 4 || l.Newest != eve[4] {
		t.Fatalf("list: %d rows, total %d, newest %d (%v); want 2 rows of 4, newest %d", len(l.Holds), l.Total, l.Newest, err, eve[4])
	}
	later := hold("4E9", "eve@example.org") // held after the admin looked
	filter := api.ListHoldsRequest{Account: "eve@example.org"}
	if _, err := s.BulkHolds(ctx, api.BulkHoldsRequest{Action: "delete", Filter: filter, Through: later, Expect: 4}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("five match through the later hold, four confirmed: %v, want a conflict", err)
	}
	for _, bad := range []api.BulkHoldsRequest{{Action: "purge", Filter: filter, Through: l.Newest, Expect: 4}, {Action: "delete", Filter: filter, Expect: 4}, {Action: "delete", Filter: filter, Through: l.Newest}} {
		if _, err := s.BulkHolds(ctx, bad); !errors.Is(err, api.ErrBadRequest) {
			t.Errorf("%+v: %v, want a bad request", bad, err)
		}
	}
	if n := len(q.q); n != 7 {
		t.Fatalf("refused requests touched the queue: %d left", n)
	}
	res, err := s.BulkHolds(ctx, api.BulkHoldsRequest{Action: "delete", Filter: filter, Through: l.Newest, Expect: l.Total})
	if err != nil || res.Matched != 4 || res.Done != 4 || len(res.Failed) != 0 || res.Remaining != 0 {
		t.Fatalf("bulk delete: %+v %v", res, err)
	}
	for _, id := range eve[1:] {
		if h, _ := s.GetHold(ctx, id); h.State != store.HoldDeleted {
			t.Errorf("hold %d is %s", id, h.State)
		}
	}
	for _, id := range []int64{other, later} {
		if h, _ := s.GetHold(ctx, id); h.State != store.HoldHeld {
			t.Errorf("hold %d outside the selection is %s", id, h.State)
		}
	}
	if q.q["4E9"] != "hold" || q.q["4O1"] != "hold" || q.q["4E0"] != "active" || len(q.q) != 3 {
		t.Errorf("queue after the bulk delete: %v", q.q)
	}
	if n := auditCount(t, s, store.AuditDelete); n != 4 {
		t.Errorf("%d delete audit lines, want one per message", n)
	}
	es, _ := s.Audit.ListAudit(ctx, store.AuditFilter{Target: "account:eve@example.org", Limit: 10})
	found := false
	for _, e := range es {
		if e.Action == store.AuditBulk {
			found = true
			if e.Actor != "cli:root(0)" || !strings.Contains(e.Detail, "delete 4 of 4 held messages matching account=\"eve@example.org\"") {
				t.Errorf("summary audit: %+v", e)
			}
		}
	}
	if !found {
		t.Error("no summary audit line on the account")
	}
	// A message another admin released meanwhile is simply not matched.
	res, err = s.BulkHolds(ctx, api.BulkHoldsRequest{Action: "release", Filter: api.ListHoldsRequest{}, Through: later, Expect: 5})
	if err != nil || res.Matched != 2 || res.Done != 2 || q.q["4E9"] != "active" || q.q["4O1"] != "active" {
		t.Fatalf("release all: %+v %v, queue %v", res, err, q.q)
	}
}

// TestHoldRestrictedQueuedAtStart: an account restricted while this node's
// mailbrake was stopped (on another node, or before a restart) has the
// mail its Postfix queued meanwhile put on hold at start, in one reading
// of the queue; other senders' mail and a normal account's go on.
func TestHoldRestrictedQueuedAtStart(t *testing.T) {
	s, q := withQueue(t)
	ctx := t.Context()
	for _, a := range []store.Account{
		{Name: "eve@example.org", State: store.AccountRestricted, StateAt: s.now(), StateBy: "cluster:mta2", Reason: "spam run"},
		{Name: "mal@example.org", State: store.AccountLocked, StateAt: s.now(), StateBy: "playbook", Reason: "phished"},
		{Name: "wat@example.org", State: store.AccountWatch, StateAt: s.now(), StateBy: "cli:root", Reason: "look"},
	} {
		if err := s.Accounts.PutAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	states, err := NewStates(ctx, s.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	s.States = states
	q.q = map[string]string{"E1": "deferred", "E2": "active", "M1": "incoming", "W1": "deferred", "B1": "deferred"}
	q.from = map[string]string{"M1": "MAL@example.org", "W1": "wat@example.org", "B1": "bob@example.org"}
	s.SyncPeriodically(ctx, 0) // once, as at start
	want := map[string]string{"E1": "hold", "E2": "hold", "M1": "hold", "W1": "deferred", "B1": "deferred"}
	for id, name := range want {
		if q.q[id] != name {
			t.Errorf("%s in %s, want %s (queue %v)", id, q.q[id], name, q.q)
		}
	}
	if n := auditCount(t, s, store.AuditAccountHoldQueued); n != 2 {
		t.Errorf("%d hold-queued audit lines, want one per restricted account (2)", n)
	}
}

// countingEvents counts admin operations by action.
type countingEvents struct{ ops map[store.AuditAction]int }

func (e *countingEvents) AdminOp(action store.AuditAction) { e.ops[action]++ }
func (e *countingEvents) IncidentOpened(store.Severity)    {}
func (e *countingEvents) Step(string, store.StepStatus)    {}

// TestAdminOpsCountAdmins: mailbrake_admin_operations_total counts what
// admins did, not what mailbrake did on its own: an escalation, a state
// another node shared and the queue sync's changes are audited but are
// no admin's operation.
func TestAdminOpsCountAdmins(t *testing.T) {
	s, q := withQueue(t)
	ev := &countingEvents{ops: map[store.AuditAction]int{}}
	s.Events = ev
	ctx := t.Context()
	if _, err := s.Escalate(ctx, "eve@example.org", store.AccountWatch, "score 5"); err != nil {
		t.Fatal(err)
	}
	s.ApplySharedState(ctx, store.Account{Name: "mal@example.org", State: store.AccountRestricted, StateAt: s.now(), StateBy: "web:bob", Reason: "spam"}, "mta-b")
	q.q["4SYN"] = "hold"
	if _, err := s.SyncQueue(admin(ctx)); err != nil { // asked by an admin; Postfix's changes
		t.Fatal(err)
	}
	if len(ev.ops) != 0 {
		t.Fatalf("mailbrake's own changes counted as admin operations: %v", ev.ops)
	}
	if _, err := s.SetAccountState(admin(ctx), api.SetAccountStateRequest{Account: "eve@example.org", State: "restricted", Reason: "looked"}); err != nil {
		t.Fatal(err)
	}
	if ev.ops[store.AuditAccountState] != 1 || len(ev.ops) != 1 {
		t.Fatalf("an admin's change: %v", ev.ops)
	}
}
