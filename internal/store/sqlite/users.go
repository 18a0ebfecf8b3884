package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

var _ store.Users = (*Store)(nil)

// GetUser implements store.Users.
func (s *Store) GetUser(ctx context.Context, name string) (*store.User, error) {
	var (
		u                store.User
		created, updated int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT name, role, hash, created, updated FROM users WHERE name = ?`, name).Scan(&u.Name, &u.Role, &u.Hash, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite store: GetUser: %w", err)
	}
	u.Created, u.Updated = fromDB(created), fromDB(updated)
	return &u, nil
}

// PutUser implements store.Users.
func (s *Store) PutUser(ctx context.Context, u store.User) error {
	if u.Name == "" || u.Hash == "" {
		return errors.New("sqlite store: PutUser: empty name or hash")
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO users (name, role, hash, created, updated) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash, updated = excluded.updated`,
		u.Name, u.Role, u.Hash, toDB(u.Created), toDB(u.Updated))
	if err != nil {
		return fmt.Errorf("sqlite store: PutUser: %w", err)
	}
	return nil
}

// DeleteUser implements store.Users.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("sqlite store: DeleteUser: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// ListUsers implements store.Users.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, role, created, updated FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: ListUsers: %w", err)
	}
	defer rows.Close()
	out := []store.User{}
	for rows.Next() {
		var (
			u                store.User
			created, updated int64
		)
		if err := rows.Scan(&u.Name, &u.Role, &created, &updated); err != nil {
			return nil, fmt.Errorf("sqlite store: ListUsers: %w", err)
		}
		u.Created, u.Updated = fromDB(created), fromDB(updated)
		out = append(out, u)
	}
	return out, rows.Err()
}

func optTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return toDB(t)
}

func fromOpt(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return fromDB(us)
}

// PutToken implements store.Users.
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return errors.New("sqlite store: PutToken: empty id or hash")
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO tokens (id, name, role, hash, created, expires, last_used, by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.Role, t.Hash, toDB(t.Created), optTime(t.Expires), optTime(t.LastUsed), t.By)
	if err != nil {
		return fmt.Errorf("sqlite store: PutToken: %w", err)
	}
	return nil
}

const tokenCols = `id, name, role, hash, created, expires, last_used, by`

func scanToken(sc interface{ Scan(...any) error }) (*store.Token, error) {
	var (
		t                         store.Token
		created, expires, lastUse int64
	)
	if err := sc.Scan(&t.ID, &t.Name, &t.Role, &t.Hash, &created, &expires, &lastUse, &t.By); err != nil {
		return nil, err
	}
	t.Created, t.Expires, t.LastUsed = fromDB(created), fromOpt(expires), fromOpt(lastUse)
	return &t, nil
}

// GetToken implements store.Users.
func (s *Store) GetToken(ctx context.Context, id string) (*store.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("token %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite store: GetToken: %w", err)
	}
	return t, nil
}

// ListTokens implements store.Users.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY created DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: ListTokens: %w", err)
	}
	defer rows.Close()
	out := []store.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: ListTokens: %w", err)
		}
		t.Hash = nil
		out = append(out, *t)
	}
	return out, rows.Err()
}

// DeleteToken implements store.Users.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM tokens WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("sqlite store: DeleteToken: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// TouchToken implements store.Users.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE tokens SET last_used = ? WHERE id = ?`, toDB(at), id)
	if err != nil {
		return fmt.Errorf("sqlite store: TouchToken: %w", err)
	}
	return nil
}
