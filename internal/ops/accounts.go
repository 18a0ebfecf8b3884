package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
)

// States is the in-memory view of account states the engine reads on every
// message; ops keeps it in step with the store. Accounts not in it are
// normal. Each state keeps the time of its change, so that of two changes
// the later wins whatever order they arrive in (a node that could not read
// its store at start, see Merge).
type States struct {
	mu sync.RWMutex
	m  map[string]stateAt
}

type stateAt struct {
	state store.AccountState
	at    time.Time
}

// NewStates loads every non-normal account from the store.
func NewStates(ctx context.Context, st store.Accounts) (*States, error) {
	s := &States{m: map[string]stateAt{}}
	for _, state := range []store.AccountState{store.AccountWatch, store.AccountRestricted, store.AccountLocked} {
		as, err := st.ListAccounts(ctx, store.AccountFilter{State: state, Limit: 1 << 30})
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			s.m[a.Name] = stateAt{a.State, a.StateAt}
		}
	}
	return s, nil
}

// EmptyStates returns States with every account normal, to fill with
// Merge.
func EmptyStates() *States { return &States{m: map[string]stateAt{}} }

// Merge takes each account's state unless the one held is later; it
// returns how many changed. A node that started while its records store
// did not answer fills its States from the cluster's Redis, then from the
// store when it answers.
func (s *States) Merge(as []store.Account) int {
	n := 0
	for _, a := range as {
		if s.setIfLater(store.AccountKey(a.Name), a.State, a.StateAt) {
			n++
		}
	}
	return n
}

// setIfLater sets account's state unless the held one changed later; it
// reports whether the state changed.
func (s *States) setIfLater(account string, st store.AccountState, at time.Time) bool {
	if account == "" || !st.Valid() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[account]
	if ok && cur.at.After(at) {
		return false
	}
	changed := cur.state != st && (ok || st != store.AccountNormal)
	// A normal state is kept with its time too (accounts released are
	// few): an older restriction arriving later must not win over it.
	s.m[account] = stateAt{st, at}
	return changed
}

// AccountState implements engine.StateSource.
func (s *States) AccountState(account string) store.AccountState {
	s.mu.RLock()
	st, ok := s.m[account]
	s.mu.RUnlock()
	if !ok {
		return store.AccountNormal
	}
	return st.state
}

// Counts returns how many accounts are in each state other than normal.
func (s *States) Counts() map[store.AccountState]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[store.AccountState]int{store.AccountWatch: 0, store.AccountRestricted: 0, store.AccountLocked: 0}
	for _, st := range s.m {
		if st.state != store.AccountNormal {
			out[st.state]++
		}
	}
	return out
}

// Restricted returns the accounts restricted or locked.
func (s *States) Restricted() map[string]bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]bool{}
	for a, st := range s.m {
		if st.state.Rank() >= store.AccountRestricted.Rank() {
			out[a] = true
		}
	}
	return out
}

func (s *States) set(account string, st store.AccountState, at time.Time) {
	s.mu.Lock()
	s.m[account] = stateAt{st, at}
	s.mu.Unlock()
}

// ListAccounts implements api.Methods.
func (s *Service) ListAccounts(ctx context.Context, r api.ListAccountsRequest) ([]store.Account, error) {
	f := store.AccountFilter{Limit: r.Limit}
	if r.State != "" && r.State != "all" {
		f.State = store.AccountState(r.State)
		if !f.State.Valid() {
			return nil, fmt.Errorf("%w: state must be normal, watch, restricted, locked or all", api.ErrBadRequest)
		}
	}
	return s.Accounts.ListAccounts(ctx, f)
}

