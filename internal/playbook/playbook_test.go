package playbook

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// recorder is a connector that records the steps it is asked to do and
// fails as told.
type recorder struct {
	name     string
	steps    []Step
	mu       sync.Mutex
	calls    []string
	failures map[Step]int // fail this many times before succeeding
	perm     map[Step]bool
	pw       []byte
}

func (c *recorder) Name() string { return c.name }
func (c *recorder) Supports(s Step) bool {
	for _, x := range c.steps {
		if x == s {
			return true
		}
	}
	return false
}
func (c *recorder) Do(_ context.Context, s Step, inc *store.Incident, pw []byte) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, string(s))
	if s == StepScramblePassword {
		c.pw = append([]byte(nil), pw...)
	}
	if c.perm[s] {
		return "", errors.Join(ErrPermanent, errors.New("no such account"))
	}
	if c.failures[s] > 0 {
		c.failures[s]--
		return "", errors.New("connection refused")
	}
	return "", nil
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestRunConfirmAndContain(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	zim := &recorder{name: "zimbra", steps: []Step{StepLockLogin, StepScramblePassword, StepEndSessions, StepForcePasswordChange, StepCheckPersistence},
		failures: map[Step]int{StepEndSessions: 2}}
	ldap := &recorder{name: "ldap", steps: []Step{StepLockLogin, StepScramblePassword}}
	self := &recorder{name: "mailbrake", steps: []Step{StepRestrictSending, StepHoldQueuedMail}}
	var audit []string
	r := &Runner{Incidents: st, Connectors: []Connector{self, zim, ldap}, Backoff: time.Millisecond,
		Audit: func(_ context.Context, actor string, action store.AuditAction, target, detail string) {
			if action != store.AuditStep {
				t.Errorf("a step outcome audited as %s", action)
			}
			audit = append(audit, actor+" "+target+" "+detail)
		}}
	pb := &Playbook{Name: "contain-sending", Severity: store.SeverityHigh,
		Steps: []Step{StepRestrictSending, StepHoldQueuedMail, StepLockLogin, StepScramblePassword, StepEndSessions, StepForcePasswordChange, StepCheckPersistence, StepNotify}, ConfirmFrom: 2}
	inc, _, err := st.OpenIncident(ctx, "u@example.edu", pb.Severity, pb.Name, store.Evidence{Reason: "bulk-from-scripted-client"})
	if err != nil {
		t.Fatal(err)
	}
	inc, err = r.Run(ctx, inc, pb, "system")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(self.calls, ","); got != "restrict-sending,hold-queued-mail" {
		t.Fatalf("immediate steps: %s", got)
	}
	if len(zim.calls) != 0 {
		t.Fatalf("steps after the confirmation point ran unconfirmed: %v", zim.calls)
	}
	if s := inc.Step("lock-login"); s == nil || s.Status != store.StepPending {
		t.Fatalf("lock-login not pending: %+v", s)
	}
	if Finished(pb, inc) {
		t.Fatal("finished before confirmation")
	}
	// Running again unconfirmed does nothing new.
	if inc, err = r.Run(ctx, inc, pb, "system"); err != nil || len(self.calls) != 2 {
		t.Fatalf("rerun: %v %v", err, self.calls)
	}
	if err := st.SetIncidentState(ctx, inc.ID, []store.IncidentState{store.IncidentOpen}, store.IncidentConfirmed, "cli:root", "", time.Now()); err != nil {
		t.Fatal(err)
	}
	inc, _ = st.GetIncident(ctx, inc.ID)
	inc, err = r.Run(ctx, inc, pb, "cli:root")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(zim.calls, ","); got != "lock-login,scramble-password,end-sessions,end-sessions,end-sessions,force-password-change,check-persistence" {
		t.Fatalf("zimbra calls: %s", got)
	}
	if got := strings.Join(self.calls, ","); got != "restrict-sending,hold-queued-mail" {
		t.Fatalf("done steps re-ran: %s", got)
	}
	// One password for every directory, random and well-formed.
	if len(zim.pw) != 32 || string(zim.pw) != string(ldap.pw) {
		t.Fatalf("scrambled passwords differ or malformed: %d bytes", len(zim.pw))
	}
	es := inc.Step("end-sessions")
	if es.Status != store.StepDone || es.Attempts != 3 {
		t.Fatalf("end-sessions after two failures: %+v", es)
	}
	if n := inc.Step("notify"); n.Status != store.StepSkipped {
		t.Fatalf("notify without a connector: %+v", n)
	}
	if !Finished(pb, inc) {
		t.Fatalf("not finished: %+v", inc.Steps)
	}
	for _, line := range audit {
		if strings.Contains(line, string(zim.pw)) {
			t.Fatal("password in the audit log")
		}
	}
	if len(audit) != 8 {
		t.Fatalf("audit entries: %d\n%s", len(audit), strings.Join(audit, "\n"))
	}
}

