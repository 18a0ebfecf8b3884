package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mailbrake/mailbrake/internal/store"
)

// GetAccount implements store.Accounts.
func (s *Store) GetAccount(ctx context.Context, name string) (*store.Account, error) {
	var a store.Account
	err := s.pool.QueryRow(ctx, `SELECT name, state, state_at, state_by, reason FROM accounts WHERE name = $1`, name).
		Scan(&a.Name, &a.State, &a.StateAt, &a.StateBy, &a.Reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("account %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres store: GetAccount: %w", err)
	}
	a.StateAt = utc(a.StateAt)
	return &a, nil
}

// PutAccount implements store.Accounts (insert or replace, in one
// statement: the last of two nodes' writes wins whole).
func (s *Store) PutAccount(ctx context.Context, a store.Account) error {
	if !a.State.Valid() {
		return fmt.Errorf("postgres store: PutAccount: invalid state %q", a.State)
	}
	if a.Name == "" {
		return fmt.Errorf("postgres store: PutAccount: empty account name")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO accounts (name, state, state_at, state_by, reason) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name) DO UPDATE SET state = excluded.state, state_at = excluded.state_at, state_by = excluded.state_by, reason = excluded.reason`,
		a.Name, string(a.State), a.StateAt, a.StateBy, a.Reason)
	if err != nil {
		return fmt.Errorf("postgres store: PutAccount: %w", err)
	}
	return nil
}

// ListAccounts implements store.Accounts.
func (s *Store) ListAccounts(ctx context.Context, f store.AccountFilter) ([]store.Account, error) {
	var a args
	q := `SELECT name, state, state_at, state_by, reason FROM accounts`
	if f.State != "" {
		q += ` WHERE state = ` + a.add(string(f.State))
	}
	q += ` ORDER BY state_at DESC, name LIMIT ` + a.add(limit(f.Limit))
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: ListAccounts: %w", err)
	}
	defer rows.Close()
	out := []store.Account{}
	for rows.Next() {
		var ac store.Account
		if err := rows.Scan(&ac.Name, &ac.State, &ac.StateAt, &ac.StateBy, &ac.Reason); err != nil {
			return nil, fmt.Errorf("postgres store: ListAccounts: %w", err)
		}
		ac.StateAt = utc(ac.StateAt)
		out = append(out, ac)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: ListAccounts: %w", err)
	}
	return out, nil
}
