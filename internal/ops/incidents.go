package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
)

// ReasonMarkedSpam is the evidence reason of a held message an admin
// marked as spam.
const ReasonMarkedSpam = "marked-spam"

// PasswordChangeChecker reports when an account's password last changed
// (Zimbra zimbraPasswordModifiedTime, LDAP pwdChangedTime).
type PasswordChangeChecker interface {
	Name() string
	PasswordChangedAt(ctx context.Context, account string) (time.Time, error)
}

// Unlocker lifts a login lock on one system.
type Unlocker interface {
	Name() string
	Unlock(ctx context.Context, account string) error
}

// Response is account response: playbooks by trigger and what runs them.
type Response struct {
	Incidents store.Incidents
	Runner    *playbook.Runner
	// Playbooks are set when Response is built; SetPlaybooks changes
	// them while it runs (a reload).
	Playbooks []*playbook.Playbook
	MinLock   time.Duration
	Checkers  []PasswordChangeChecker
	Unlockers []Unlocker

	// Update, when set, is told that an incident was resolved or
	// dismissed (change: api.IncidentResolve or IncidentDismiss), so that
	// those its notify step told hear the end of it. It must not block.
	Update func(ctx context.Context, inc *store.Incident, change string)

	pbMu    sync.RWMutex
	retired map[string]*playbook.Playbook // replaced by a reload, by name
}

// SetPlaybooks makes pbs the playbooks new findings open incidents with.
// An incident opened before keeps the playbook it was opened with, found
// by name, even when the reload removed or changed it.
func (r *Response) SetPlaybooks(pbs []*playbook.Playbook) {
	r.pbMu.Lock()
	defer r.pbMu.Unlock()
	if r.retired == nil {
		r.retired = map[string]*playbook.Playbook{}
	}
	for _, pb := range r.Playbooks {
		r.retired[pb.Name] = pb
	}
	r.Playbooks = pbs
}

func (r *Response) playbooks() []*playbook.Playbook {
	r.pbMu.RLock()
	defer r.pbMu.RUnlock()
	return r.Playbooks
}

// Finding is one finding reported for incidents.
type Finding struct {
	Reason  string
	Detail  string
	HoldID  int64
	QueueID string
}

func (r *Response) byTrigger(reason string) *playbook.Playbook {
	for _, pb := range r.playbooks() {
		if slices.Contains(pb.Triggers, reason) {
			return pb
		}
	}
	return nil
}

// byName finds a current playbook, or one a reload replaced (an incident
// opened under it runs it to the end).
func (r *Response) byName(name string) *playbook.Playbook {
	for _, pb := range r.playbooks() {
		if pb.Name == name {
			return pb
		}
	}
	r.pbMu.RLock()
	defer r.pbMu.RUnlock()
	return r.retired[name]
}

func (s *Service) response() (*Response, error) {
	if s.Response == nil {
		return nil, fmt.Errorf("%w: account response is not configured", api.ErrBadRequest)
	}
	return s.Response, nil
}

// fullIncident is what ReportMany remembers of an incident whose evidence
// is full.
type fullIncident struct {
	id       int64
	severity store.Severity
	reasons  []string
}

// forgetFull drops what ReportMany remembers of the account's incident;
// called when the incident stops being active.
func (s *Service) forgetFull(account string) {
	s.incMu.Lock()
	delete(s.full, account)
	s.incMu.Unlock()
}

// Report is one account's findings, for ReportMany.
type Report struct {
	Account  string
	Findings []Finding
}

// ReportFindings opens (or adds to) the account's incident for every
// finding whose reason triggers a playbook, and runs the playbook's due
// steps. The daemon calls it off the request path.
func (s *Service) ReportFindings(ctx context.Context, account string, fs []Finding) error {
	return s.ReportMany(ctx, []Report{{Account: account, Findings: fs}})
}