// GetAccount implements api.Methods.
func (s *Service) GetAccount(ctx context.Context, name string) (*api.AccountDetail, error) {
	name = store.AccountKey(name)
	if name == "" {
		return nil, fmt.Errorf("%w: account name is empty", api.ErrBadRequest)
	}
	d := &api.AccountDetail{Account: store.Account{Name: name, State: store.AccountNormal}}
	a, err := s.Accounts.GetAccount(ctx, name)
	switch {
	case err == nil:
		d.Account = *a
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	if s.Counters != nil {
		t, err := s.Counters.Peek(ctx, name, s.now())
		if err != nil {
			return nil, err
		}
		d.Counters = t
	}
	if s.Novelty != nil {
		if n, ok := s.Novelty(name, s.now()); ok {
			d.Novelty = n
		}
	}
	if s.Baseline != nil {
		if b, ok := s.Baseline(name, s.now()); ok {
			d.Baseline = b
		}
	}
	if s.Score != nil {
		if sc, ok := s.Score(ctx, name, s.now()); ok {
			d.Score = sc
		}
	}
	holds, err := s.Store.ListHolds(ctx, store.HoldFilter{Account: name, Limit: 20})
	if err != nil {
		return nil, err
	}
	noContent := api.ActorFrom(ctx).NoContent
	for i := range holds {
		holds[i].Headers, holds[i].Preview = "", ""
		if noContent {
			holds[i].Subject = "" // the subject is content
		}
	}
	d.RecentHolds = holds
	if s.Verdicts != nil {
		if rv := s.Verdicts.Recent(name); len(rv) > 0 {
			d.RecentVerdicts = rv
		}
	}
	d.History, err = s.Audit.ListAudit(ctx, store.AuditFilter{Target: "account:" + name, Limit: 20})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// SetAccountState implements api.Methods: an admin moves an account to a
// state, with a reason.
func (s *Service) SetAccountState(ctx context.Context, r api.SetAccountStateRequest) (*store.Account, error) {
	if strings.TrimSpace(r.Reason) == "" {
		return nil, fmt.Errorf("%w: a reason is required", api.ErrBadRequest)
	}
	to := store.AccountState(r.State)
	if !to.Valid() {
		return nil, fmt.Errorf("%w: state must be normal, watch, restricted or locked", api.ErrBadRequest)
	}
	name := store.AccountKey(r.Account)
	locked := false
	if a, err := s.Accounts.GetAccount(ctx, name); err == nil && a.State == store.AccountLocked {
		locked = true
	}
	if p, ok := s.pendingOf(name); ok && p.State == store.AccountLocked {
		locked = true // locked while the store did not answer, not yet recorded
	}
	if locked && to != store.AccountLocked {
		return nil, fmt.Errorf("%w: %s is locked; a lock ends with `mailbrake account unlock` once the password has changed", api.ErrConflict, name)
	}
	a, err := s.changeState(ctx, name, to, api.ActorFrom(ctx).Name, r.Reason, false)
	if err == nil && to == store.AccountLocked {
		s.lockEverywhere(ctx, a.Name, api.ActorFrom(ctx).Name)
	}
	return a, err
}

// lockEverywhere locks the login on every system a playbook would (an
// admin's lock by hand); outcomes are audited.
func (s *Service) lockEverywhere(ctx context.Context, account, actor string) {
	if s.Response == nil || s.Response.Runner == nil {
		return
	}
	// Every system at once: one that is slow (a Zimbra timing out) holds
	// up the admin's request by its own time only. Audited in order.
	var cs []playbook.Connector
	for _, c := range s.Response.Runner.Connectors {
		if c.Name() != "mailbrake" && c.Supports(playbook.StepLockLogin) {
			cs = append(cs, c)
		}
	}
	details := make([]string, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			detail, err := c.Do(ctx, playbook.StepLockLogin, &store.Incident{Account: account}, nil)
			if err != nil {
				detail = "lock failed: " + err.Error()
				s.Log.Warn("lock failed", "account", account, "system", c.Name(), "err", err)
			}
			details[i] = detail
		})
	}
	wg.Wait()
	for i, c := range cs {
		s.audit(ctx, actor, store.AuditAccountState, "account:"+account, c.Name()+": "+details[i])
	}
}

