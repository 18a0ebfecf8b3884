package ops

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/store"
)

// switchAccounts is an account store that can stop answering (PostgreSQL
// down mid-run) and come back.
type switchAccounts struct {
	store.Accounts
	down atomic.Bool
}

var errRefused = errors.New("postgres store: dial tcp 127.0.0.1:5432: connect: connection refused")

func (s *switchAccounts) GetAccount(ctx context.Context, name string) (*store.Account, error) {
	if s.down.Load() {
		return nil, errRefused
	}
	return s.Accounts.GetAccount(ctx, name)
}

func (s *switchAccounts) PutAccount(ctx context.Context, a store.Account) error {
	if s.down.Load() {
		return errRefused
	}
	return s.Accounts.PutAccount(ctx, a)
}

// TestEscalateWhileStoreDown: an account that crosses a threshold while
// the records store does not answer is restricted at once — in the
// engine, on the other nodes (published) — and its record and audit line
// are written when the store answers again; a restart in between keeps
// it (the spool); a later change made once the store answered wins.
func TestEscalateWhileStoreDown(t *testing.T) {
	s, _, clk := newService(t)
	ctx := t.Context()
	sw := &switchAccounts{Accounts: s.Accounts}
	s.Accounts = sw
	pub := &published{}
	s.Shared = pub
	s.StateSpool = filepath.Join(t.TempDir(), "spool", "states.json")
	sw.down.Store(true)

	a, err := s.Escalate(ctx, "Mallory@Example.org", store.AccountRestricted, "score 130 over 100")
	if err != nil || a.State != store.AccountRestricted {
		t.Fatalf("escalating with the store down: %+v %v", a, err)
	}
	if got := s.States.AccountState("mallory@example.org"); got != store.AccountRestricted {
		t.Fatalf("the engine reads %s", got)
	}
	if len(pub.as) != 1 || pub.as[0].State != store.AccountRestricted || pub.as[0].Name != "mallory@example.org" {
		t.Fatalf("published %+v", pub.as)
	}
	// Not lower, not twice.
	if a, err := s.Escalate(ctx, "mallory@example.org", store.AccountWatch, "watch"); err != nil || a.State != store.AccountRestricted {
		t.Fatalf("a lower escalation: %+v %v", a, err)
	}
	clk.add(time.Minute)
	if _, err := s.Escalate(ctx, "mallory@example.org", store.AccountLocked, "password leaked"); err != nil {
		t.Fatal(err)
	}
	if s.PendingStates() != 1 || len(pub.as) != 2 {
		t.Fatalf("pending %d, published %d", s.PendingStates(), len(pub.as))
	}
	// An admin's change is not taken without the store.
	if _, err := s.SetAccountState(admin(ctx), api.SetAccountStateRequest{Account: "mallory@example.org", State: "normal", Reason: "x"}); err == nil {
		t.Fatal("an admin's change was taken without the store")
	}
	// Still down: nothing written, still waiting.
	if n := s.WritePendingStates(ctx); n != 1 {
		t.Fatalf("waiting %d", n)
	}

	// A restart while the store is down: the next process reads the
	// spool and the restriction is in force at once.
	next, _, _ := newService(t)
	next.Accounts, next.StateSpool = sw, s.StateSpool
	as := next.LoadPendingStates()
	if len(as) != 1 || as[0].State != store.AccountLocked || next.States.AccountState("mallory@example.org") != store.AccountLocked {
		t.Fatalf("loaded %+v, engine %s", as, next.States.AccountState("mallory@example.org"))
	}

	// The store answers: the record and one audit line are written, the
	// spool removed.
	sw.down.Store(false)
	if n := next.WritePendingStates(ctx); n != 0 {
		t.Fatalf("still waiting: %d", n)
	}
	got, err := sw.GetAccount(ctx, "mallory@example.org")
	if err != nil || got.State != store.AccountLocked || got.StateBy != "system" || !got.StateAt.Equal(as[0].StateAt) {
		t.Fatalf("stored %+v %v", got, err)
	}
	es, _ := next.Audit.ListAudit(ctx, store.AuditFilter{Target: "account:mallory@example.org", Limit: 10})
	if len(es) != 1 || !strings.Contains(es[0].Detail, "normal -> locked") || !strings.Contains(es[0].Detail, "recorded late") {
		t.Fatalf("audit %+v", es)
	}
	if _, err := os.Stat(s.StateSpool); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the spool is still there: %v", err)
	}

	// A later change in the store wins over a state still waiting.
	sw.down.Store(true)
	clk.add(time.Minute)
	if _, err := next.Escalate(ctx, "trudy@example.org", store.AccountRestricted, "score"); err != nil {
		t.Fatal(err)
	}
	sw.down.Store(false)
	later := store.Account{Name: "trudy@example.org", State: store.AccountNormal, StateAt: clk.now().Add(time.Minute), StateBy: "web:alice", Reason: "checked"}
	if err := sw.PutAccount(ctx, later); err != nil {
		t.Fatal(err)
	}
	if n := next.WritePendingStates(ctx); n != 0 {
		t.Fatalf("still waiting: %d", n)
	}
	if got, _ := sw.GetAccount(ctx, "trudy@example.org"); got.State != store.AccountNormal || got.StateBy != "web:alice" {
		t.Fatalf("a later change was overwritten: %+v", got)
	}
}

