package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mailbrake/mailbrake/internal/store"
)

var _ store.Accounts = (*Store)(nil)

// GetAccount implements store.Accounts.
func (s *Store) GetAccount(ctx context.Context, name string) (*store.Account, error) {
	var (
		a  store.Account
		us int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT name, state, state_at, state_by, reason FROM accounts WHERE name = ?`, name).
		Scan(&a.Name, &a.State, &us, &a.StateBy, &a.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("account %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite store: GetAccount: %w", err)
	}
	a.StateAt = fromDB(us)
	return &a, nil
}

// PutAccount implements store.Accounts.
func (s *Store) PutAccount(ctx context.Context, a store.Account) error {
	if !a.State.Valid() {
		return fmt.Errorf("sqlite store: PutAccount: invalid state %q", a.State)
	}
	if a.Name == "" {
		return fmt.Errorf("sqlite store: PutAccount: empty account name")
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO accounts (name, state, state_at, state_by, reason) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET state = excluded.state, state_at = excluded.state_at, state_by = excluded.state_by, reason = excluded.reason`,
		a.Name, string(a.State), toDB(a.StateAt), a.StateBy, a.Reason)
	if err != nil {
		return fmt.Errorf("sqlite store: PutAccount: %w", err)
	}
	return nil
}

// ListAccounts implements store.Accounts.
func (s *Store) ListAccounts(ctx context.Context, f store.AccountFilter) ([]store.Account, error) {
	q := `SELECT name, state, state_at, state_by, reason FROM accounts`
	var args []any
	if f.State != "" {
		q += ` WHERE state = ?`
		args = append(args, string(f.State))
	}
	q += ` ORDER BY state_at DESC, name LIMIT ?`
	args = append(args, limit(f.Limit))
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: ListAccounts: %w", err)
	}
	defer rows.Close()
	out := []store.Account{}
	for rows.Next() {
		var (
			a  store.Account
			us int64
		)
		if err := rows.Scan(&a.Name, &a.State, &us, &a.StateBy, &a.Reason); err != nil {
			return nil, fmt.Errorf("sqlite store: ListAccounts: %w", err)
		}
		a.StateAt = fromDB(us)
		out = append(out, a)
	}
	return out, rows.Err()
}
