package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mailbrake/mailbrake/internal/store"
)

const insertAuditSQL = `INSERT INTO audit (time, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)`

// AppendAudit appends e to the audit log. It ignores e.ID; the store
// assigns one.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	if _, err := s.pool.Exec(ctx, insertAuditSQL, e.Time, text(e.Actor), text(string(e.Action)), text(e.Target), text(e.Detail)); err != nil {
		return fmt.Errorf("postgres store: AppendAudit: %w", err)
	}
	return nil
}

// AppendAudits implements store.Audit: every entry in one transaction, in
// order, sent in one round trip.
func (s *Store) AppendAudits(ctx context.Context, es []store.AuditEntry) error {
	if len(es) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, e := range es {
			b.Queue(insertAuditSQL, e.Time, text(e.Actor), text(string(e.Action)), text(e.Target), text(e.Detail))
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres store: AppendAudits: %w", err)
	}
	return nil
}

// ListAudit returns audit entries newest first (by Time, then ID). Target
// matches exactly, Since is inclusive, and a Limit of 0 or less means 100.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var (
		where []string
		a     args
	)
	if f.Target != "" {
		where = append(where, "target = "+a.add(f.Target))
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+a.add(f.Since))
	}
	q := `SELECT id, time, actor, action, target, detail FROM audit`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY time DESC, id DESC LIMIT ` + a.add(limit(f.Limit))
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: ListAudit: %w", err)
	}
	defer rows.Close()
	out := []store.AuditEntry{}
	for rows.Next() {
		var e store.AuditEntry
		if err := rows.Scan(&e.ID, &e.Time, &e.Actor, &e.Action, &e.Target, &e.Detail); err != nil {
			return nil, fmt.Errorf("postgres store: ListAudit: %w", err)
		}
		e.Time = utc(e.Time)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: ListAudit: %w", err)
	}
	return out, nil
}