func TestRunFailuresAndDryRun(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	flaky := &recorder{name: "zimbra", steps: []Step{StepLockLogin, StepEndSessions}, failures: map[Step]int{StepLockLogin: 10}, perm: map[Step]bool{StepEndSessions: true}}
	ok := &recorder{name: "dovecot", steps: []Step{StepEndSessions}}
	r := &Runner{Incidents: st, Connectors: []Connector{flaky, ok}, Attempts: 2, Backoff: time.Millisecond}
	pb := &Playbook{Name: "p", Severity: store.SeverityCritical, Steps: []Step{StepLockLogin, StepEndSessions}, ConfirmFrom: 2}
	inc, _, _ := st.OpenIncident(ctx, "u@example.edu", pb.Severity, pb.Name, store.Evidence{Reason: "password-leak"})
	inc, err := r.Run(ctx, inc, pb, "system")
	if err != nil {
		t.Fatal(err)
	}
	lock := inc.Step("lock-login")
	if lock.Status != store.StepFailed || lock.Attempts != 2 || !strings.Contains(lock.Detail, "connection refused") {
		t.Fatalf("lock-login: %+v", lock)
	}
	// A permanent error is not retried; the other connector still runs.
	es := inc.Step("end-sessions")
	if es.Status != store.StepFailed || !strings.Contains(es.Detail, "dovecot: ok") || strings.Count(strings.Join(flaky.calls, ","), "end-sessions") != 1 {
		t.Fatalf("end-sessions: %+v calls %v", es, flaky.calls)
	}
	// A retry runs only the failed steps.
	flaky.failures[StepLockLogin] = 0
	inc, _ = r.Run(ctx, inc, pb, "cli:root")
	if inc.Step("lock-login").Status != store.StepDone || len(ok.calls) != 2 {
		t.Fatalf("retry: %+v, dovecot calls %v", inc.Steps, ok.calls)
	}

	// Dry run: nothing is called, everything recorded as dry-run.
	dry := &recorder{name: "zimbra", steps: []Step{StepLockLogin, StepEndSessions}}
	r = &Runner{Incidents: st, Connectors: []Connector{dry}, DryRun: true}
	inc2, _, _ := st.OpenIncident(ctx, "v@example.edu", pb.Severity, pb.Name, store.Evidence{Reason: "password-leak"})
	inc2, _ = r.Run(ctx, inc2, pb, "system")
	if len(dry.calls) != 0 || inc2.Step("lock-login").Status != store.StepDryRun || !strings.Contains(inc2.Step("lock-login").Detail, "zimbra") {
		t.Fatalf("dry run: calls %v steps %+v", dry.calls, inc2.Steps)
	}
}

func TestNewPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p := string(NewPassword())
		if len(p) != 32 || seen[p] {
			t.Fatalf("bad or repeated password (len %d)", len(p))
		}
		seen[p] = true
		if !strings.ContainsAny(p[:1], "ABCDEFGHIJKLMNOPQRSTUVWXYZ") || !strings.ContainsAny(p[1:2], "abcdefghijklmnopqrstuvwxyz") ||
			!strings.ContainsAny(p[2:3], "0123456789") || p[3] != '-' {
			t.Fatalf("character classes missing")
		}
	}
}

// policyConn is a connector with a password policy (as Zimbra enforces for
// delegated admins): it accepts only passwords the policy allows.
type policyConn struct {
	recorder
	check func(pw []byte) error
}

func (c *policyConn) CheckPassword(_ context.Context, _ string, pw []byte) error { return c.check(pw) }

