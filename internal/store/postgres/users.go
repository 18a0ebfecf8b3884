package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailbrake/mailbrake/internal/store"
)

// GetUser implements store.Users.
func (s *Store) GetUser(ctx context.Context, name string) (*store.User, error) {
	var u store.User
	err := s.pool.QueryRow(ctx, `SELECT name, role, hash, created, updated FROM users WHERE name = $1`, name).
		Scan(&u.Name, &u.Role, &u.Hash, &u.Created, &u.Updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres store: GetUser: %w", err)
	}
	u.Created, u.Updated = utc(u.Created), utc(u.Updated)
	return &u, nil
}

// PutUser implements store.Users.
func (s *Store) PutUser(ctx context.Context, u store.User) error {
	if u.Name == "" || u.Hash == "" {
		return errors.New("postgres store: PutUser: empty name or hash")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO users (name, role, hash, created, updated) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash, updated = excluded.updated`,
		u.Name, u.Role, u.Hash, u.Created, u.Updated)
	if err != nil {
		return fmt.Errorf("postgres store: PutUser: %w", err)
	}
	return nil
}

// DeleteUser implements store.Users.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM users WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("postgres store: DeleteUser: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// ListUsers implements store.Users.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, role, created, updated FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: ListUsers: %w", err)
	}
	defer rows.Close()
	out := []store.User{}
	for rows.Next() {
		var u store.User
		if err := rows.Scan(&u.Name, &u.Role, &u.Created, &u.Updated); err != nil {
			return nil, fmt.Errorf("postgres store: ListUsers: %w", err)
		}
		u.Created, u.Updated = utc(u.Created), utc(u.Updated)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: ListUsers: %w", err)
	}
	return out, nil
}

// optTime is NULL for the zero time.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromOpt(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// PutToken implements store.Users.
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return errors.New("postgres store: PutToken: empty id or hash")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO tokens (id, name, role, hash, created, expires, last_used, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, t.Name, t.Role, t.Hash, t.Created, optTime(t.Expires), optTime(t.LastUsed), t.By)
	if err != nil {
		return fmt.Errorf("postgres store: PutToken: %w", err)
	}
	return nil
}

const tokenCols = `id, name, role, hash, created, expires, last_used, created_by`

func scanToken(row pgx.Row) (*store.Token, error) {
	var (
		t                store.Token
		expires, lastUse *time.Time
	)
	if err := row.Scan(&t.ID, &t.Name, &t.Role, &t.Hash, &t.Created, &expires, &lastUse, &t.By); err != nil {
		return nil, err
	}
	t.Created, t.Expires, t.LastUsed = utc(t.Created), fromOpt(expires), fromOpt(lastUse)
	return &t, nil
}

// GetToken implements store.Users.
func (s *Store) GetToken(ctx context.Context, id string) (*store.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("token %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres store: GetToken: %w", err)
	}
	return t, nil
}

// ListTokens implements store.Users.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY created DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: ListTokens: %w", err)
	}
	defer rows.Close()
	out := []store.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres store: ListTokens: %w", err)
		}
		t.Hash = nil
		out = append(out, *t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: ListTokens: %w", err)
	}
	return out, nil
}

// DeleteToken implements store.Users.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM tokens WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("postgres store: DeleteToken: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("token %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// TouchToken implements store.Users.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE tokens SET last_used = $1 WHERE id = $2`, at, id); err != nil {
		return fmt.Errorf("postgres store: TouchToken: %w", err)
	}
	return nil
}
