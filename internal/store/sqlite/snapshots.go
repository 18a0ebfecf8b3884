package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/mailbrake/mailbrake/internal/store"
)

// SaveSnapshots stores each entry of snaps in one transaction: a non-nil
// value replaces the stored value of its key, a nil value deletes the key.
// Keys not in snaps are left as they are.
func (s *Store) SaveSnapshots(ctx context.Context, snaps map[string][]byte) error {
	if len(snaps) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		upsert, err := tx.PrepareContext(ctx,
			`INSERT INTO snapshots (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`)
		if err != nil {
			return err
		}
		defer upsert.Close()
		del, err := tx.PrepareContext(ctx, `DELETE FROM snapshots WHERE key = ?`)
		if err != nil {
			return err
		}
		defer del.Close()
		// The rows run without a cancellable context: the driver starts a
		// goroutine to watch one for every statement, and a save writes
		// thousands of rows. Cancelling ctx still rolls the transaction
		// back (database/sql watches it once), failing the next row.
		rowCtx := context.WithoutCancel(ctx)
		for k, v := range snaps {
			if v == nil {
				_, err = del.ExecContext(rowCtx, k)
			} else {
				// A zero-length blob, not NULL: the value column is NOT NULL.
				_, err = upsert.ExecContext(rowCtx, k, append(make([]byte, 0, len(v)), v...))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite store: SaveSnapshots: %w", err)
	}
	return nil
}

// LoadSnapshots returns every stored snapshot. Values are never nil; an
// empty value loads as an empty, non-nil slice.
func (s *Store) LoadSnapshots(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT key, value FROM snapshots`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: LoadSnapshots: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var (
			k string
			v []byte
		)
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("sqlite store: LoadSnapshots: %w", err)
		}
		if v == nil {
			v = []byte{}
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: LoadSnapshots: %w", err)
	}
	return out, nil
}

// SnapshotPage returns up to limit snapshots with keys after after, in key
// order. Keys are TEXT compared with SQLite's default BINARY collation,
// which orders UTF-8 as Go compares strings.
func (s *Store) SnapshotPage(ctx context.Context, after string, limit int) ([]store.Snapshot, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT key, value FROM snapshots WHERE key > ? ORDER BY key LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: SnapshotPage: %w", err)
	}
	defer rows.Close()
	out := make([]store.Snapshot, 0, limit)
	for rows.Next() {
		var sn store.Snapshot
		if err := rows.Scan(&sn.Key, &sn.Value); err != nil {
			return nil, fmt.Errorf("sqlite store: SnapshotPage: %w", err)
		}
		if sn.Value == nil {
			sn.Value = []byte{}
		}
		out = append(out, sn)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: SnapshotPage: %w", err)
	}
	return out, nil
}
