package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// directory is a connector and password-change source standing in for a
// site directory: it records locks and password changes.
type directory struct {
	mu      sync.Mutex
	locked  map[string]bool
	changed map[string]time.Time
	now     func() time.Time
}

func (d *directory) Name() string { return "dir" }
func (d *directory) Supports(s playbook.Step) bool {
	return s == playbook.StepLockLogin || s == playbook.StepScramblePassword
}
func (d *directory) Do(_ context.Context, s playbook.Step, inc *store.Incident, pw []byte) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch s {
	case playbook.StepLockLogin:
		d.locked[inc.Account] = true
	case playbook.StepScramblePassword:
		d.changed[inc.Account] = d.now()
	}
	return "", nil
}
func (d *directory) PasswordChangedAt(_ context.Context, a string) (time.Time, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed[a], nil
}
func (d *directory) Unlock(_ context.Context, a string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.locked, a)
	return nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newService(t *testing.T) (*Service, *directory, *clock) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)}
	dir := &directory{locked: map[string]bool{}, changed: map[string]time.Time{}, now: clk.now}
	states, err := NewStates(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Store: st, Audit: st, Accounts: st, States: states, Log: slog.New(slog.DiscardHandler), Now: clk.now}
	full := []playbook.Step{playbook.StepRestrictSending, playbook.StepLockLogin, playbook.StepScramblePassword, playbook.StepNotify}
	s.Response = &Response{Incidents: st, MinLock: time.Hour, Checkers: []PasswordChangeChecker{dir}, Unlockers: []Unlocker{dir},
		Playbooks: []*playbook.Playbook{
			{Name: "contain-password-leak", Triggers: []string{"password-leak"}, Severity: store.SeverityCritical, Steps: full, ConfirmFrom: len(full)},
			{Name: "contain-mass-sending", Triggers: []string{"bulk-from-scripted-client", ReasonMarkedSpam}, Severity: store.SeverityHigh, Steps: full, ConfirmFrom: 1},
		},
		Runner: &playbook.Runner{Incidents: st, Connectors: []playbook.Connector{s.Connector(), dir}, Backoff: time.Millisecond, Now: clk.now}}
	return s, dir, clk
}

func admin(ctx context.Context) context.Context {
	return api.WithActor(ctx, api.Actor{Name: "cli:root(0)"})
}