// TestPasswordSatisfiesEveryPolicy: the scrambled password, one for every
// system, satisfies each system's policy; when no shape can, the step fails
// without setting a password anywhere.
func TestPasswordSatisfiesEveryPolicy(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	countIn := func(pw []byte, set string) int {
		n := 0
		for _, c := range pw {
			if strings.IndexByte(set, c) >= 0 {
				n++
			}
		}
		return n
	}
	strict := &policyConn{recorder: recorder{name: "zimbra", steps: []Step{StepScramblePassword}}, check: func(pw []byte) error {
		// zimbraPasswordMinPunctuationChars 3, MinUpperCaseChars 2, MaxLength 40
		if countIn(pw, "!#%+-.:=?@_") < 3 || countIn(pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") < 2 || len(pw) > 40 {
			return errors.New("invalid password: not enough punctuation characters")
		}
		return nil
	}}
	plain := &recorder{name: "ldap", steps: []Step{StepScramblePassword}}
	r := &Runner{Incidents: st, Connectors: []Connector{strict, plain}, Attempts: 1, Backoff: time.Millisecond}
	pb := &Playbook{Name: "p", Severity: store.SeverityCritical, Steps: []Step{StepScramblePassword}, ConfirmFrom: 1}
	inc, _, _ := st.OpenIncident(ctx, "u@example.edu", pb.Severity, pb.Name, store.Evidence{Reason: "password-leak"})
	inc, err := r.Run(ctx, inc, pb, "system")
	if err != nil {
		t.Fatal(err)
	}
	if inc.Step("scramble-password").Status != store.StepDone || strict.check(strict.pw) != nil || string(strict.pw) != string(plain.pw) {
		t.Fatalf("step %+v; zimbra got a password its policy refuses or another one than ldap", inc.Step("scramble-password"))
	}
	impossible := &policyConn{recorder: recorder{name: "zimbra", steps: []Step{StepScramblePassword}}, check: func([]byte) error {
		return errors.New("invalid password: too short")
	}}
	plain2 := &recorder{name: "ldap", steps: []Step{StepScramblePassword}}
	r = &Runner{Incidents: st, Connectors: []Connector{impossible, plain2}, Attempts: 1}
	inc2, _, _ := st.OpenIncident(ctx, "v@example.edu", pb.Severity, pb.Name, store.Evidence{Reason: "password-leak"})
	inc2, _ = r.Run(ctx, inc2, pb, "system")
	if s := inc2.Step("scramble-password"); s.Status != store.StepFailed || !strings.Contains(s.Detail, "too short") || len(impossible.calls)+len(plain2.calls) != 0 {
		t.Fatalf("impossible policy: %+v, calls %v %v", s, impossible.calls, plain2.calls)
	}
	for _, shape := range passwordShapes {
		pw := newShapedPassword(shape.length, shape.each, shape.punct)
		if len(pw) != shape.length || countIn(pw, "0123456789") < shape.each || countIn(pw, shape.punct) < min(shape.each, len(shape.punct)*shape.length) {
			t.Errorf("shape %+v gave %d characters", shape, len(pw))
		}
	}
}

// TestAfterRun: the runner says after each run which steps it carried out
// (the daemon tells the help desk what the confirmed steps did), and
// nothing after a run that carried out none.
func TestAfterRun(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	self := &recorder{name: "mailbrake", steps: []Step{StepRestrictSending, StepNotify, StepLockLogin}}
	var runs [][]Step
	r := &Runner{Incidents: st, Connectors: []Connector{self}, Backoff: time.Millisecond,
		AfterRun: func(_ context.Context, inc *store.Incident, _ *Playbook, ran []Step) { runs = append(runs, ran) }}
	pb := &Playbook{Name: "phish-reply", Severity: store.SeverityHigh, Steps: []Step{StepNotify, StepLockLogin}, ConfirmFrom: 1}
	inc, _, err := st.OpenIncident(ctx, "u@example.edu", pb.Severity, pb.Name, store.Evidence{Reason: "reply-to-phisher"})
	if err != nil {
		t.Fatal(err)
	}
	if inc, err = r.Run(ctx, inc, pb, "system"); err != nil {
		t.Fatal(err)
	}
	if inc, err = r.Run(ctx, inc, pb, "system"); err != nil { // nothing due
		t.Fatal(err)
	}
	if err := st.SetIncidentState(ctx, inc.ID, []store.IncidentState{store.IncidentOpen}, store.IncidentConfirmed, "admin", "yes", time.Now()); err != nil {
		t.Fatal(err)
	}
	inc, _ = st.GetIncident(ctx, inc.ID)
	if _, err = r.Run(ctx, inc, pb, "admin"); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(runs) != "[[notify] [lock-login]]" {
		t.Fatalf("AfterRun calls %v, want [[notify] [lock-login]]", runs)
	}
}