// ReportMany is ReportFindings for many accounts: the findings are written
// in one transaction, their audit lines in a second, and each incident's
// playbook is scheduled once.
func (s *Service) ReportMany(ctx context.Context, reports []Report) error {
	r := s.Response
	if r == nil {
		return nil
	}
	var fs []store.IncidentFinding
	var reasons []Finding
	s.incMu.Lock()
	for _, rep := range reports {
		if rep.Account == "" {
			continue
		}
		full, isFull := s.full[rep.Account]
		for _, f := range rep.Findings {
			pb := r.byTrigger(f.Reason)
			if pb == nil {
				continue
			}
			if isFull && slices.Contains(full.reasons, f.Reason) && pb.Severity.Rank() <= full.severity.Rank() {
				continue // nothing to add: the incident's evidence is full
			}
			fs = append(fs, store.IncidentFinding{Account: rep.Account, Severity: pb.Severity, Playbook: pb.Name,
				Evidence: store.Evidence{Time: s.now(), Reason: f.Reason, Detail: f.Detail, HoldID: f.HoldID, QueueID: f.QueueID, By: "system"}})
			reasons = append(reasons, f)
		}
	}
	if len(fs) == 0 {
		s.incMu.Unlock()
		return nil
	}
	res, err := r.Incidents.OpenIncidents(ctx, fs)
	if err != nil {
		s.incMu.Unlock()
		return err
	}
	for _, o := range res {
		if !o.Kept && !o.Duplicate {
			if s.full == nil {
				s.full = map[string]fullIncident{}
			}
			s.full[o.Incident.Account] = fullIncident{id: o.Incident.ID, severity: o.Incident.Severity, reasons: o.Incident.Reasons}
		}
	}
	s.incMu.Unlock()
	var (
		audits  []store.AuditEntry
		touched []int64
		changed = map[int64]bool{} // opened or escalated: its playbook runs now
		seen    = map[int64]bool{}
	)
	for i, o := range res {
		if o.Duplicate {
			continue // the other protocol path already reported this message
		}
		in, f := o.Incident, reasons[i]
		target := fmt.Sprintf("incident:%d", in.ID)
		switch {
		case o.Created:
			s.opened(ctx, in.Account, in.Severity)
			audits = append(audits, store.AuditEntry{Time: s.now(), Actor: "system", Action: store.AuditIncidentOpen, Target: target,
				Detail: fmt.Sprintf("account %s, %s, playbook %s: %s", in.Account, in.Severity, in.Playbook, f.Reason)})
			s.Log.Warn("incident opened", "incident", in.ID, "account", in.Account, "severity", in.Severity, "playbook", in.Playbook, "reason", f.Reason)
		case o.Kept:
			// Beyond MaxEvidence the holds' own audit lines remain the
			// record; the incident counts the reason.
			audits = append(audits, store.AuditEntry{Time: s.now(), Actor: "system", Action: store.AuditIncidentEvidence, Target: target, Detail: f.Reason + ": " + f.Detail})
		}
		if o.Created || o.Escalated {
			changed[in.ID] = true
		}
		if !seen[in.ID] {
			seen[in.ID] = true
			touched = append(touched, in.ID)
		}
	}
	if err := s.Audit.AppendAudits(ctx, audits); err != nil {
		s.Log.Error("writing incident audit entries failed", "entries", len(audits), "err", err)
	}
	for _, id := range touched {
		if changed[id] {
			s.schedule(id, "system")
		} else {
			s.scheduleForEvidence(id)
		}
	}
	return nil
}

// runPlaybook runs the due steps of an incident's playbook and marks it
// contained when all are done.
func (s *Service) runPlaybook(ctx context.Context, id int64, actor string) (*store.Incident, error) {
	r := s.Response
	s.auditOnce.Do(func() {
		if r.Runner.Audit == nil {
			r.Runner.Audit = s.audit
		}
		if r.Runner.OnStep == nil && s.Events != nil {
			r.Runner.OnStep = func(step playbook.Step, status store.StepStatus) { s.Events.Step(string(step), status) }
		}
	})
	inc, err := r.Incidents.GetIncident(ctx, id)
	if err != nil {
		return nil, err
	}
	pb := r.byName(inc.Playbook)
	if pb == nil {
		return inc, nil // an admin-opened incident without a playbook, or one removed from the configuration
	}
	if !inc.State.Active() {
		return inc, nil
	}
	inc, err = r.Runner.Run(ctx, inc, pb, actor)
	if err != nil {
		return nil, err
	}
	if playbook.Finished(pb, inc) && (inc.State == store.IncidentOpen || inc.State == store.IncidentConfirmed) {
		if err := r.Incidents.SetIncidentState(ctx, inc.ID, []store.IncidentState{store.IncidentOpen, store.IncidentConfirmed},
			store.IncidentContained, actor, "", s.now()); err == nil {
			s.audit(ctx, actor, store.AuditIncidentState, fmt.Sprintf("incident:%d", inc.ID), fmt.Sprintf("%s -> contained: every step of %s done", inc.State, pb.Name))
		}
		return r.Incidents.GetIncident(ctx, inc.ID)
	}
	return inc, nil
}