func TestFindingsOpenIncidentAndConfirm(t *testing.T) {
	s, dir, clk := newService(t)
	ctx := admin(t.Context())
	if err := s.ReportFindings(ctx, "u@example.edu", []Finding{{Reason: "bulk-from-scripted-client", Detail: "recipient_count=60", HoldID: 3, QueueID: "Q1"},
		{Reason: "no-playbook-for-this"}}); err != nil {
		t.Fatal(err)
	}
	s.WaitPlaybooks(ctx)
	incs, _ := s.ListIncidents(ctx, api.ListIncidentsRequest{State: "active"})
	if len(incs) != 1 {
		t.Fatalf("incidents: %d", len(incs))
	}
	in := incs[0]
	if in.State != store.IncidentOpen || in.Playbook != "contain-mass-sending" || in.Step("restrict-sending").Status != store.StepDone ||
		in.Step("lock-login").Status != store.StepPending || len(in.Evidence) != 1 || in.Evidence[0].HoldID != 3 {
		t.Fatalf("after the finding: %+v", in)
	}
	if st := s.States.AccountState("u@example.edu"); st != store.AccountRestricted {
		t.Fatalf("account %s, want restricted", st)
	}
	if dir.locked["u@example.edu"] {
		t.Fatal("locked before confirmation")
	}
	// The same message reported by the other path adds no evidence twice.
	_ = s.ReportFindings(ctx, "u@example.edu", []Finding{{Reason: "bulk-from-scripted-client", HoldID: 3, QueueID: "Q1"}})
	if got, _ := s.GetIncident(ctx, in.ID); len(got.Evidence) != 1 {
		t.Fatalf("evidence duplicated across paths: %d", len(got.Evidence))
	}
	// An admin cannot "unrestrict" their way around a lock later, and
	// resolving needs the account unlocked first.
	got, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: in.ID, Change: api.IncidentConfirm, Note: "spam confirmed"})
	if err != nil {
		t.Fatal(err)
	}
	// The steps run in the background: wait for them.
	s.WaitPlaybooks(ctx)
	got, _ = s.GetIncident(ctx, in.ID)
	if got.State != store.IncidentContained || !dir.locked["u@example.edu"] || s.States.AccountState("u@example.edu") != store.AccountLocked {
		t.Fatalf("after confirm: %s, locked %v, state %s", got.State, dir.locked["u@example.edu"], s.States.AccountState("u@example.edu"))
	}
	if _, err := s.SetAccountState(ctx, api.SetAccountStateRequest{Account: "u@example.edu", State: "normal", Reason: "oops"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("unrestrict of a locked account: %v", err)
	}
	if _, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: in.ID, Change: api.IncidentResolve}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("resolve while locked: %v", err)
	}

	// Unlock: refused before min_lock, refused while the password is the
	// scrambled one, allowed once the user changed it.
	_, err = s.UnlockAccount(ctx, api.UnlockAccountRequest{Account: "u@example.edu"})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "min_lock") {
		t.Fatalf("unlock at once: %v", err)
	}
	clk.add(2 * time.Hour)
	_, err = s.UnlockAccount(ctx, api.UnlockAccountRequest{Account: "u@example.edu"})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "has not changed") {
		t.Fatalf("unlock with the scrambled password: %v", err)
	}
	dir.mu.Lock()
	dir.changed["u@example.edu"] = clk.now().Add(-time.Minute) // the user reset it with the help desk
	dir.mu.Unlock()
	a, err := s.UnlockAccount(ctx, api.UnlockAccountRequest{Account: "u@example.edu", Reason: "user called, new password set"})
	if err != nil || a.State != store.AccountNormal || dir.locked["u@example.edu"] {
		t.Fatalf("unlock after the change: %v %+v locked=%v", err, a, dir.locked["u@example.edu"])
	}
	if got, err = s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: in.ID, Change: api.IncidentResolve, Note: "done"}); err != nil || got.State != store.IncidentResolved {
		t.Fatalf("resolve: %v %+v", err, got)
	}
	audit, _ := s.ListAudit(ctx, store.AuditFilter{Limit: 100})
	var actions []string
	for _, e := range audit {
		actions = append(actions, string(e.Action))
	}
	for _, want := range []store.AuditAction{store.AuditIncidentOpen, store.AuditIncidentState, store.AuditStep, store.AuditAccountUnlock, store.AuditAccountState} {
		if !strings.Contains(strings.Join(actions, " "), string(want)) {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}
}

func TestPasswordLeakRunsAtOnceAndOverride(t *testing.T) {
	s, dir, _ := newService(t)
	ctx := admin(t.Context())
	if err := s.ReportFindings(ctx, "v@example.edu", []Finding{{Reason: "password-leak", Detail: "text/plain part"}}); err != nil {
		t.Fatal(err)
	}
	s.WaitPlaybooks(ctx)
	in, err := s.Response.Incidents.ActiveIncident(ctx, "v@example.edu")
	if err != nil || in.State != store.IncidentContained || in.Severity != store.SeverityCritical || !dir.locked["v@example.edu"] {
		t.Fatalf("password leak: %v %+v", err, in)
	}
	if _, err := s.UnlockAccount(ctx, api.UnlockAccountRequest{Account: "v@example.edu", Override: true}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("override without a reason: %v", err)
	}
	if _, err := s.UnlockAccount(ctx, api.UnlockAccountRequest{Account: "v@example.edu", Override: true, Reason: "verified in person"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UnlockAccount(ctx, api.UnlockAccountRequest{Account: "v@example.edu"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("unlock of an unlocked account: %v", err)
	}
}

func TestDismissLiftsRestriction(t *testing.T) {
	s, _, _ := newService(t)
	ctx := admin(t.Context())
	_ = s.ReportFindings(ctx, "w@example.edu", []Finding{{Reason: "bulk-from-scripted-client"}})
	s.WaitPlaybooks(ctx)
	in, _ := s.Response.Incidents.ActiveIncident(ctx, "w@example.edu")
	if _, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: in.ID, Change: api.IncidentDismiss}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("dismiss without a note: %v", err)
	}
	got, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: in.ID, Change: api.IncidentDismiss, Note: "the newsletter editor"})
	if err != nil || got.State != store.IncidentDismissed || s.States.AccountState("w@example.edu") != store.AccountNormal {
		t.Fatalf("dismiss: %v %+v %s", err, got, s.States.AccountState("w@example.edu"))
	}
	if _, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: in.ID, Change: api.IncidentConfirm}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("confirm a dismissed incident: %v", err)
	}
	if _, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: in.ID, Change: "explode"}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("unknown change: %v", err)
	}
	// An admin opens one by hand: confirmed at once.
	got, err = s.OpenIncident(ctx, api.OpenIncidentRequest{Account: "X@Example.edu", Playbook: "contain-mass-sending", Note: "user reported a phishing reply"})
	if err == nil {
		s.WaitPlaybooks(ctx)
		got, err = s.GetIncident(ctx, got.ID)
	}
	if err != nil || got.Account != "x@example.edu" || got.State != store.IncidentContained {
		t.Fatalf("open by hand: %v %+v", err, got)
	}
	if _, err := s.OpenIncident(ctx, api.OpenIncidentRequest{Account: "y@example.edu", Playbook: "nope", Note: "x"}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("unknown playbook: %v", err)
	}
}

