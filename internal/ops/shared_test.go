package ops

import (
	"context"
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