// ListIncidents implements api.Methods.
func (s *Service) ListIncidents(ctx context.Context, req api.ListIncidentsRequest) ([]store.Incident, error) {
	r, err := s.response()
	if err != nil {
		return nil, err
	}
	f := store.IncidentFilter{Account: store.AccountKey(req.Account), Limit: req.Limit, Offset: req.Offset}
	switch req.State {
	case "", "all":
	case "active":
		f.Active = true
	default:
		f.State = store.IncidentState(req.State)
		if !f.State.Valid() {
			return nil, fmt.Errorf("%w: state must be open, confirmed, contained, resolved, dismissed, active or all", api.ErrBadRequest)
		}
	}
	// Which runs go on is read before the incidents: a run that ends
	// while they are read may not show in them, and is reported as
	// running so that the caller looks again (see GetIncident).
	before := s.runningNow()
	list, err := r.Incidents.ListIncidents(ctx, f)
	for i := range list {
		list[i].Running = before[list[i].ID] || s.running(list[i].ID)
	}
	return list, err
}

// GetIncident implements api.Methods.
func (s *Service) GetIncident(ctx context.Context, id int64) (*store.Incident, error) {
	r, err := s.response()
	if err != nil {
		return nil, err
	}
	// Running is asked before the incident is read: a run that ends
	// during the read may have written its steps after it, so the
	// incident is reported as running and the caller reads it again.
	// (Asked only after, a run finished meanwhile would leave an old
	// incident marked as done.)
	running := s.running(id)
	in, err := r.Incidents.GetIncident(ctx, id)
	if err == nil {
		in.Running = running || s.running(id)
	}
	return in, err
}

// OpenIncident implements api.Methods: an admin opens an incident (or
// adds to the account's active one). An admin's word is confirmation, so
// every step of the playbook runs.
func (s *Service) OpenIncident(ctx context.Context, req api.OpenIncidentRequest) (*store.Incident, error) {
	r, err := s.response()
	if err != nil {
		return nil, err
	}
	account := store.AccountKey(req.Account)
	if account == "" || strings.ContainsAny(account, " \t\r\n") {
		return nil, fmt.Errorf("%w: invalid account name", api.ErrBadRequest)
	}
	if strings.TrimSpace(req.Note) == "" {
		return nil, fmt.Errorf("%w: a note saying why is required", api.ErrBadRequest)
	}
	var pb *playbook.Playbook
	if req.Playbook != "" {
		if pb = r.byName(req.Playbook); pb == nil {
			return nil, fmt.Errorf("%w: no playbook %q", api.ErrBadRequest, req.Playbook)
		}
	} else if pbs := r.playbooks(); len(pbs) > 0 {
		pb = pbs[0]
	}
	sev, name := store.SeverityHigh, ""
	if pb != nil {
		sev, name = pb.Severity, pb.Name
	}
	if req.Severity != "" {
		if sev = store.Severity(req.Severity); !sev.Valid() {
			return nil, fmt.Errorf("%w: severity must be low, medium, high or critical", api.ErrBadRequest)
		}
	}
	actor := api.ActorFrom(ctx).Name
	s.incMu.Lock()
	inc, res, err := r.Incidents.OpenIncident(ctx, account, sev, name, store.Evidence{Time: s.now(), Reason: "opened-by-admin", Detail: req.Note, By: actor})
	s.incMu.Unlock()
	if err != nil {
		return nil, err
	}
	if res.Created {
		s.opened(ctx, account, sev)
		s.audit(ctx, actor, store.AuditIncidentOpen, fmt.Sprintf("incident:%d", inc.ID), fmt.Sprintf("account %s, %s, playbook %s: %s", account, sev, name, req.Note))
	}
	return s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: inc.ID, Change: api.IncidentConfirm, Note: req.Note})
}

