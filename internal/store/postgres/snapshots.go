package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/mailbrake/mailbrake/internal/store"
)

// snapshotChunk is how many snapshots one statement of SaveSnapshots
// writes: a daemon saves up to a million, and one array of them all would
// be one very large message.
const snapshotChunk = 5000

// SaveSnapshots stores each entry of snaps in one transaction: a non-nil
// value replaces the stored value of its key, a nil value deletes the key.
// Keys not in snaps are left as they are. Keys are written in order, so
// two nodes saving overlapping keys lock them in the same order.
func (s *Store) SaveSnapshots(ctx context.Context, snaps map[string][]byte) error {
	if len(snaps) == 0 {
		return nil
	}
	keys := make([]string, 0, len(snaps))
	for k := range snaps {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		for chunk := range slices.Chunk(keys, snapshotChunk) {
			var upKeys, upVals, delKeys [][]byte
			for _, k := range chunk {
				if v := snaps[k]; v == nil {
					delKeys = append(delKeys, []byte(k))
				} else {
					upKeys = append(upKeys, []byte(k))
					upVals = append(upVals, append(make([]byte, 0, len(v)), v...)) // empty, not NULL
				}
			}
			if len(upKeys) > 0 {
				if _, err := tx.Exec(ctx, `INSERT INTO snapshots (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[])
					ON CONFLICT (key) DO UPDATE SET value = excluded.value`, upKeys, upVals); err != nil {
					return err
				}
			}
			if len(delKeys) > 0 {
				if _, err := tx.Exec(ctx, `DELETE FROM snapshots WHERE key = ANY($1::bytea[])`, delKeys); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres store: SaveSnapshots: %w", err)
	}
	return nil
}

// LoadSnapshots returns every stored snapshot. Values are never nil; an
// empty value loads as an empty, non-nil slice.
func (s *Store) LoadSnapshots(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, value FROM snapshots`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: LoadSnapshots: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("postgres store: LoadSnapshots: %w", err)
		}
		if v == nil {
			v = []byte{}
		}
		out[string(k)] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: LoadSnapshots: %w", err)
	}
	return out, nil
}

// SnapshotPage returns up to limit snapshots with keys after after, in key
// order. Keys are bytea, which orders as Go compares strings.
func (s *Store) SnapshotPage(ctx context.Context, after string, limit int) ([]store.Snapshot, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT key, value FROM snapshots WHERE key > $1 ORDER BY key LIMIT $2`, []byte(after), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres store: SnapshotPage: %w", err)
	}
	defer rows.Close()
	out := make([]store.Snapshot, 0, limit)
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("postgres store: SnapshotPage: %w", err)
		}
		if v == nil {
			v = []byte{}
		}
		out = append(out, store.Snapshot{Key: string(k), Value: v})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: SnapshotPage: %w", err)
	}
	return out, nil
}
