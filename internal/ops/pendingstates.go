package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// pendingStates are account states an escalation set while the records
// store did not answer (PostgreSQL down, a full disk). The restriction
// takes effect at once — in this node's engine, on the other nodes
// through the cluster's Redis, on the mail already queued here — and its
// record waits here, and in the spool file, until the store takes it
// (WritePendingStates). A lost record would let the account's state fall
// back to what the store says at the next start.
type pendingStates struct {
	mu      sync.Mutex
	m       map[string]PendingState
	spoolMu sync.Mutex // held across a write of the spool file
}

// PendingState is one account's state waiting for the store, with the
// state it replaced (for its audit line): an entry of the spool file.
type PendingState struct {
	Account store.Account      `json:"account"`
	From    store.AccountState `json:"from"`
}

// maxStateSpoolBytes bounds the state spool file read at start.
const maxStateSpoolBytes = 64 << 20

// escalateUnrecorded is Escalate when the store does not answer: the
// state is applied from the in-memory view, shared, and its record
// queued. storeErr is why the store was not used.
func (s *Service) escalateUnrecorded(ctx context.Context, account string, to store.AccountState, reason string, storeErr error) (*store.Account, error) {
	unlock := s.accountMu.lock(account)
	from := s.States.AccountState(account)
	s.pending.mu.Lock()
	if p, ok := s.pending.m[account]; ok && p.Account.State.Rank() > from.Rank() {
		from = p.Account.State
	}
	s.pending.mu.Unlock()
	if to.Rank() <= from.Rank() {
		unlock()
		return &store.Account{Name: account, State: from}, nil
	}
	a := store.Account{Name: account, State: to, StateAt: s.now().UTC().Truncate(time.Microsecond), StateBy: "system", Reason: reason}
	s.States.set(account, to, a.StateAt)
	s.pending.mu.Lock()
	if s.pending.m == nil {
		s.pending.m = map[string]PendingState{}
	}
	orig := from
	if p, ok := s.pending.m[account]; ok {
		orig = p.From // the audit line names the state the store has
	}
	s.pending.m[account] = PendingState{Account: a, From: orig}
	s.pending.mu.Unlock()
	unlock()
	s.writeStateSpool()
	if s.Shared != nil {
		s.Shared.Publish(ctx, a)
	}
	s.Log.Warn("account state changed; its record waits for the records store, which does not answer", "account", account, "from", from, "to", to,
		"reason", reason, "err", storeErr)
	if to.Rank() >= store.AccountRestricted.Rank() && from.Rank() < store.AccountRestricted.Rank() {
		s.holdQueued(ctx, account, "system")
	}
	return &a, nil
}

// escalateStoreWait bounds an escalation's wait for the records store
// before it restricts the account without it (escalateUnrecorded). A
// variable for tests.
var escalateStoreWait = 10 * time.Second

// pendingOf returns the state of account waiting for the store, if any.
func (s *Service) pendingOf(account string) (store.Account, bool) {
	s.pending.mu.Lock()
	defer s.pending.mu.Unlock()
	p, ok := s.pending.m[account]
	return p.Account, ok
}

// forgetPendingBefore drops account's waiting state when a change at or
// after it was recorded: the store has the later one.
func (s *Service) forgetPendingBefore(account string, at time.Time) {
	s.pending.mu.Lock()
	p, ok := s.pending.m[account]
	if ok && !p.Account.StateAt.After(at) {
		delete(s.pending.m, account)
	}
	s.pending.mu.Unlock()
	if ok {
		s.writeStateSpool()
	}
}

// PendingStates returns how many account states wait for the store.
func (s *Service) PendingStates() int {
	s.pending.mu.Lock()
	defer s.pending.mu.Unlock()
	return len(s.pending.m)
}