// Escalate raises an account's state because its findings crossed a
// threshold; it never lowers a state.
func (s *Service) Escalate(ctx context.Context, account string, to store.AccountState, reason string) (*store.Account, error) {
	return s.changeState(ctx, account, to, "system", reason, true)
}

func (s *Service) changeState(ctx context.Context, account string, to store.AccountState, actor, reason string, onlyUp bool) (*store.Account, error) {
	account = strings.ToLower(strings.TrimSpace(account))
	if account == "" || strings.ContainsAny(account, " \t\r\n") {
		return nil, fmt.Errorf("%w: invalid account name", api.ErrBadRequest)
	}
	// The account's lock covers the read and write of its state only,
	// never the Postfix commands below.
	unlock := s.accountMu.lock(account)
	// An escalation does not wait for the store: one that does not answer
	// in escalateStoreWait (PostgreSQL cut off without a reset), or a stop
	// cutting the wait short, has the account restricted now and its
	// record written when the store answers.
	sctx, scancel := ctx, context.CancelFunc(func() {})
	if onlyUp {
		sctx, scancel = context.WithTimeout(context.WithoutCancel(ctx), escalateStoreWait)
		stop := context.AfterFunc(ctx, scancel)
		defer stop()
	}
	defer scancel()
	from := store.AccountNormal
	if a, err := s.Accounts.GetAccount(sctx, account); err == nil {
		from = a.State
	} else if !errors.Is(err, store.ErrNotFound) {
		unlock()
		if onlyUp {
			return s.escalateUnrecorded(ctx, account, to, reason, err)
		}
		return nil, err
	}
	// A state still waiting for the store is the account's state.
	if p, ok := s.pendingOf(account); ok && p.State.Rank() > from.Rank() {
		from = p.State
	}
	if onlyUp && to.Rank() <= from.Rank() {
		unlock()
		return &store.Account{Name: account, State: from}, nil
	}
	// Microseconds: what the stores keep, so that the change another node
	// shares back (statebus) compares equal to the stored one.
	a := store.Account{Name: account, State: to, StateAt: s.now().UTC().Truncate(time.Microsecond), StateBy: actor, Reason: reason}
	if err := s.Accounts.PutAccount(sctx, a); err != nil {
		unlock()
		if onlyUp {
			return s.escalateUnrecorded(ctx, account, to, reason, err)
		}
		return nil, err
	}
	s.forgetPendingBefore(account, a.StateAt)
	s.States.set(account, to, a.StateAt)
	unlock()
	if s.Shared != nil {
		s.Shared.Publish(ctx, a)
	}
	s.audit(ctx, actor, store.AuditAccountState, "account:"+account, fmt.Sprintf("%s -> %s: %s", from, to, reason))
	s.Log.Info("account state changed", "account", account, "from", from, "to", to, "actor", actor, "reason", reason)
	if to.Rank() >= store.AccountRestricted.Rank() && from.Rank() < store.AccountRestricted.Rank() {
		s.holdQueued(ctx, account, actor)
	}
	return &a, nil
}

// holdQueued puts the account's mail in this node's Postfix queue on hold.
func (s *Service) holdQueued(ctx context.Context, account, actor string) {
	if s.Quarantine == nil {
		return
	}
	held, err := s.Quarantine.HoldQueuedFrom(ctx, account)
	if len(held) > 0 {
		s.audit(ctx, actor, store.AuditAccountHoldQueued, "account:"+account, "queue_ids="+strings.Join(held, ","))
		s.Log.Info("queued mail of a restricted account put on hold", "account", account, "messages", len(held))
	}
	if err != nil {
		s.Log.Warn("putting queued mail on hold failed for some messages", "account", account, "err", err)
	}
}

