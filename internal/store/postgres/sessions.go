package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailbrake/mailbrake/internal/store"
)

var _ store.Sessions = (*Store)(nil)

// PutSession implements store.Sessions.
func (s *Store) PutSession(ctx context.Context, se store.Session) error {
	if len(se.Hash) != 32 || se.User == "" {
		return errors.New("postgres store: PutSession: no hash or user")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (hash, name, role, user_updated, created, seen) VALUES ($1, $2, $3, $4, $5, $6)`,
		se.Hash, se.User, se.Role, se.UserUpdated, se.Created, se.Seen)
	if err != nil {
		return fmt.Errorf("postgres store: PutSession: %w", err)
	}
	return nil
}

// GetSession implements store.Sessions.
func (s *Store) GetSession(ctx context.Context, hash []byte) (*store.Session, error) {
	var se store.Session
	err := s.pool.QueryRow(ctx, `SELECT hash, name, role, user_updated, created, seen FROM sessions WHERE hash = $1`, hash).
		Scan(&se.Hash, &se.User, &se.Role, &se.UserUpdated, &se.Created, &se.Seen)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("session: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres store: GetSession: %w", err)
	}
	se.UserUpdated, se.Created, se.Seen = utc(se.UserUpdated), utc(se.Created), utc(se.Seen)
	return &se, nil
}

// TouchSession implements store.Sessions.
func (s *Store) TouchSession(ctx context.Context, hash []byte, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE sessions SET seen = $1 WHERE hash = $2 AND seen < $1`, at, hash); err != nil {
		return fmt.Errorf("postgres store: TouchSession: %w", err)
	}
	return nil
}

// DeleteSession implements store.Sessions.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, hash); err != nil {
		return fmt.Errorf("postgres store: DeleteSession: %w", err)
	}
	return nil
}

// DeleteUserSessions implements store.Sessions.
func (s *Store) DeleteUserSessions(ctx context.Context, user string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE name = $1`, user)
	if err != nil {
		return 0, fmt.Errorf("postgres store: DeleteUserSessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// PruneSessions implements store.Sessions.
func (s *Store) PruneSessions(ctx context.Context, seenBefore, createdBefore time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE seen < $1 OR created < $2`, seenBefore, createdBefore)
	if err != nil {
		return 0, fmt.Errorf("postgres store: PruneSessions: %w", err)
	}
	return tag.RowsAffected(), nil
}