// MarkHoldSpam implements api.Methods: an admin verified that a held
// message is spam. The message is deleted from the hold queue and the
// sender's incident is opened and confirmed.
func (s *Service) MarkHoldSpam(ctx context.Context, id int64, note string) (*store.Incident, error) {
	r, err := s.response()
	if err != nil {
		return nil, err
	}
	h, err := s.Store.GetHold(ctx, id)
	if err != nil {
		return nil, err
	}
	if h.Account == "" || h.Account == store.Unauthenticated {
		return nil, fmt.Errorf("%w: hold %d names no sending account", api.ErrBadRequest, id)
	}
	actor := api.ActorFrom(ctx).Name
	if h.State == store.HoldHeld {
		if _, err := s.DeleteHold(ctx, id); err != nil {
			return nil, fmt.Errorf("deleting hold %d: %w", id, err)
		}
	}
	if s.MarkedSpam != nil {
		s.MarkedSpam(h)
	}
	pb := r.byTrigger(ReasonMarkedSpam)
	sev, name := store.SeverityHigh, ""
	if pb != nil {
		sev, name = pb.Severity, pb.Name
	}
	detail := fmt.Sprintf("hold %d (%s) marked as spam", id, strings.Join(h.Reasons, ","))
	if note != "" {
		detail += ": " + note
	}
	s.incMu.Lock()
	inc, res, err := r.Incidents.OpenIncident(ctx, h.Account, sev, name, store.Evidence{Time: s.now(), Reason: ReasonMarkedSpam, Detail: detail, HoldID: id, QueueID: h.QueueID, By: actor})
	s.incMu.Unlock()
	if err != nil {
		return nil, err
	}
	if res.Created {
		s.opened(ctx, h.Account, sev)
	}
	s.audit(ctx, actor, store.AuditHoldSpam, fmt.Sprintf("hold:%d", id), fmt.Sprintf("incident %d on %s", inc.ID, h.Account))
	return s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: inc.ID, Change: api.IncidentConfirm, Note: detail})
}

