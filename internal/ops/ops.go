package ops

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/quarantine"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Service implements api.Methods.
type Service struct {
	syncs      syncState
	Quarantine *quarantine.Service
	Store      store.Quarantine
	Audit      store.Audit
	Accounts   store.Accounts
	Counters   store.Counters
	States     *States
	// Baseline returns an account's learned normal (nil when off).
	Baseline func(account string, at time.Time) (*api.AccountBaseline, bool)
	// Novelty returns an account's recent first-time and distinct
	// recipients (nil when off).
	Novelty func(account string, at time.Time) (*api.AccountNovelty, bool)
	Log     *slog.Logger
	Status0 api.Status
	Now     func() time.Time
	// Node is this node's name (cluster.node, else the host name): a
	// node without shared records lists itself by it.
	Node string
	// Records says whether the records store takes writes (Status's
	// read-only flag, Explain); nil: always.
	Records *Records

	// Response is account response; nil turns incidents off.
	Response *Response
	// Trust entries ("release and trust") and their in-memory view.
	TrustStore store.Trust
	Trusts     *Trusts
	// Volume counts site-wide outbound mail for the dashboard.
	Volume *Volume
	// IncidentOpened, when set, is called when an account's incident is
	// opened, before its playbook runs (the daemon notes the account's
	// recovery address then, to tell whether it changes during the
	// incident). It must return promptly.
	IncidentOpened func(ctx context.Context, account string)
	// RunContext is the context background playbook runs get; its
	// cancellation stops them at their next step. Nil: Background.
	RunContext context.Context
	// Released, when set, is told of every message released from hold:
	// with a content filter it comes back through smtpd, and must be
	// recognised as re-injected, not decided again.
	Released func(h *store.Hold)
	// Recovered, when set, is told of every hold the queue sync recorded
	// from Postfix's hold queue (the process that held it was killed
	// before writing it), to count it as the live hold would have been.
	Recovered func(h *store.Hold)
	// MarkedSpam, when set, is told of every held message an admin marked
	// as spam (the campaign detector then holds its text from any account).
	MarkedSpam func(h *store.Hold)
	// Reviewed, when set, is told of every held message an admin judged
	// legitimate (released and trusted, or held for an incident that was
	// dismissed): the detectors learn from it.
	Reviewed func(h *store.Hold, until time.Time)
	// Verdicts keeps each account's recent verdicts for account show.
	// Score returns an account's score arithmetic (the engine's); nil
	// when scoring is off.
	Score    func(ctx context.Context, account string, at time.Time) (*api.AccountScore, bool)
	Verdicts *Verdicts
	// ConfigText returns the effective configuration, secrets redacted.
	ConfigText func() string
	// Users and API tokens of the web UI and API; Sessions ends a user's
	// sessions when the user changes.
	Users  store.Users
	Tokens interface {
		CreateToken(ctx context.Context, name string, role auth.Role, ttl time.Duration, by string) (store.Token, string, error)
	}
	Sessions interface {
		EndSessions(ctx context.Context, name string) error
	}
	// Events, when set, is told of what ops does where it happens
	// (metrics).
	Events Events
	// Shared, in cluster mode, carries each state change this node makes
	// to the other nodes (statebus); their changes come back through
	// ApplySharedState.
	Shared interface {
		Publish(ctx context.Context, a store.Account)
	}

	// StateSpool is the file keeping account states set while the
	// records store did not answer, until it takes them ("": memory only).
	StateSpool string
	pending    pendingStates

	accountMu keyedMutex // serialises each account's state changes
	runs      runs       // playbook runs in the background (runs.go)
	incMu     sync.Mutex // serialises opening incidents; guards full
	// full is, per account, its active incident once its evidence is full
	// (store.MaxEvidence): a finding it already holds the reason of, at no
	// higher severity, would change nothing and is not written (a spam run
	// reports thousands). Dismissing or resolving the incident forgets it.
	full map[string]fullIncident
	// auditOnce hands the playbook runner the audit function once.
	auditOnce sync.Once
}

