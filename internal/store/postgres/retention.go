package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// pruneBatch bounds one pruning statement (its own transaction), so that
// holds being recorded never wait long behind it.
const pruneBatch = 1000

// Prune implements store.Retention. Two nodes pruning at once each skip
// the rows the other has locked, and both finish.
func (s *Store) Prune(ctx context.Context, p store.Prune) (store.Pruned, error) {
	var out store.Pruned
	var commands int64 // finished node commands: the audit keeps what they did
	steps := []struct {
		before time.Time
		n      *int64
		query  string
	}{
		{p.Previews, &out.Previews, `UPDATE holds SET headers = '', preview = '' WHERE id IN (
			SELECT id FROM holds WHERE state <> 'held' AND state_at < $1 AND (headers <> '' OR preview <> '')
			LIMIT $2 FOR UPDATE SKIP LOCKED)`},
		{p.Holds, &out.Holds, `DELETE FROM holds WHERE id IN (
			SELECT id FROM holds WHERE state <> 'held' AND state_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`},
		{p.Holds, &commands, `DELETE FROM node_commands WHERE id IN (
			SELECT id FROM node_commands WHERE state IN ('done', 'failed') AND done_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`},
		{p.Audit, &out.Audit, `DELETE FROM audit WHERE id IN (
			SELECT id FROM audit WHERE time < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`},
	}
	for _, st := range steps {
		if st.before.IsZero() {
			continue
		}
		for {
			tag, err := s.pool.Exec(ctx, st.query, st.before, pruneBatch)
			if err != nil {
				return out, fmt.Errorf("postgres store: Prune: %w", err)
			}
			n := tag.RowsAffected()
			*st.n += n
			if n < pruneBatch {
				break
			}
		}
	}
	return out, nil
}