// ChangeIncident implements api.Methods.
func (s *Service) ChangeIncident(ctx context.Context, req api.ChangeIncidentRequest) (*store.Incident, error) {
	r, err := s.response()
	if err != nil {
		return nil, err
	}
	actor := api.ActorFrom(ctx).Name
	inc, err := r.Incidents.GetIncident(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	target := fmt.Sprintf("incident:%d", inc.ID)
	active := []store.IncidentState{store.IncidentOpen, store.IncidentConfirmed, store.IncidentContained}
	switch req.Change {
	case api.IncidentConfirm:
		// Confirming a confirmed or contained incident retries its failed steps.
		if inc.State == store.IncidentOpen {
			if err := r.Incidents.SetIncidentState(ctx, inc.ID, []store.IncidentState{store.IncidentOpen}, store.IncidentConfirmed, actor, req.Note, s.now()); err != nil {
				return nil, err
			}
			s.audit(ctx, actor, store.AuditIncidentState, target, "open -> confirmed: "+req.Note)
		} else if !inc.State.Active() {
			return nil, fmt.Errorf("incident %d is %s: %w", inc.ID, inc.State, api.ErrConflict)
		}
		// The steps run in the background; the answer says so
		// (Running) and the caller follows their progress.
		s.schedule(inc.ID, actor)
		return s.GetIncident(ctx, inc.ID)
	case api.IncidentDismiss:
		if strings.TrimSpace(req.Note) == "" {
			return nil, fmt.Errorf("%w: a note saying why it is a false alarm is required", api.ErrBadRequest)
		}
		if err := r.Incidents.SetIncidentState(ctx, inc.ID, active, store.IncidentDismissed, actor, req.Note, s.now()); err != nil {
			return nil, err
		}
		s.forgetFull(inc.Account)
		s.audit(ctx, actor, store.AuditIncidentState, target, fmt.Sprintf("%s -> dismissed: %s", inc.State, req.Note))
		s.learnDismissed(ctx, inc)
		// A false alarm: lift what mailbrake set on the account.
		if a, err := s.Accounts.GetAccount(ctx, inc.Account); err == nil && a.State.Rank() >= store.AccountRestricted.Rank() {
			if a.State == store.AccountLocked {
				s.unlockEverywhere(ctx, inc.Account)
			}
			if _, err := s.changeState(ctx, inc.Account, store.AccountNormal, actor, fmt.Sprintf("incident %d dismissed: %s", inc.ID, req.Note), false); err != nil {
				return nil, err
			}
		}
	case api.IncidentResolve:
		if a, err := s.Accounts.GetAccount(ctx, inc.Account); err == nil && a.State == store.AccountLocked {
			return nil, fmt.Errorf("%w: %s is still locked; unlock it (mailbrake account unlock) once the user has changed the password", api.ErrConflict, inc.Account)
		}
		if err := r.Incidents.SetIncidentState(ctx, inc.ID, active, store.IncidentResolved, actor, req.Note, s.now()); err != nil {
			return nil, err
		}
		s.forgetFull(inc.Account)
		s.audit(ctx, actor, store.AuditIncidentState, target, fmt.Sprintf("%s -> resolved: %s", inc.State, req.Note))
	default:
		return nil, fmt.Errorf("%w: change must be confirm, dismiss or resolve", api.ErrBadRequest)
	}
	after, err := r.Incidents.GetIncident(ctx, inc.ID)
	if err == nil && r.Update != nil {
		r.Update(context.WithoutCancel(ctx), after, req.Change)
	}
	return after, err
}

// UnlockAccount implements api.Methods. A lock lasts at least MinLock and
// ends only when the password has changed since the account was locked
// and scrambled, as a directory reports it; an admin may override either
// with a reason.
func (s *Service) UnlockAccount(ctx context.Context, req api.UnlockAccountRequest) (*store.Account, error) {
	account := store.AccountKey(req.Account)
	actor := api.ActorFrom(ctx).Name
	a, err := s.Accounts.GetAccount(ctx, account)
	if errors.Is(err, store.ErrNotFound) || (err == nil && a.State != store.AccountLocked) {
		return nil, fmt.Errorf("%w: %s is not locked", api.ErrConflict, account)
	}
	if err != nil {
		return nil, err
	}
	if req.Override {
		if strings.TrimSpace(req.Reason) == "" {
			return nil, fmt.Errorf("%w: an override needs a reason", api.ErrBadRequest)
		}
	} else {
		if err := s.unlockAllowed(ctx, a); err != nil {
			return nil, err
		}
	}
	s.unlockEverywhere(ctx, account)
	why := "password changed since the lock"
	if req.Override {
		why = "override: " + req.Reason
	} else if req.Reason != "" {
		why += ": " + req.Reason
	}
	s.audit(ctx, actor, store.AuditAccountUnlock, "account:"+account, why)
	return s.changeState(ctx, account, store.AccountNormal, actor, "unlocked: "+why, false)
}

func (s *Service) unlockAllowed(ctx context.Context, a *store.Account) error {
	var r *Response
	if r = s.Response; r == nil {
		return fmt.Errorf("%w: no directory can tell whether the password changed; use --override with a reason", api.ErrConflict)
	}
	if held := s.now().Sub(a.StateAt); held < r.MinLock {
		return fmt.Errorf("%w: %s was locked %s ago; a lock lasts at least %s (response.min_lock), or use --override with a reason",
			api.ErrConflict, a.Name, held.Round(time.Second), r.MinLock)
	}
	if len(r.Checkers) == 0 {
		return fmt.Errorf("%w: no configured system reports password changes; use --override with a reason once the user has a new password", api.ErrConflict)
	}
	// The scramble changed the password after the lock: only a change
	// after the scramble counts.
	since := a.StateAt
	if inc, err := r.Incidents.ActiveIncident(ctx, a.Name); err == nil {
		if st := inc.Step(string(playbook.StepScramblePassword)); st != nil && st.Status == store.StepDone && st.At.After(since) {
			since = st.At
		}
	}
	var notes []string
	for _, c := range r.Checkers {
		t, err := c.PasswordChangedAt(ctx, a.Name)
		if err != nil {
			notes = append(notes, c.Name()+": "+err.Error())
			continue
		}
		if t.After(since) {
			return nil
		}
		if t.IsZero() {
			notes = append(notes, c.Name()+": no password change recorded")
		} else {
			notes = append(notes, fmt.Sprintf("%s: last change %s", c.Name(), t.UTC().Format(time.RFC3339)))
		}
	}
	return fmt.Errorf("%w: the password of %s has not changed since it was locked (%s): %s. Have the user reset it, or use --override with a reason",
		api.ErrConflict, a.Name, since.UTC().Format(time.RFC3339), strings.Join(notes, "; "))
}

func (s *Service) unlockEverywhere(ctx context.Context, account string) {
	if s.Response == nil {
		return
	}
	// Every system at once: one that is slow (a Zimbra timing out) holds
	// up the admin's request by its own time only.
	us := s.Response.Unlockers
	errs := make([]error, len(us))
	var wg sync.WaitGroup
	for i, u := range us {
		wg.Go(func() { errs[i] = u.Unlock(ctx, account) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			s.Log.Warn("unlock failed", "account", account, "system", us[i].Name(), "err", err)
			s.audit(ctx, "system", store.AuditAccountUnlock, "account:"+account, us[i].Name()+": unlock failed: "+err.Error())
		}
	}
}

// Connector returns mailbrake's own playbook connector: restrict-sending
// and lock-login set the account's state (both hold every outbound
// message), hold-queued-mail puts its queued mail on hold.
func (s *Service) Connector() playbook.Connector { return selfConnector{s} }

type selfConnector struct{ s *Service }

func (selfConnector) Name() string { return "mailbrake" }

func (selfConnector) Supports(st playbook.Step) bool { return SelfSupports(st) }

// SelfSupports reports whether mailbrake itself carries out a playbook
// step (its own connector, whatever else is configured): restricting the
// account's sending, holding its queued mail, and locking it in
// mailbrake (its mail refused; logging in is the directory's).
func SelfSupports(st playbook.Step) bool {
	return st == playbook.StepRestrictSending || st == playbook.StepHoldQueuedMail || st == playbook.StepLockLogin
}

func (c selfConnector) Do(ctx context.Context, st playbook.Step, inc *store.Incident, _ []byte) (string, error) {
	why := fmt.Sprintf("incident %d: %s", inc.ID, strings.Join(inc.Reasons, ","))
	switch st {
	case playbook.StepRestrictSending:
		a, err := c.s.changeState(ctx, inc.Account, store.AccountRestricted, "system", why, true)
		if err != nil {
			return "", err
		}
		return "account " + string(a.State), nil
	case playbook.StepLockLogin:
		a, err := c.s.changeState(ctx, inc.Account, store.AccountLocked, "system", why, true)
		if err != nil {
			return "", err
		}
		return "account " + string(a.State), nil
	case playbook.StepHoldQueuedMail:
		if c.s.Quarantine == nil {
			return "no Postfix queue managed", nil
		}
		held, err := c.s.Quarantine.HoldQueuedFrom(ctx, inc.Account)
		if err != nil {
			return "", err
		}
		if len(held) > 0 {
			c.s.audit(ctx, "system", store.AuditAccountHoldQueued, "account:"+inc.Account, "queue_ids="+strings.Join(held, ","))
		}
		// This node's queue: the other nodes hold the account's queued
		// mail when its restriction reaches them (ApplySharedState).
		where := ""
		if c.s.Node != "" {
			where = " on node " + c.s.Node
		}
		if len(held) == 0 {
			return "no queued message of the account" + where, nil
		}
		return fmt.Sprintf("%d queued messages put on hold%s", len(held), where), nil
	}
	return "", fmt.Errorf("%w: step %s not supported", playbook.ErrPermanent, st)
}

// opened tells IncidentOpened that account's incident was just opened,
// before any of its steps runs.
func (s *Service) opened(ctx context.Context, account string, sev store.Severity) {
	if s.Events != nil {
		s.Events.IncidentOpened(sev)
	}
	if s.IncidentOpened != nil {
		s.IncidentOpened(ctx, account)
	}
}

// dismissTrust is how long the runs of a dismissed incident's messages
// stay trusted for their account.
const dismissTrust = 30 * 24 * time.Hour

// learnDismissed tells the detectors of the held messages of an incident
// dismissed as a false alarm (at most the last 50).
func (s *Service) learnDismissed(ctx context.Context, inc *store.Incident) {
	if s.Reviewed == nil {
		return
	}
	seen := map[int64]bool{}
	for i := len(inc.Evidence) - 1; i >= 0 && len(seen) < 50; i-- {
		id := inc.Evidence[i].HoldID
		if id == 0 || seen[id] {
			continue
		}
		seen[id] = true
		if h, err := s.Store.GetHold(ctx, id); err == nil && h.Account == inc.Account {
			s.Reviewed(h, s.now().Add(dismissTrust))
		}
	}
}
