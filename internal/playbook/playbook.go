package playbook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// Step names a playbook step. The values are stable: they appear in the
// configuration, the incident record, the API, the UI and the audit log.
type Step string

const (
	StepRestrictSending     Step = "restrict-sending"      // hold every outbound message of the account
	StepHoldQueuedMail      Step = "hold-queued-mail"      // put the account's queued mail on hold
	StepLockLogin           Step = "lock-login"            // no login until the password was changed
	StepScramblePassword    Step = "scramble-password"     // a random password nobody knows
	StepEndSessions         Step = "end-sessions"          // end live web, IMAP and SOAP sessions
	StepForcePasswordChange Step = "force-password-change" // the user must set a new password at next login
	StepCheckPersistence    Step = "check-persistence"     // report forwarding, filters and identities the attacker may have left
	StepNotify              Step = "notify"                // tell the help desk and admins
)

// Steps lists every step in the order a full containment runs them.
var Steps = []Step{StepRestrictSending, StepHoldQueuedMail, StepLockLogin, StepScramblePassword, StepEndSessions,
	StepForcePasswordChange, StepCheckPersistence, StepNotify}

// Restricts reports whether step s acts on the account — stops its mail,
// its login or its password — rather than only telling or looking.
func Restricts(s Step) bool {
	return s != StepNotify && s != StepCheckPersistence
}

// Valid reports whether s is a known step.
func (s Step) Valid() bool { return slices.Contains(Steps, s) }

// Playbook is an ordered list of steps for incidents opened by its
// triggers.
type Playbook struct {
	Name     string
	Triggers []string // finding reasons that open an incident with this playbook
	Severity store.Severity
	Steps    []Step
	// ConfirmFrom is the index of the first step that waits for an admin's
	// confirmation; len(Steps) when every step runs at once.
	ConfirmFrom int
}

// Connector carries out steps against one system.
type Connector interface {
	// Name identifies the connector in step details and logs.
	Name() string
	// Supports reports whether the connector carries out step.
	Supports(step Step) bool
	// Do carries out step for the incident's account. It must be
	// idempotent: a step is retried after a failure and re-run when an
	// admin retries the playbook. password is the new password for
	// scramble-password and nil otherwise; it must not be kept. The
	// returned detail is recorded: it must hold no secret.
	Do(ctx context.Context, step Step, inc *store.Incident, password []byte) (detail string, err error)
}

// Prober is a Connector that can show, without changing anything, that
// its system answers with mailbrake's credentials (health in /readyz).
type Prober interface {
	Probe(ctx context.Context) error
}

// ErrPermanent wraps a connector error that retrying cannot fix (no such
// account, bad credentials): the step fails without further attempts.
var ErrPermanent = errors.New("permanent failure")

