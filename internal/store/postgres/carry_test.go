package postgres

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/pgtest"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// TestCarryOver: a node that ran alone and joins a cluster brings its
// records into PostgreSQL — a restricted account stays restricted, its
// admins can still sign in, its API tokens still work, its trust entries
// still count — unless the cluster has a later record; a second carry
// copies nothing.
func TestCarryOver(t *testing.T) {
	ctx := t.Context()
	local, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mailbrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	srv := pgtest.New(t)
	pg := openDB(t, srv, srv.NewDB(t))
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(local.PutAccount(ctx, store.Account{Name: "eve@example.edu", State: store.AccountRestricted, StateAt: t0, StateBy: "admin", Reason: "spam run"}))
	must(local.PutAccount(ctx, store.Account{Name: "bob@example.edu", State: store.AccountWatch, StateAt: t0, StateBy: "mailbrake"}))
	must(pg.PutAccount(ctx, store.Account{Name: "bob@example.edu", State: store.AccountNormal, StateAt: t0.Add(time.Minute), StateBy: "admin2"}))
	must(local.PutUser(ctx, store.User{Name: "admin", Role: "admin", Hash: "$argon2id$v=19$m=65536,t=1,p=1$c2FsdA$aGFzaA", Created: t0, Updated: t0}))
	must(pg.PutUser(ctx, store.User{Name: "helpdesk", Role: "helpdesk", Hash: "$argon2id$x", Created: t0, Updated: t0}))
	must(local.PutToken(ctx, store.Token{ID: "tok1", Name: "monitoring", Role: "viewer", Hash: []byte("0123456789abcdef0123456789abcdef"), Created: t0}))
	_, err = local.PutTrust(ctx, store.TrustEntry{Account: "news@example.edu", ClientFamily: "zimbra-html", Until: now.Add(24 * time.Hour), Created: t0, By: "admin", HoldID: 7})
	must(err)
	_, err = local.PutTrust(ctx, store.TrustEntry{Account: "old@example.edu", ClientFamily: "zimbra-html", Until: now.Add(-time.Minute), Created: t0, By: "admin"})
	must(err)

	c, err := store.CarryOver(ctx, local, pg, now)
	must(err)
	if len(c.Accounts) != 1 || c.Accounts[0].Name != "eve@example.edu" || c.Users != 1 || c.Tokens != 1 || c.Trust != 1 {
		t.Fatalf("carried %+v", c)
	}
	if a, err := pg.GetAccount(ctx, "eve@example.edu"); err != nil || a.State != store.AccountRestricted || a.Reason != "spam run" || !a.StateAt.Equal(t0) {
		t.Fatalf("eve in PostgreSQL: %+v %v", a, err)
	}
	if a, _ := pg.GetAccount(ctx, "bob@example.edu"); a.State != store.AccountNormal || a.StateBy != "admin2" {
		t.Fatalf("the cluster's later record of bob was replaced: %+v", a)
	}
	if u, err := pg.GetUser(ctx, "admin"); err != nil || u.Hash == "" || u.Role != "admin" {
		t.Fatalf("admin in PostgreSQL: %+v %v", u, err)
	}
	if tk, err := pg.GetToken(ctx, "tok1"); err != nil || string(tk.Hash) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("token in PostgreSQL: %+v %v", tk, err)
	}
	tr, err := pg.ListTrust(ctx, now)
	must(err)
	if len(tr) != 1 || tr[0].Account != "news@example.edu" || tr[0].HoldID != 0 {
		t.Fatalf("trust in PostgreSQL: %+v", tr)
	}
	if again, err := store.CarryOver(ctx, local, pg, now); err != nil || len(again.Accounts)+again.Users+again.Tokens+again.Trust != 0 {
		t.Fatalf("a second carry copied %+v (%v)", again, err)
	}
}
