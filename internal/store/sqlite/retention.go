package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// pruneBatch bounds one pruning transaction, so that holds being recorded
// never wait long behind it.
const pruneBatch = 1000

// Prune implements store.Retention.
func (s *Store) Prune(ctx context.Context, p store.Prune) (store.Pruned, error) {
	var out store.Pruned
	steps := []struct {
		before time.Time
		n      *int64
		query  string
	}{
		{p.Previews, &out.Previews, `UPDATE holds SET headers = '', preview = '' WHERE id IN (
			SELECT id FROM holds WHERE state <> 'held' AND state_at < ? AND (headers <> '' OR preview <> '') LIMIT ?)`},
		{p.Holds, &out.Holds, `DELETE FROM holds WHERE id IN (
			SELECT id FROM holds WHERE state <> 'held' AND state_at < ? LIMIT ?)`},
		{p.Audit, &out.Audit, `DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE time < ? LIMIT ?)`},
	}
	for _, st := range steps {
		if st.before.IsZero() {
			continue
		}
		for {
			var n int64
			err := s.writeTx(ctx, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, st.query, toDB(st.before), pruneBatch)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return out, fmt.Errorf("sqlite store: Prune: %w", err)
			}
			*st.n += n
			if n < pruneBatch {
				break
			}
		}
	}
	return out, nil
}