// HoldRestrictedQueued puts on hold the mail in this node's Postfix queue
// of every account restricted or locked, with one reading of the queue.
// The change of state holds an account's queued mail as it happens; this
// is for the changes this node was not running for (restricted on another
// node, or by a playbook, while this mailbrake was stopped, its Postfix
// taking mail meanwhile) and runs at start and when the records store
// first answers. Messages an admin released are left alone.
func (s *Service) HoldRestrictedQueued(ctx context.Context) {
	if s.Quarantine == nil || s.States == nil {
		return
	}
	accounts := s.States.Restricted()
	if len(accounts) == 0 {
		return
	}
	held, err := s.Quarantine.HoldQueuedOf(ctx, accounts)
	for account, ids := range held {
		s.audit(ctx, "system", store.AuditAccountHoldQueued, "account:"+account, "queue_ids="+strings.Join(ids, ","))
		s.Log.Info("queued mail of a restricted account put on hold", "account", account, "messages", len(ids), "why", "restricted while this node was stopped")
	}
	if err != nil && ctx.Err() == nil {
		s.Log.Warn("putting queued mail of restricted accounts on hold failed for some messages", "err", err)
	}
}

// ApplySharedState applies an account state another node of the cluster
// set (statebus). A change older than what this node has is ignored, so
// the later change wins whatever order changes arrive in. The store takes
// the change when it does not have it (a store of this node's own), and
// an account that becomes restricted here has its mail in this node's
// queue put on hold, as on the node that restricted it.
func (s *Service) ApplySharedState(ctx context.Context, a store.Account, node string) {
	account := store.AccountKey(a.Name)
	if account == "" || !a.State.Valid() {
		return
	}
	a.Name, a.StateAt = account, a.StateAt.UTC().Truncate(time.Microsecond)
	unlock := s.accountMu.lock(account)
	cur, err := s.Accounts.GetAccount(ctx, account)
	switch {
	case errors.Is(err, store.ErrNotFound):
		cur = &store.Account{Name: account, State: store.AccountNormal}
	case err != nil:
		// The store does not answer (PostgreSQL down, or not reached
		// since this node started): the engine takes the state anyway —
		// a restricted account must be held here too — unless it holds a
		// later one. The node that made the change recorded it; this
		// node's own store, if it has one, is not written.
		prev := s.States.AccountState(account)
		changed := s.States.setIfLater(account, a.State, a.StateAt)
		unlock()
		s.Log.Debug("cluster: an account state applied without reading the records store (it does not answer)", "account", account, "state", a.State, "node", node, "err", err)
		if changed {
			s.Log.Info("account state changed on another node", "account", account, "from", prev, "to", a.State, "node", node, "actor", a.StateBy)
			if a.State.Rank() >= store.AccountRestricted.Rank() && prev.Rank() < store.AccountRestricted.Rank() {
				s.holdQueued(ctx, account, "cluster:"+node)
			}
		}
		return
	}
	if cur.StateAt.After(a.StateAt) {
		unlock() // this node has a later change
		return
	}
	stored := cur.State == a.State && cur.StateAt.Equal(a.StateAt)
	if !stored {
		if err := s.Accounts.PutAccount(ctx, a); err != nil {
			unlock()
			s.Log.Warn("cluster: storing a shared account state failed", "account", account, "err", err)
			return
		}
	}
	prev := s.States.AccountState(account)
	// A later state of this node still waiting for the store wins.
	s.States.setIfLater(account, a.State, a.StateAt)
	unlock()
	actor := "cluster:" + node
	if !stored {
		s.audit(ctx, actor, store.AuditAccountState, "account:"+account, fmt.Sprintf("%s -> %s on node %s by %s: %s", cur.State, a.State, node, a.StateBy, a.Reason))
	}
	if prev != a.State {
		s.Log.Info("account state changed on another node", "account", account, "from", prev, "to", a.State, "node", node, "actor", a.StateBy)
	}
	if a.State.Rank() >= store.AccountRestricted.Rank() && prev.Rank() < store.AccountRestricted.Rank() {
		s.holdQueued(ctx, account, actor)
	}
}