// slowSystem is a connector whose lock step waits until released, as a
// Zimbra timing out would.
type slowSystem struct {
	release chan struct{}
	slowFor string
}

func (slowSystem) Name() string                  { return "slow" }
func (slowSystem) Supports(s playbook.Step) bool { return s == playbook.StepLockLogin }
func (c slowSystem) Do(ctx context.Context, _ playbook.Step, inc *store.Incident, _ []byte) (string, error) {
	if inc.Account == c.slowFor {
		select {
		case <-c.release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return "locked", nil
}

// TestSlowSystemStallsOneIncidentOnly: confirm answers at once with the
// run under way; a system that hangs for one incident does not hold up
// another incident's playbook or the admin.
func TestSlowSystemStallsOneIncidentOnly(t *testing.T) {
	s, _, _ := newService(t)
	ctx := admin(t.Context())
	slow := slowSystem{release: make(chan struct{}), slowFor: "a@example.edu"}
	s.Response.Runner.Connectors = append(s.Response.Runner.Connectors, slow)
	for _, acct := range []string{"a@example.edu", "b@example.edu"} {
		_ = s.ReportFindings(ctx, acct, []Finding{{Reason: "bulk-from-scripted-client"}})
	}
	s.WaitPlaybooks(ctx) // restrict-sending ran for both; the rest waits for confirmation
	a, _ := s.Response.Incidents.ActiveIncident(ctx, "a@example.edu")
	b, _ := s.Response.Incidents.ActiveIncident(ctx, "b@example.edu")
	got, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: a.ID, Change: api.IncidentConfirm, Note: "confirmed"})
	if err != nil || got.State != store.IncidentConfirmed || !got.Running {
		t.Fatalf("confirm of a: %v %+v", err, got)
	}
	// b's playbook completes while a's lock hangs.
	if _, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: b.ID, Change: api.IncidentConfirm, Note: "confirmed"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := s.GetIncident(ctx, b.ID)
		if got.State == store.IncidentContained && !got.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b not contained while a's system hangs: %+v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, _ := s.GetIncident(ctx, a.ID); !got.Running || got.State != store.IncidentConfirmed {
		t.Fatalf("a: %+v", got)
	}
	close(slow.release)
	s.WaitPlaybooks(ctx)
	if got, _ := s.GetIncident(ctx, a.ID); got.Running || got.State != store.IncidentContained {
		t.Fatalf("a after the system answered: %+v", got)
	}
}

// failingStep fails restrict-sending every time and counts the attempts.
type failingStep struct {
	mu sync.Mutex
	n  int
}

func (f *failingStep) Name() string                  { return "flaky" }
func (f *failingStep) Supports(s playbook.Step) bool { return s == playbook.StepRestrictSending }
func (f *failingStep) attempts() int                 { f.mu.Lock(); defer f.mu.Unlock(); return f.n }
func (f *failingStep) Do(context.Context, playbook.Step, *store.Incident, []byte) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return "", errors.New("directory unreachable")
}