var _ api.Methods = (*Service)(nil)

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Events is told of what ops does, as it happens. Every value comes from a
// fixed set (audit actions, severities, steps, step outcomes).
type Events interface {
	// AdminOp: an operation that changed state, by its audit action
	// (release, delete, spam, trust, unlock, account-state, …).
	AdminOp(action store.AuditAction)
	// IncidentOpened: an incident was opened.
	IncidentOpened(severity store.Severity)
	// Step: a playbook step ended with status.
	Step(step string, status store.StepStatus)
}

// notCounted are the audit actions that are not admin operations: holds and
// evidence the engine recorded, what the queue sync found changed in
// Postfix's queue (even when an admin asked for the sync), incidents
// opened and steps run (counted as such).
var notCounted = map[store.AuditAction]bool{store.AuditHold: true, store.AuditSync: true, store.AuditIncidentEvidence: true, store.AuditIncidentOpen: true, store.AuditStep: true}

// audit appends an audit entry. One made in an admin's request (its ctx
// carries the actor) counts as an admin operation; mailbrake's own —
// escalations, the queue sync, other nodes' states — does not.
func (s *Service) audit(ctx context.Context, actor string, action store.AuditAction, target, detail string) {
	if s.Events != nil && !notCounted[action] && api.HasActor(ctx) {
		s.Events.AdminOp(action)
	}
	err := s.Audit.AppendAudit(ctx, store.AuditEntry{Time: s.now(), Actor: actor, Action: action, Target: target, Detail: detail})
	if err != nil {
		s.Log.Error("writing audit entry failed", "action", action, "target", target, "err", err)
	}
}

// Status implements api.Methods.
func (s *Service) Status(ctx context.Context) (*api.Status, error) {
	st := s.Status0
	if s.Records != nil {
		st.Records = s.Records.Kind
		st.ReadOnly = s.Records.Check(ctx) != nil
	}
	return &st, nil
}

// holdFilter is the store filter of a list request.
func holdFilter(r api.ListHoldsRequest) (store.HoldFilter, error) {
	f := store.HoldFilter{Account: store.AccountKey(r.Account), Limit: r.Limit, Offset: r.Offset, Reason: r.Reason,
		ClientFamily: r.ClientFamily, Since: r.Since, Until: r.Until, Query: strings.TrimSpace(r.Query)}
	if len(f.Query) > 200 {
		return f, fmt.Errorf("%w: search text longer than 200 bytes", api.ErrBadRequest)
	}
	switch r.State {
	case "", "all":
	default:
		st := store.HoldState(r.State)
		if !st.Valid() {
			return f, fmt.Errorf("%w: state must be held, released, deleted, expired or all", api.ErrBadRequest)
		}
		f.State = st
	}
	if f.Limit > 1000 {
		f.Limit = 1000
	}
	return f, nil
}

// ListHolds implements api.Methods. Previews and headers are left out of
// lists; GetHold returns them. Total and Newest count every match.
func (s *Service) ListHolds(ctx context.Context, r api.ListHoldsRequest) (*api.HoldList, error) {
	f, err := holdFilter(r)
	if err != nil {
		return nil, err
	}
	noContent := api.ActorFrom(ctx).NoContent
	f.QueryNoSubject = noContent // no searching what may not be shown
	holds, err := s.Store.ListHolds(ctx, f)
	if err != nil {
		return nil, err
	}
	for i := range holds {
		holds[i].Headers, holds[i].Preview = "", ""
		if noContent {
			holds[i].Subject = "" // the subject is content
		}
		if holds[i].Recipients == nil {
			holds[i].Recipients = []string{}
		}
		if holds[i].Reasons == nil {
			holds[i].Reasons = []string{}
		}
	}
	if holds == nil {
		holds = []store.Hold{}
	}
	c, err := s.Store.CountHolds(ctx, f)
	if err != nil {
		return nil, err
	}
	return &api.HoldList{Holds: holds, Total: c.N, Newest: c.Newest}, nil
}

// MaxBulkHolds bounds one BulkHolds call: each message is a few postsuper
// and postqueue runs. More matching messages are left for the next call.
const MaxBulkHolds = 1000

