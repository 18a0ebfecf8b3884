package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

var _ store.Trust = (*Store)(nil)

// PutTrust implements store.Trust.
func (s *Store) PutTrust(ctx context.Context, e store.TrustEntry) (int64, error) {
	if e.Account == "" || e.ClientFamily == "" || e.Until.IsZero() {
		return 0, errors.New("sqlite store: PutTrust: account, client family and until are required")
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO trust (account, client_family, until, created, by, note, hold_id) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.Account, e.ClientFamily, toDB(e.Until), toDB(e.Created), e.By, e.Note, e.HoldID)
	if err != nil {
		return 0, fmt.Errorf("sqlite store: PutTrust: %w", err)
	}
	return res.LastInsertId()
}

// ListTrust implements store.Trust.
func (s *Store) ListTrust(ctx context.Context, at time.Time) ([]store.TrustEntry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, account, client_family, until, created, by, note, hold_id FROM trust WHERE until > ? ORDER BY until, id`, toDB(at))
	if err != nil {
		return nil, fmt.Errorf("sqlite store: ListTrust: %w", err)
	}
	defer rows.Close()
	out := []store.TrustEntry{}
	for rows.Next() {
		var (
			e              store.TrustEntry
			until, created int64
		)
		if err := rows.Scan(&e.ID, &e.Account, &e.ClientFamily, &until, &created, &e.By, &e.Note, &e.HoldID); err != nil {
			return nil, fmt.Errorf("sqlite store: ListTrust: %w", err)
		}
		e.Until, e.Created = fromDB(until), fromDB(created)
		out = append(out, e)
	}
	return out, rows.Err()
}

// DeleteTrust implements store.Trust.
func (s *Store) DeleteTrust(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM trust WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("sqlite store: DeleteTrust: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("trust entry %d: %w", id, store.ErrNotFound)
	}
	return nil
}
