package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// CarrySource and CarryTarget are what CarryOver reads and writes.
type (
	CarrySource interface {
		Accounts
		Users
		Trust
	}
	CarryTarget = CarrySource
)

// Carried says what CarryOver copied.
type Carried struct {
	// Accounts are the account records copied (absent in the target, or
	// there with an earlier change).
	Accounts []Account
	Users    int
	Tokens   int
	Trust    int
}

// carryLimit bounds the accounts read: far above the accounts any site
// has restricted, watched or locked.
const carryLimit = 10_000_000

// CarryOver copies a node's own records into the cluster's store when it
// joins (cluster.postgres on a node that ran alone): account states —
// a restricted or locked account stays so —, users and API tokens absent
// there, and trust entries still valid at now. A record the target
// already has stands, but for an account whose state there is older
// (the later change wins, as between nodes). Holds, incidents and the
// audit trail are history: they stay in the node's own database.
func CarryOver(ctx context.Context, from CarrySource, to CarryTarget, now time.Time) (Carried, error) {
	var c Carried
	accts, err := from.ListAccounts(ctx, AccountFilter{Limit: carryLimit})
	if err != nil {
		return c, fmt.Errorf("reading accounts: %w", err)
	}
	for _, a := range accts {
		cur, err := to.GetAccount(ctx, a.Name)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return c, fmt.Errorf("reading account %s: %w", a.Name, err)
		case !cur.StateAt.Before(a.StateAt):
			continue
		}
		if err := to.PutAccount(ctx, a); err != nil {
			return c, fmt.Errorf("writing account %s: %w", a.Name, err)
		}
		c.Accounts = append(c.Accounts, a)
	}
	users, err := from.ListUsers(ctx)
	if err != nil {
		return c, fmt.Errorf("reading users: %w", err)
	}
	for _, u := range users {
		if _, err := to.GetUser(ctx, u.Name); err == nil {
			continue // the cluster's user of that name stands
		} else if !errors.Is(err, ErrNotFound) {
			return c, fmt.Errorf("reading user %s: %w", u.Name, err)
		}
		full, err := from.GetUser(ctx, u.Name) // a listing leaves the hash out
		if err != nil {
			return c, fmt.Errorf("reading user %s: %w", u.Name, err)
		}
		if err := to.PutUser(ctx, *full); err != nil {
			return c, fmt.Errorf("writing user %s: %w", u.Name, err)
		}
		c.Users++
	}
	tokens, err := from.ListTokens(ctx)
	if err != nil {
		return c, fmt.Errorf("reading tokens: %w", err)
	}
	for _, t := range tokens {
		if _, err := to.GetToken(ctx, t.ID); err == nil {
			continue
		} else if !errors.Is(err, ErrNotFound) {
			return c, fmt.Errorf("reading token %s: %w", t.ID, err)
		}
		full, err := from.GetToken(ctx, t.ID)
		if err != nil {
			return c, fmt.Errorf("reading token %s: %w", t.ID, err)
		}
		if err := to.PutToken(ctx, *full); err != nil {
			return c, fmt.Errorf("writing token %s: %w", t.ID, err)
		}
		c.Tokens++
	}
	trust, err := from.ListTrust(ctx, now)
	if err != nil {
		return c, fmt.Errorf("reading trust entries: %w", err)
	}
	have, err := to.ListTrust(ctx, now)
	if err != nil {
		return c, fmt.Errorf("reading trust entries: %w", err)
	}
	same := func(a, b TrustEntry) bool {
		return a.Account == b.Account && a.ClientFamily == b.ClientFamily && a.Until.Equal(b.Until)
	}
next:
	for _, e := range trust {
		for _, h := range have {
			if same(e, h) {
				continue next
			}
		}
		e.ID, e.HoldID = 0, 0 // the hold is the node's own record
		if _, err := to.PutTrust(ctx, e); err != nil {
			return c, fmt.Errorf("writing a trust entry of %s: %w", e.Account, err)
		}
		c.Trust++
	}
	return c, nil
}