// BulkHolds implements api.Methods: it releases or deletes the held
// messages matching a filter, up to the newest one the admin saw, and
// refuses when more match than the admin confirmed.
func (s *Service) BulkHolds(ctx context.Context, r api.BulkHoldsRequest) (*api.BulkHoldsResult, error) {
	do, verb := s.ReleaseHold, "release"
	switch r.Action {
	case "release":
	case "delete":
		do, verb = s.DeleteHold, "delete"
	default:
		return nil, fmt.Errorf("%w: action must be release or delete", api.ErrBadRequest)
	}
	if r.Through <= 0 || r.Expect <= 0 {
		return nil, fmt.Errorf("%w: through (the newest hold ID seen) and expect (how many were confirmed) are required", api.ErrBadRequest)
	}
	r.Filter.State, r.Filter.Limit, r.Filter.Offset = string(store.HoldHeld), 0, 0
	f, err := holdFilter(r.Filter)
	if err != nil {
		return nil, err
	}
	f.Through = r.Through
	f.QueryNoSubject = api.ActorFrom(ctx).NoContent
	c, err := s.Store.CountHolds(ctx, f)
	if err != nil {
		return nil, err
	}
	if c.N > r.Expect {
		return nil, fmt.Errorf("%w: %d held messages match now, %d were confirmed: look at the list again", api.ErrConflict, c.N, r.Expect)
	}
	f.Limit = MaxBulkHolds
	holds, err := s.Store.ListHolds(ctx, f)
	if err != nil {
		return nil, err
	}
	res := &api.BulkHoldsResult{Action: r.Action, Matched: c.N, Through: r.Through, Failed: []api.BulkFailure{}}
	for _, h := range holds {
		if err := ctx.Err(); err != nil {
			res.Failed = append(res.Failed, api.BulkFailure{ID: h.ID, Error: "not attempted: " + err.Error()})
			continue
		}
		if _, err := do(ctx, h.ID); err != nil {
			res.Failed = append(res.Failed, api.BulkFailure{ID: h.ID, Error: err.Error()})
			continue
		}
		res.Done++
	}
	res.Remaining = c.N - len(holds)
	target := "holds"
	if f.Account != "" {
		target = "account:" + f.Account
	}
	s.audit(ctx, api.ActorFrom(ctx).Name, store.AuditBulk, target, fmt.Sprintf("%s %d of %d held messages matching %s through hold %d (%d failed, %d left for another run)",
		verb, res.Done, c.N, describeFilter(r.Filter), r.Through, len(res.Failed), res.Remaining))
	return res, nil
}

// describeFilter says which filter fields were set, for the audit log.
func describeFilter(r api.ListHoldsRequest) string {
	var parts []string
	for _, kv := range [][2]string{{"account", r.Account}, {"reason", r.Reason}, {"client_family", r.ClientFamily}, {"q", r.Query}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+strconv.Quote(kv[1]))
		}
	}
	if !r.Since.IsZero() {
		parts = append(parts, "since="+r.Since.UTC().Format(time.RFC3339))
	}
	if !r.Until.IsZero() {
		parts = append(parts, "until="+r.Until.UTC().Format(time.RFC3339))
	}
	if len(parts) == 0 {
		return "any filter (all held)"
	}
	return strings.Join(parts, " ")
}