// Runner runs playbooks.
type Runner struct {
	Incidents  store.Incidents
	Connectors []Connector
	// Attempts per connector and step (default 3), waiting Backoff,
	// doubled after each failure (default 1 s).
	Attempts int
	Backoff  time.Duration
	DryRun   bool
	// Audit, when set, records each step outcome (store.AuditStep).
	Audit func(ctx context.Context, actor string, action store.AuditAction, target, detail string)
	// OnStep, when set, is told of every step outcome (metrics).
	OnStep func(step Step, status store.StepStatus)
	Log    *slog.Logger
	Now    func() time.Time
	// AfterRun, when set, is told after each run that carried out steps:
	// the incident as stored then, and the steps this run carried out.
	AfterRun func(ctx context.Context, inc *store.Incident, pb *Playbook, ran []Step)
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Due returns the steps of pb that should run for inc now: those before
// the confirmation point, or all when the incident is confirmed, minus the
// steps already done (or dry-run).
func Due(pb *Playbook, inc *store.Incident) (run, wait []Step) {
	confirmed := inc.State == store.IncidentConfirmed || inc.State == store.IncidentContained
	for i, s := range pb.Steps {
		if rec := inc.Step(string(s)); rec != nil && (rec.Status == store.StepDone || rec.Status == store.StepDryRun || rec.Status == store.StepSkipped) {
			continue
		}
		if i >= pb.ConfirmFrom && !confirmed {
			wait = append(wait, s)
			continue
		}
		run = append(run, s)
	}
	return run, wait
}

// Run carries out the due steps of pb for inc, in order, records each
// outcome (and the steps waiting for confirmation as pending), and returns
// the incident as stored afterwards. A failed step does not stop the
// following ones: a lock that failed on one system must not keep the
// password from being scrambled on another. It returns an error only when
// the store fails.
func (r *Runner) Run(ctx context.Context, inc *store.Incident, pb *Playbook, actor string) (*store.Incident, error) {
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	run, wait := Due(pb, inc)
	for _, s := range wait {
		if rec := inc.Step(string(s)); rec != nil && rec.Status == store.StepPending {
			continue
		}
		if err := r.Incidents.PutStep(ctx, inc.ID, store.StepRecord{Name: string(s), Status: store.StepPending, Detail: "waits for an admin's confirmation", At: r.now()}); err != nil {
			return nil, err
		}
	}
	for _, s := range run {
		rec := r.runStep(ctx, s, inc, log)
		if err := r.Incidents.PutStep(ctx, inc.ID, rec); err != nil {
			return nil, err
		}
		if r.Audit != nil {
			r.Audit(ctx, actor, store.AuditStep, fmt.Sprintf("incident:%d", inc.ID), fmt.Sprintf("%s %s: %s", s, rec.Status, rec.Detail))
		}
		if r.OnStep != nil {
			r.OnStep(s, rec.Status)
		}
		log.Info("playbook step", "incident", inc.ID, "account", inc.Account, "playbook", pb.Name, "step", s, "status", rec.Status, "attempts", rec.Attempts, "detail", rec.Detail)
		// Later steps (notify) see the outcome of earlier ones.
		if cur, err := r.Incidents.GetIncident(ctx, inc.ID); err == nil {
			inc = cur
		}
	}
	final, err := r.Incidents.GetIncident(ctx, inc.ID)
	if err == nil && len(run) > 0 && r.AfterRun != nil {
		r.AfterRun(ctx, final, pb, run)
	}
	return final, err
}

func (r *Runner) runStep(ctx context.Context, s Step, inc *store.Incident, log *slog.Logger) store.StepRecord {
	rec := store.StepRecord{Name: string(s), At: r.now()}
	var conns []Connector
	for _, c := range r.Connectors {
		if c.Supports(s) {
			conns = append(conns, c)
		}
	}
	if len(conns) == 0 {
		rec.Status, rec.Detail = store.StepSkipped, "no connector carries out this step"
		return rec
	}
	if r.DryRun {
		names := make([]string, len(conns))
		for i, c := range conns {
			names[i] = c.Name()
		}
		rec.Status, rec.Detail = store.StepDryRun, "would run on "+strings.Join(names, ", ")
		return rec
	}
	var password []byte
	if s == StepScramblePassword {
		var err error
		if password, err = r.passwordFor(ctx, inc.Account, conns); err != nil {
			rec.Status, rec.Detail = store.StepFailed, err.Error()
			return rec
		}
		defer clear(password)
	}
	attempts := r.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	backoff := r.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	var details []string
	failed := false
	for _, c := range conns {
		var (
			detail string
			err    error
			n      int
		)
		wait := backoff
		for n = 1; n <= attempts; n++ {
			detail, err = c.Do(ctx, s, inc, password)
			if err == nil || errors.Is(err, ErrPermanent) || ctx.Err() != nil || n == attempts {
				break
			}
			log.Warn("playbook step failed; retrying", "incident", inc.ID, "step", s, "connector", c.Name(), "attempt", n, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait *= 2
		}
		rec.Attempts = max(rec.Attempts, min(n, attempts))
		if err != nil {
			failed = true
			details = append(details, c.Name()+": "+err.Error())
		} else if detail != "" {
			details = append(details, c.Name()+": "+detail)
		} else {
			details = append(details, c.Name()+": ok")
		}
	}
	rec.Status = store.StepDone
	if failed {
		rec.Status = store.StepFailed
	}
	rec.Detail = strings.Join(details, "; ")
	rec.At = r.now()
	return rec
}

// Finished reports whether every step of pb is done (or was skipped or
// dry-run) for inc.
func Finished(pb *Playbook, inc *store.Incident) bool {
	for _, s := range pb.Steps {
		rec := inc.Step(string(s))
		if rec == nil || (rec.Status != store.StepDone && rec.Status != store.StepSkipped && rec.Status != store.StepDryRun) {
			return false
		}
	}
	return true
}

// PasswordChecker is a Connector whose system enforces a password policy
// on the passwords it is given (Zimbra's SetPassword does for delegated
// admins, and a refused password is not retried). The runner generates one
// password for every system that satisfies each checker.
type PasswordChecker interface {
	// CheckPassword returns nil when pw satisfies the account's password
	// policy on this system, else why not (without the password).
	CheckPassword(ctx context.Context, account string, pw []byte) error
}

// passwordShapes are the shapes of password tried in turn until one
// satisfies every system's policy: length, the least number of characters
// of each class (upper, lower, digit, punctuation) and the punctuation
// used. Each gives well over 128 bits of entropy.
var passwordShapes = []struct {
	length, each int
	punct        string
}{
	{32, 1, "-_"},
	{32, 4, "!#%+-.:=?@_"},
	{24, 3, "!#%+-.:=?@_"},
	{48, 10, "!#$%&*+-.:;=?@^_~"},
	{64, 8, "-_"},
	{28, 4, ""},
}

// passwordFor returns a new random password that every PasswordChecker
// among conns accepts, or an error saying which policy refused all shapes.
func (r *Runner) passwordFor(ctx context.Context, account string, conns []Connector) ([]byte, error) {
	var checkers []Connector
	for _, c := range conns {
		if _, ok := c.(PasswordChecker); ok {
			checkers = append(checkers, c)
		}
	}
	if len(checkers) == 0 {
		return NewPassword(), nil
	}
	var last error
	for _, shape := range passwordShapes {
		pw := newShapedPassword(shape.length, shape.each, shape.punct)
		ok := true
		for _, c := range checkers {
			if err := c.(PasswordChecker).CheckPassword(ctx, account, pw); err != nil {
				last, ok = fmt.Errorf("%s: %w", c.Name(), err), false
				break
			}
		}
		if ok {
			return pw, nil
		}
		clear(pw)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("no generated password satisfies the password policy (%v); the password was not changed anywhere", last)
}

// newShapedPassword returns length random characters from upper- and
// lower-case letters, digits and punct, with at least each of every class
// (punctuation only when punct is not empty).
func newShapedPassword(length, each int, punct string) []byte {
	classes := []string{"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "0123456789"}
	if punct != "" {
		classes = append(classes, punct)
	}
	all := strings.Join(classes, "")
	pick := func(set string) byte {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(set)))) // crypto/rand never fails
		return set[n.Int64()]
	}
	out := make([]byte, 0, length)
	for _, c := range classes {
		for range each {
			out = append(out, pick(c))
		}
	}
	for len(out) < length {
		out = append(out, pick(all))
	}
	// Shuffle (Fisher–Yates) so the classes are not in fixed places.
	for i := len(out) - 1; i > 0; i-- {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		j := int(n.Int64())
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// NewPassword returns a random password of 24 bytes of entropy, encoded
// as 32 URL-safe characters (letters, digits, - and _), which every
// directory's password policy of length and classes accepts in practice.
func NewPassword() []byte {
	var b [24]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	out := make([]byte, base64.RawURLEncoding.EncodedLen(len(b)))
	base64.RawURLEncoding.Encode(out, b[:])
	clear(b[:])
	// Password policies often want a digit, an upper- and a lower-case
	// letter and a symbol: fix the first four characters' classes.
	out[0] = 'A' + out[0]%26
	out[1] = 'a' + out[1]%26
	out[2] = '0' + out[2]%10
	out[3] = '-'
	return out
}