// TestEvidenceRerunsPlaybookAtMostEveryMinute: more evidence of the same
// kind (a spam run) reruns the playbook, retrying its failed steps, at most
// once a minute; evidence that raises the severity runs it at once.
func TestEvidenceRerunsPlaybookAtMostEveryMinute(t *testing.T) {
	s, _, clk := newService(t)
	ctx := admin(t.Context())
	flaky := &failingStep{}
	s.Response.Runner.Connectors = append(s.Response.Runner.Connectors, flaky)
	s.Response.Runner.Attempts = 1
	report := func(qid, reason string) {
		t.Helper()
		if err := s.ReportFindings(ctx, "u@example.edu", []Finding{{Reason: reason, QueueID: qid}}); err != nil {
			t.Fatal(err)
		}
		s.WaitPlaybooks(ctx)
	}
	report("Q1", "bulk-from-scripted-client")
	if n := flaky.attempts(); n != 1 {
		t.Fatalf("first run: %d attempts", n)
	}
	for i := range 20 {
		clk.add(time.Second)
		report("QQ"+string(rune('A'+i)), "bulk-from-scripted-client")
	}
	if n := flaky.attempts(); n != 1 {
		t.Fatalf("20 findings within a minute reran the playbook: %d attempts", n)
	}
	clk.add(time.Minute)
	report("Q2", "bulk-from-scripted-client")
	if n := flaky.attempts(); n != 2 {
		t.Fatalf("a finding a minute later: %d attempts, want 2", n)
	}
	report("Q3", "password-leak") // critical: its own playbook runs now
	if n := flaky.attempts(); n != 3 {
		t.Fatalf("an escalating finding: %d attempts, want 3", n)
	}
	in, _ := s.Response.Incidents.ActiveIncident(ctx, "u@example.edu")
	if in.Playbook != "contain-password-leak" || len(in.Evidence) != 23 {
		t.Fatalf("incident: playbook %s, %d evidence", in.Playbook, len(in.Evidence))
	}
}

// countingIncidents counts the findings written to the store.
type countingIncidents struct {
	store.Incidents
	mu sync.Mutex
	n  int
}

func (c *countingIncidents) OpenIncidents(ctx context.Context, fs []store.IncidentFinding) ([]store.OpenResult, error) {
	c.mu.Lock()
	c.n += len(fs)
	c.mu.Unlock()
	return c.Incidents.OpenIncidents(ctx, fs)
}

// TestFullIncidentTakesNoMoreWrites: once an incident's evidence is full,
// findings that would change nothing are not written; a new reason or a
// higher severity still is; once the incident is resolved the next finding
// opens a new one.
func TestFullIncidentTakesNoMoreWrites(t *testing.T) {
	s, _, _ := newService(t)
	ctx := admin(t.Context())
	c := &countingIncidents{Incidents: s.Response.Incidents}
	s.Response.Incidents = c
	var batch []Report
	for i := range store.MaxEvidence + 1 {
		batch = append(batch, Report{Account: "u@example.edu", Findings: []Finding{{Reason: "bulk-from-scripted-client", QueueID: fmt.Sprintf("Q%03d", i)}}})
	}
	if err := s.ReportMany(ctx, batch); err != nil {
		t.Fatal(err)
	}
	s.WaitPlaybooks(ctx)
	if c.n != store.MaxEvidence+1 {
		t.Fatalf("%d findings written, want %d", c.n, store.MaxEvidence+1)
	}
	for i := range 50 {
		_ = s.ReportFindings(ctx, "u@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: fmt.Sprintf("R%03d", i)}})
	}
	if c.n != store.MaxEvidence+1 {
		t.Fatalf("findings written to a full incident: %d", c.n-store.MaxEvidence-1)
	}
	_ = s.ReportFindings(ctx, "u@example.edu", []Finding{{Reason: "marked-spam", QueueID: "S1"}})
	in, _ := s.Response.Incidents.ActiveIncident(ctx, "u@example.edu")
	if c.n != store.MaxEvidence+2 || !slices.Contains(in.Reasons, "marked-spam") {
		t.Fatalf("a new reason: %d written, reasons %v", c.n, in.Reasons)
	}
	_ = s.ReportFindings(ctx, "u@example.edu", []Finding{{Reason: "password-leak", QueueID: "P1"}})
	in, _ = s.Response.Incidents.ActiveIncident(ctx, "u@example.edu")
	if in.Severity != store.SeverityCritical {
		t.Fatalf("a critical finding on a full incident: severity %s", in.Severity)
	}
	s.WaitPlaybooks(ctx)
	if _, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: in.ID, Change: api.IncidentDismiss, Note: "class announcement"}); err != nil {
		t.Fatal(err)
	}
	_ = s.ReportFindings(ctx, "u@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: "N1"}})
	next, err := s.Response.Incidents.ActiveIncident(ctx, "u@example.edu")
	if err != nil || next.ID == in.ID || len(next.Evidence) != 1 {
		t.Fatalf("after dismissal: %+v %v", next, err)
	}
	s.WaitPlaybooks(ctx)
}