// GetHold implements api.Methods.
func (s *Service) GetHold(ctx context.Context, id int64) (*store.Hold, error) {
	h, err := s.Store.GetHold(ctx, id)
	if err != nil {
		return nil, err
	}
	if api.ActorFrom(ctx).NoContent {
		h.Headers, h.Preview, h.Subject = "", "", "" // the subject is content
	}
	if s.Quarantine != nil {
		if h.Waiting, err = s.Quarantine.Waiting(ctx, h); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// ReleaseHold implements api.Methods.
func (s *Service) ReleaseHold(ctx context.Context, id int64) (*store.Hold, error) {
	actor := api.ActorFrom(ctx).Name
	h, err := s.Quarantine.Release(ctx, id, actor)
	if err != nil {
		return nil, err
	}
	if !s.Quarantine.Local(h) {
		// The node that holds it released it and audited that.
		s.Log.Info("held message released by the node that holds it", "hold", id, "node", h.Node, "queue_id", h.QueueID, "account", h.Account, "actor", actor)
		return h, nil
	}
	s.audit(ctx, actor, store.AuditRelease, fmt.Sprintf("hold:%d", id), "queue_id="+h.QueueID)
	s.Log.Info("held message released", "hold", id, "queue_id", h.QueueID, "account", h.Account, "actor", actor)
	// Re-injection is expected by the node that released it; for another
	// node's hold, that node was told (ServeNodeCommands).
	if s.Released != nil && s.Quarantine.Local(h) {
		s.Released(h)
	}
	return h, nil
}

// ServeNodeCommands carries out the releases and deletes other nodes ask
// of this node (cluster mode) until ctx ends; wake says when to look.
// This node audits them, in the asker's name, whenever they are carried
// out (the asker may have stopped waiting, or be gone), and expects a
// released message back from a content filter as after its own release.
func (s *Service) ServeNodeCommands(ctx context.Context, wake <-chan struct{}) {
	s.Quarantine.ServeCommands(ctx, wake, func(c store.NodeCommand, h *store.Hold, err error) {
		if err != nil {
			s.Log.Warn("cluster: a command from another node failed", "command", c.ID, "from", c.From, "op", c.Op, "hold", c.HoldID, "actor", c.Actor, "err", err)
			return
		}
		action := store.AuditRelease
		if c.Op == store.HoldDeleted {
			action = store.AuditDelete
		}
		// The admin's operation, carried out here.
		s.audit(api.WithActor(context.WithoutCancel(ctx), api.Actor{Name: c.Actor}), c.Actor, action, fmt.Sprintf("hold:%d", c.HoldID),
			fmt.Sprintf("queue_id=%s on node %s, asked on node %s at %s (command %d)", h.QueueID, s.Quarantine.Node, c.From, c.CreatedAt.UTC().Format(time.RFC3339), c.ID))
		s.Log.Info("cluster: carried out a command from another node", "command", c.ID, "from", c.From, "op", c.Op, "hold", c.HoldID, "queue_id", h.QueueID, "actor", c.Actor)
		if c.Op == store.HoldReleased && s.Released != nil {
			s.Released(h)
		}
	})
}

// DeleteHold implements api.Methods.
func (s *Service) DeleteHold(ctx context.Context, id int64) (*store.Hold, error) {
	actor := api.ActorFrom(ctx).Name
	h, err := s.Quarantine.Delete(ctx, id, actor)
	if err != nil {
		return nil, err
	}
	if !s.Quarantine.Local(h) {
		// The node that holds it deleted it and audited that.
		s.Log.Info("held message deleted by the node that holds it", "hold", id, "node", h.Node, "queue_id", h.QueueID, "account", h.Account, "actor", actor)
		return h, nil
	}
	s.audit(ctx, actor, store.AuditDelete, fmt.Sprintf("hold:%d", id), "queue_id="+h.QueueID)
	s.Log.Info("held message deleted", "hold", id, "queue_id", h.QueueID, "account", h.Account, "actor", actor)
	return h, nil
}

// syncState is the outcome of the last queue sync, for readiness.
type syncState struct {
	mu   sync.Mutex
	at   time.Time
	err  error
	seen bool
}

// sync runs the queue sync and remembers how it went.
func (s *Service) sync(ctx context.Context) ([]quarantine.Change, error) {
	changes, err := s.Quarantine.Sync(ctx)
	if ctx.Err() == nil {
		s.syncs.mu.Lock()
		s.syncs.at, s.syncs.err, s.syncs.seen = s.now(), err, true
		s.syncs.mu.Unlock()
	}
	return changes, err
}

// SyncHealth is the last queue sync's time and error (zero time: none
// yet).
func (s *Service) SyncHealth() (time.Time, error) {
	s.syncs.mu.Lock()
	defer s.syncs.mu.Unlock()
	return s.syncs.at, s.syncs.err
}

// SyncQueue implements api.Methods.
func (s *Service) SyncQueue(ctx context.Context) (*api.SyncResult, error) {
	changes, err := s.sync(ctx)
	s.auditChanges(ctx, changes)
	if err != nil {
		return nil, err
	}
	res := &api.SyncResult{Changed: []api.SyncChange{}}
	for _, c := range changes {
		res.Changed = append(res.Changed, api.SyncChange{ID: c.ID, QueueID: c.QueueID, State: string(c.To)})
	}
	return res, nil
}

// SyncPeriodically reconciles with the Postfix queue every interval until
// ctx ends.
func (s *Service) SyncPeriodically(ctx context.Context, every time.Duration) {
	// Once at start, whatever the interval: holds whose records were not
	// written before the last stop (a kill) are found now, and the queued
	// mail of accounts restricted meanwhile is put on hold.
	if changes, err := s.sync(ctx); err != nil && ctx.Err() == nil {
		s.Log.Warn("reconciling holds with the Postfix queue failed", "err", err)
	} else {
		s.auditChanges(ctx, changes)
	}
	s.HoldRestrictedQueued(ctx)
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changes, err := s.sync(ctx)
			s.auditChanges(ctx, changes)
			if err != nil && ctx.Err() == nil {
				s.Log.Warn("reconciling holds with the Postfix queue failed", "err", err)
			}
		}
	}
}