// WritePendingStates writes the account states that wait for the store,
// and their audit lines; a state the store holds a later change of (an
// admin's, made once the store answered) is dropped. It returns how many
// still wait.
func (s *Service) WritePendingStates(ctx context.Context) int {
	s.pending.mu.Lock()
	todo := make([]PendingState, 0, len(s.pending.m))
	for _, p := range s.pending.m {
		todo = append(todo, p)
	}
	s.pending.mu.Unlock()
	if len(todo) == 0 {
		return 0
	}
	done := 0
	for _, p := range todo {
		a := p.Account
		unlock := s.accountMu.lock(a.Name)
		cur, err := s.Accounts.GetAccount(ctx, a.Name)
		if err == nil && cur.StateAt.After(a.StateAt) {
			unlock()
			s.forgetPending(a)
			done++
			continue
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			unlock()
			break
		}
		if err := s.Accounts.PutAccount(ctx, a); err != nil {
			unlock()
			break
		}
		unlock()
		s.forgetPending(a)
		done++
		s.audit(ctx, "system", store.AuditAccountState, "account:"+a.Name,
			fmt.Sprintf("%s -> %s: %s (at %s, recorded late: the records store did not answer)", p.From, a.State, a.Reason, a.StateAt.Format("2006-01-02 15:04:05Z07:00")))
	}
	if done > 0 {
		s.writeStateSpool()
		s.Log.Info("account states recorded that waited for the records store", "recorded", done, "waiting", s.PendingStates())
	}
	return s.PendingStates()
}

// forgetPending drops a's pending record unless a later change replaced it.
func (s *Service) forgetPending(a store.Account) {
	s.pending.mu.Lock()
	if p, ok := s.pending.m[a.Name]; ok && p.Account.StateAt.Equal(a.StateAt) {
		delete(s.pending.m, a.Name)
	}
	s.pending.mu.Unlock()
}

// writeStateSpool keeps the waiting states in StateSpool (written whole);
// with none waiting it removes the file.
func (s *Service) writeStateSpool() {
	if s.StateSpool == "" {
		return
	}
	// One writer at a time, from snapshot to rename: two writers' bytes
	// in one temporary file, or an older snapshot renamed over a newer
	// one, would lose the states at the next start.
	s.pending.spoolMu.Lock()
	defer s.pending.spoolMu.Unlock()
	s.pending.mu.Lock()
	list := make([]PendingState, 0, len(s.pending.m))
	for _, p := range s.pending.m {
		list = append(list, p)
	}
	s.pending.mu.Unlock()
	if len(list) == 0 {
		if err := os.Remove(s.StateSpool); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.Log.Warn("removing the account state spool failed", "file", s.StateSpool, "err", err)
		}
		return
	}
	b, err := json.Marshal(list)
	if err == nil {
		err = writeFileSync(s.StateSpool, b)
	}
	if err != nil {
		s.Log.Warn("keeping account states on disk failed (kept in memory only)", "file", s.StateSpool, "err", err)
	}
}

// LoadPendingStates reads the states the previous process kept in
// StateSpool: each takes effect in the engine unless a later change is
// known, and waits for the store. It returns the accounts read (to share
// again). A file that cannot be read is set aside (.bad) and named in
// the log.
func (s *Service) LoadPendingStates() []store.Account {
	if s.StateSpool == "" {
		return nil
	}
	b, err := os.ReadFile(s.StateSpool)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var list []PendingState
	if err == nil {
		list, err = DecodeSpooledStates(b)
	}
	if err != nil {
		s.Log.Error("the spooled account states cannot be read; set aside", "file", s.StateSpool, "err", err)
		os.Rename(s.StateSpool, s.StateSpool+".bad")
		return nil
	}
	s.pending.mu.Lock()
	if s.pending.m == nil {
		s.pending.m = map[string]PendingState{}
	}
	for _, p := range list {
		if q, ok := s.pending.m[p.Account.Name]; !ok || !q.Account.StateAt.After(p.Account.StateAt) {
			s.pending.m[p.Account.Name] = p
		}
		s.States.setIfLater(p.Account.Name, p.Account.State, p.Account.StateAt)
	}
	s.pending.mu.Unlock()
	out := make([]store.Account, len(list))
	for i, p := range list {
		out[i] = p.Account
	}
	if len(list) > 0 {
		s.Log.Info("account states set before the last stop, not yet recorded: in force, written when the records store answers", "accounts", len(list), "file", s.StateSpool)
	}
	return out
}

// DecodeSpooledStates reads the account state spool file: a JSON list of
// accounts, each with a valid name (its key form) and state.
func DecodeSpooledStates(b []byte) ([]PendingState, error) {
	var list []PendingState
	if err := decodeStrict(b, maxStateSpoolBytes, &list); err != nil {
		return nil, err
	}
	for _, p := range list {
		a := p.Account
		if a.Name == "" || a.Name != store.AccountKey(a.Name) || !a.State.Valid() || !p.From.Valid() || a.StateAt.IsZero() {
			return nil, fmt.Errorf("an entry with account %q, state %q, from %q, at %s", a.Name, a.State, p.From, a.StateAt)
		}
	}
	return list, nil
}
