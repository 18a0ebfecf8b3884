package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// PutTrust implements store.Trust.
func (s *Store) PutTrust(ctx context.Context, e store.TrustEntry) (int64, error) {
	if e.Account == "" || e.ClientFamily == "" || e.Until.IsZero() {
		return 0, errors.New("postgres store: PutTrust: account, client family and until are required")
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO trust (account, client_family, until, created, created_by, note, hold_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		e.Account, e.ClientFamily, e.Until, e.Created, e.By, e.Note, e.HoldID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("postgres store: PutTrust: %w", err)
	}
	return id, nil
}

// ListTrust implements store.Trust.
func (s *Store) ListTrust(ctx context.Context, at time.Time) ([]store.TrustEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, account, client_family, until, created, created_by, note, hold_id
		FROM trust WHERE until > $1 ORDER BY until, id`, at)
	if err != nil {
		return nil, fmt.Errorf("postgres store: ListTrust: %w", err)
	}
	defer rows.Close()
	out := []store.TrustEntry{}
	for rows.Next() {
		var e store.TrustEntry
		if err := rows.Scan(&e.ID, &e.Account, &e.ClientFamily, &e.Until, &e.Created, &e.By, &e.Note, &e.HoldID); err != nil {
			return nil, fmt.Errorf("postgres store: ListTrust: %w", err)
		}
		e.Until, e.Created = utc(e.Until), utc(e.Created)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: ListTrust: %w", err)
	}
	return out, nil
}

// DeleteTrust implements store.Trust.
func (s *Store) DeleteTrust(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM trust WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("postgres store: DeleteTrust: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("trust entry %d: %w", id, store.ErrNotFound)
	}
	return nil
}