func (s *Service) auditChanges(ctx context.Context, changes []quarantine.Change) {
	for _, c := range changes {
		switch {
		case c.Recovered:
			s.audit(ctx, "postfix", store.AuditHold, fmt.Sprintf("hold:%d", c.ID), fmt.Sprintf("queue_id=%s recovered from the hold queue (no record was written)", c.QueueID))
			s.Log.Warn("a message in the hold queue had no record: recorded from the queue", "hold", c.ID, "queue_id", c.QueueID)
			if s.Recovered != nil && c.Hold != nil {
				s.Recovered(c.Hold)
			}
		case c.Revived:
			s.audit(ctx, "postfix", store.AuditSync, fmt.Sprintf("hold:%d", c.ID), fmt.Sprintf("queue_id=%s state=held (in the hold queue again)", c.QueueID))
			s.Log.Info("held message back in the hold queue", "hold", c.ID, "queue_id", c.QueueID)
		default:
			s.audit(ctx, "postfix", store.AuditSync, fmt.Sprintf("hold:%d", c.ID), fmt.Sprintf("queue_id=%s state=%s", c.QueueID, c.To))
			s.Log.Info("held message changed in the Postfix queue", "hold", c.ID, "queue_id", c.QueueID, "state", c.To)
		}
	}
}

// RecordHold stores a hold decided by the engine and audits it. created
// is false when the hold merged into the record of the same queue ID (the
// other protocol path, or DATA and END-OF-MESSAGE, held it first).
func (s *Service) RecordHold(ctx context.Context, h *store.Hold) (stored *store.Hold, created bool, err error) {
	// Stores keep microseconds: truncate so that a new record can be told
	// from a merge by its time below.
	h.HeldAt = h.HeldAt.Truncate(time.Microsecond)
	stored, err = s.Quarantine.Record(ctx, h)
	if err != nil {
		return nil, false, err
	}
	// Both protocol paths may hold one message (same queue ID): the store
	// merges them into one record, audited and counted once, when it is
	// first written.
	created = stored.HeldAt.Equal(h.HeldAt) && stored.Path == h.Path
	if created {
		s.audit(ctx, "system", store.AuditHold, fmt.Sprintf("hold:%d", stored.ID), fmt.Sprintf("queue_id=%s account=%s reasons=%s path=%s", stored.QueueID, stored.Account, strings.Join(stored.Reasons, ","), h.Path))
		if s.Volume != nil {
			s.Volume.AddHeld(stored.HeldAt)
		}
	}
	return stored, created, nil
}

// ListAudit implements api.Methods.
func (s *Service) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	v, err := s.Audit.ListAudit(ctx, f)
	if v == nil {
		v = []store.AuditEntry{}
	}
	return v, err
}
