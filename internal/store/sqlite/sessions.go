package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

var _ store.Sessions = (*Store)(nil)

// PutSession implements store.Sessions.
func (s *Store) PutSession(ctx context.Context, se store.Session) error {
	if len(se.Hash) != 32 || se.User == "" {
		return errors.New("sqlite store: PutSession: no hash or user")
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO sessions (hash, name, role, user_updated, created, seen) VALUES (?, ?, ?, ?, ?, ?)`,
		se.Hash, se.User, se.Role, toDB(se.UserUpdated), toDB(se.Created), toDB(se.Seen))
	if err != nil {
		return fmt.Errorf("sqlite store: PutSession: %w", err)
	}
	return nil
}

// GetSession implements store.Sessions.
func (s *Store) GetSession(ctx context.Context, hash []byte) (*store.Session, error) {
	var (
		se                         store.Session
		userUpdated, created, seen int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT hash, name, role, user_updated, created, seen FROM sessions WHERE hash = ?`, hash).
		Scan(&se.Hash, &se.User, &se.Role, &userUpdated, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("session: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite store: GetSession: %w", err)
	}
	se.UserUpdated, se.Created, se.Seen = fromDB(userUpdated), fromDB(created), fromDB(seen)
	return &se, nil
}

// TouchSession implements store.Sessions.
func (s *Store) TouchSession(ctx context.Context, hash []byte, at time.Time) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE sessions SET seen = ? WHERE hash = ? AND seen < ?`, toDB(at), hash, toDB(at)); err != nil {
		return fmt.Errorf("sqlite store: TouchSession: %w", err)
	}
	return nil
}

// DeleteSession implements store.Sessions.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, hash); err != nil {
		return fmt.Errorf("sqlite store: DeleteSession: %w", err)
	}
	return nil
}

// DeleteUserSessions implements store.Sessions.
func (s *Store) DeleteUserSessions(ctx context.Context, user string) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE name = ?`, user)
	if err != nil {
		return 0, fmt.Errorf("sqlite store: DeleteUserSessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// PruneSessions implements store.Sessions.
func (s *Store) PruneSessions(ctx context.Context, seenBefore, createdBefore time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE seen < ? OR created < ?`, toDB(seenBefore), toDB(createdBefore))
	if err != nil {
		return 0, fmt.Errorf("sqlite store: PruneSessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