// TestStateSpoolRefused: a spool file that cannot be read is set aside,
// named, and changes nothing.
func TestStateSpoolRefused(t *testing.T) {
	s, _, _ := newService(t)
	s.StateSpool = filepath.Join(t.TempDir(), "states.json")
	if err := os.WriteFile(s.StateSpool, []byte(`[{"account":{"name":"Upper@Example.org","state":"locked"},"from":"normal"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if as := s.LoadPendingStates(); len(as) != 0 || s.PendingStates() != 0 {
		t.Fatalf("loaded %+v", as)
	}
	if _, err := os.Stat(s.StateSpool + ".bad"); err != nil {
		t.Fatalf("not set aside: %v", err)
	}
}

// FuzzDecodeSpooledStates: the account state spool decoder never panics,
// and what it accepts encodes to what it decodes again.
func FuzzDecodeSpooledStates(f *testing.F) {
	f.Add([]byte(`[{"account":{"name":"u@example.org","state":"restricted","state_at":"2026-12-04T10:00:00Z","state_by":"system","reason":"score"},"from":"normal"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"account":{"name":"U@example.org","state":"locked","state_at":"2026-12-04T10:00:00Z"},"from":"normal"}]`))
	f.Add([]byte(`[{"account":{"name":"u@example.org","state":"frozen","state_at":"2026-12-04T10:00:00Z"},"from":"normal"}] x`))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := DecodeSpooledStates(b)
		if err != nil {
			return
		}
		for _, p := range list {
			if !p.Account.State.Valid() || p.Account.Name != store.AccountKey(p.Account.Name) {
				t.Fatalf("accepted %+v", p)
			}
		}
	})
}

// silentAccounts is an account store whose calls wait until their
// context ends: PostgreSQL cut off by the network, no reset.
type silentAccounts struct{ store.Accounts }

func (silentAccounts) GetAccount(ctx context.Context, name string) (*store.Account, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestEscalateSilentStore: an escalation waits for a store that does not
// answer escalateStoreWait at most, then restricts the account without
// it; an admin cannot then lift the lock that waits for the store
// without unlocking (as with a recorded lock).
func TestEscalateSilentStore(t *testing.T) {
	defer func(w time.Duration) { escalateStoreWait = w }(escalateStoreWait)
	escalateStoreWait = 200 * time.Millisecond
	s, _, _ := newService(t)
	real := s.Accounts
	s.Accounts = silentAccounts{real}
	done := make(chan error, 1)
	go func() {
		_, err := s.Escalate(t.Context(), "mallory@example.org", store.AccountLocked, "password leaked")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the escalation waited for the silent store")
	}
	if s.States.AccountState("mallory@example.org") != store.AccountLocked || s.PendingStates() != 1 {
		t.Fatalf("engine %s, pending %d", s.States.AccountState("mallory@example.org"), s.PendingStates())
	}
	// The store answers again, not yet written: the waiting lock holds.
	s.Accounts = real
	if _, err := s.SetAccountState(admin(t.Context()), api.SetAccountStateRequest{Account: "mallory@example.org", State: "normal", Reason: "x"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("lifting a lock that waits for the store: %v", err)
	}
}
