package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/mailbrake/mailbrake/internal/store"
)

// AppendAudit appends e to the audit log. It ignores e.ID; the store
// assigns one.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO audit (time, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)`,
		toDB(e.Time), e.Actor, string(e.Action), e.Target, e.Detail)
	if err != nil {
		return fmt.Errorf("sqlite store: AppendAudit: %w", err)
	}
	return nil
}

// AppendAudits implements store.Audit: every entry in one transaction.
func (s *Store) AppendAudits(ctx context.Context, es []store.AuditEntry) error {
	if len(es) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit (time, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range es {
			if _, err := stmt.ExecContext(ctx, toDB(e.Time), e.Actor, string(e.Action), e.Target, e.Detail); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite store: AppendAudits: %w", err)
	}
	return nil
}

// ListAudit returns audit entries newest first (by Time, then ID). Target
// matches exactly, Since is inclusive, and a Limit of 0 or less means 100.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var (
		where []string
		args  []any
	)
	if f.Target != "" {
		where = append(where, "target = ?")
		args = append(args, f.Target)
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, toDB(f.Since))
	}
	q := `SELECT id, time, actor, action, target, detail FROM audit`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY time DESC, id DESC LIMIT ?`
	args = append(args, limit(f.Limit))

	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: ListAudit: %w", err)
	}
	defer rows.Close()
	out := []store.AuditEntry{}
	for rows.Next() {
		var (
			e  store.AuditEntry
			us int64
		)
		if err := rows.Scan(&e.ID, &us, &e.Actor, &e.Action, &e.Target, &e.Detail); err != nil {
			return nil, fmt.Errorf("sqlite store: ListAudit: %w", err)
		}
		e.Time = fromDB(us)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: ListAudit: %w", err)
	}
	return out, nil
}
