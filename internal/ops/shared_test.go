package ops

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/store"
)

type published struct {
	mu sync.Mutex
	as []store.Account
}

func (p *published) Publish(_ context.Context, a store.Account) {
	p.mu.Lock()
	p.as = append(p.as, a)
	p.mu.Unlock()
}

// ApplySharedState: another node's change is stored, audited once and
// read by the engine; an older change than this node's is ignored; this
// node's own changes are published, never those it applies.
func TestApplySharedState(t *testing.T) {
	s, _, clk := newService(t)
	pub := &published{}
	s.Shared = pub
	ctx := admin(t.Context())
	at := clk.now().Add(time.Minute)
	remote := store.Account{Name: "Eve@Example.org", State: store.AccountRestricted, StateAt: at.Add(123 * time.Nanosecond), StateBy: "web:alice", Reason: "spam run"}
	s.ApplySharedState(ctx, remote, "mta-b")
	s.ApplySharedState(ctx, remote, "mta-b") // again, as the hash is read after a reconnection
	if got := s.States.AccountState("eve@example.org"); got != store.AccountRestricted {
		t.Fatalf("engine reads %s", got)
	}
	a, err := s.Accounts.GetAccount(ctx, "eve@example.org")
	if err != nil || a.State != store.AccountRestricted || a.StateBy != "web:alice" || !a.StateAt.Equal(at) {
		t.Fatalf("stored %+v, %v", a, err)
	}
	es, _ := s.Audit.ListAudit(ctx, store.AuditFilter{Target: "account:eve@example.org", Limit: 10})
	if len(es) != 1 || es[0].Actor != "cluster:mta-b" {
		t.Fatalf("audit %+v", es)
	}
	// Older than what this node has: ignored.
	s.ApplySharedState(ctx, store.Account{Name: "eve@example.org", State: store.AccountNormal, StateAt: at.Add(-time.Second)}, "mta-c")
	if got := s.States.AccountState("eve@example.org"); got != store.AccountRestricted {
		t.Fatalf("an older change applied: %s", got)
	}
	if len(pub.as) != 0 {
		t.Fatalf("applied changes published again: %+v", pub.as)
	}
	// This node's own change is published, with the stored time.
	clk.add(time.Hour)
	if _, err := s.SetAccountState(ctx, api.SetAccountStateRequest{Account: "eve@example.org", State: "normal", Reason: "user called"}); err != nil {
		t.Fatal(err)
	}
	a, _ = s.Accounts.GetAccount(ctx, "eve@example.org")
	if len(pub.as) != 1 || pub.as[0].State != store.AccountNormal || !pub.as[0].StateAt.Equal(a.StateAt) {
		t.Fatalf("published %+v, stored %+v", pub.as, a)
	}
	// Unreadable: ignored.
	s.ApplySharedState(ctx, store.Account{Name: "", State: store.AccountLocked}, "mta-b")
	s.ApplySharedState(ctx, store.Account{Name: "x@example.org", State: "frozen"}, "mta-b")
	if n := s.States.Counts(); n[store.AccountLocked] != 0 {
		t.Fatalf("counts %v", n)
	}
}

// downAccounts is an account store that does not answer (PostgreSQL
// down, or not reached since the node started).
type downAccounts struct{ store.Accounts }

func (downAccounts) GetAccount(context.Context, string) (*store.Account, error) {
	return nil, errors.New("postgres store: dial tcp 127.0.0.1:5432: connect: connection refused")
}

func (downAccounts) PutAccount(context.Context, store.Account) error {
	return errors.New("postgres store: dial tcp 127.0.0.1:5432: connect: connection refused")
}

// TestApplySharedStateStoreDown: while the records store does not answer,
// another node's change still reaches the engine (a restricted account is
// held here too), and of two changes the later wins whatever order they
// arrive in; States.Merge (the stored states, read when the store answers
// again) keeps a later change too.
func TestApplySharedStateStoreDown(t *testing.T) {
	s, _, clk := newService(t)
	s.Accounts = downAccounts{s.Accounts}
	ctx := admin(t.Context())
	at := clk.now()
	s.ApplySharedState(ctx, store.Account{Name: "eve@example.org", State: store.AccountRestricted, StateAt: at}, "mta-b")
	if got := s.States.AccountState("eve@example.org"); got != store.AccountRestricted {
		t.Fatalf("with the store down the engine reads %s", got)
	}
	s.ApplySharedState(ctx, store.Account{Name: "eve@example.org", State: store.AccountNormal, StateAt: at.Add(-time.Minute)}, "mta-c")
	if got := s.States.AccountState("eve@example.org"); got != store.AccountRestricted {
		t.Fatalf("an older change applied: %s", got)
	}
	s.ApplySharedState(ctx, store.Account{Name: "eve@example.org", State: store.AccountNormal, StateAt: at.Add(time.Minute)}, "mta-c")
	if got := s.States.AccountState("eve@example.org"); got != store.AccountNormal {
		t.Fatalf("a later release not applied: %s", got)
	}
	// The stored states, read later: older than what the node holds for
	// eve, new for frank.
	n := s.States.Merge([]store.Account{
		{Name: "eve@example.org", State: store.AccountRestricted, StateAt: at},
		{Name: "Frank@Example.org", State: store.AccountLocked, StateAt: at},
	})
	if n != 1 || s.States.AccountState("eve@example.org") != store.AccountNormal || s.States.AccountState("frank@example.org") != store.AccountLocked {
		t.Fatalf("merge changed %d: eve %s, frank %s", n, s.States.AccountState("eve@example.org"), s.States.AccountState("frank@example.org"))
	}
}