// TestResumePlaybooks: at start, an incident with a step due (one that
// failed, or that a stop cut short) runs again; one whose remaining steps
// wait for an admin's confirmation does not.
func TestResumePlaybooks(t *testing.T) {
	s, _, _ := newService(t)
	ctx := admin(t.Context())
	flaky := &failingStep{}
	s.Response.Runner.Attempts = 1
	_ = s.ReportFindings(ctx, "calm@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: "Q0"}})
	s.WaitPlaybooks(ctx)
	s.Response.Runner.Connectors = append(s.Response.Runner.Connectors, flaky)
	_ = s.ReportFindings(ctx, "u@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: "Q1"}})
	s.WaitPlaybooks(ctx)
	if n := flaky.attempts(); n != 1 {
		t.Fatalf("first run: %d attempts", n)
	}
	n, err := s.ResumePlaybooks(ctx)
	s.WaitPlaybooks(ctx)
	if err != nil || n != 1 || flaky.attempts() != 2 {
		t.Fatalf("resumed %d (%v), %d attempts; want the failed incident only", n, err, flaky.attempts())
	}
}

// TestDismissTeachesDetectors: dismissing an incident as a false alarm
// hands each of its held messages (of that account, once each) to
// Reviewed, so the detectors learn from the review.
func TestDismissTeachesDetectors(t *testing.T) {
	s, _, clk := newService(t)
	ctx := admin(t.Context())
	var ids []int64
	for i, acct := range []string{"n@example.edu", "n@example.edu", "other@example.edu"} {
		res, err := s.Store.PutHolds(ctx, []*store.Hold{{QueueID: fmt.Sprintf("QD%d", i), Account: acct, Reasons: []string{"bulk-from-scripted-client"},
			Prints: []string{"text:abc"}, HeldAt: clk.now(), State: store.HoldHeld}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res[0].Hold.ID)
	}
	var got []int64
	s.Reviewed = func(h *store.Hold, until time.Time) {
		if !until.After(clk.now()) || len(h.Prints) != 1 {
			t.Errorf("reviewed %d until %s, prints %v", h.ID, until, h.Prints)
		}
		got = append(got, h.ID)
	}
	_ = s.ReportFindings(ctx, "n@example.edu", []Finding{{Reason: "bulk-from-scripted-client", HoldID: ids[0], QueueID: "QD0"},
		{Reason: "bulk-from-scripted-client", HoldID: ids[1], QueueID: "QD1"}, {Reason: "bulk-from-scripted-client", HoldID: ids[2], QueueID: "QD2"}})
	s.WaitPlaybooks(ctx)
	in, err := s.Response.Incidents.ActiveIncident(ctx, "n@example.edu")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: in.ID, Change: api.IncidentDismiss, Note: "the department newsletter"}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, ids[:2]) {
		t.Errorf("reviewed holds %v, want %v (not the other account's)", got, ids[:2])
	}
}

// meetingSystem is a connector whose lock waits until every other such
// system has started its own: systems called one after another never
// meet, and each gives up after a while.
type meetingSystem struct {
	name string
	meet *sync.WaitGroup
}

func (m meetingSystem) Name() string                { return m.name }
func (meetingSystem) Supports(s playbook.Step) bool { return s == playbook.StepLockLogin }
func (m meetingSystem) Do(ctx context.Context, _ playbook.Step, _ *store.Incident, _ []byte) (string, error) {
	m.meet.Done()
	met := make(chan struct{})
	go func() { m.meet.Wait(); close(met) }()
	select {
	case <-met:
		return "locked", nil
	case <-time.After(10 * time.Second):
		return "", errors.New("called alone: the other systems wait for this one")
	}
}

// TestAdminLockCallsSystemsAtOnce: an admin's lock calls every system
// at once, so a slow one holds up the request by its own time only; each
// outcome is audited.
func TestAdminLockCallsSystemsAtOnce(t *testing.T) {
	s, _, _ := newService(t)
	ctx := admin(t.Context())
	var meet sync.WaitGroup
	meet.Add(2)
	s.Response.Runner.Connectors = []playbook.Connector{s.Connector(), meetingSystem{"zimbra", &meet}, meetingSystem{"ldap", &meet}}
	if _, err := s.SetAccountState(ctx, api.SetAccountStateRequest{Account: "m@example.edu", State: "locked", Reason: "phished"}); err != nil {
		t.Fatal(err)
	}
	es, err := s.Audit.ListAudit(ctx, store.AuditFilter{Target: "account:m@example.edu", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		if strings.HasSuffix(e.Detail, ": locked") || strings.Contains(e.Detail, "lock failed") {
			got = append(got, e.Detail)
		}
	}
	if len(got) != 2 || !slices.Contains(got, "zimbra: locked") || !slices.Contains(got, "ldap: locked") {
		t.Fatalf("lock outcomes audited: %q", got)
	}
}
