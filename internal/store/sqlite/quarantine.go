package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

const holdColumns = `id, queue_id, path, account, sender, recipients, recipient_count,
	subject, client, client_family, client_address, reasons, size, headers, preview,
	held_at, state, state_at, state_by, prints, node`

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanHold(sc scanner) (*store.Hold, error) {
	var (
		h                   store.Hold
		recipients, reasons string
		prints              string
		heldAt, stateAt     int64
		state               string
	)
	err := sc.Scan(&h.ID, &h.QueueID, &h.Path, &h.Account, &h.Sender, &recipients, &h.RecipientCount,
		&h.Subject, &h.Client, &h.ClientFamily, &h.ClientAddress, &reasons, &h.Size, &h.Headers, &h.Preview,
		&heldAt, &state, &stateAt, &h.StateBy, &prints, &h.Node)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(prints), &h.Prints); err != nil {
		return nil, fmt.Errorf("hold %d: decoding prints: %w", h.ID, err)
	}
	if len(h.Prints) == 0 {
		h.Prints = nil
	}
	if err := json.Unmarshal([]byte(recipients), &h.Recipients); err != nil {
		return nil, fmt.Errorf("hold %d: decoding recipients: %w", h.ID, err)
	}
	if err := json.Unmarshal([]byte(reasons), &h.Reasons); err != nil {
		return nil, fmt.Errorf("hold %d: decoding reasons: %w", h.ID, err)
	}
	h.HeldAt, h.StateAt, h.State = fromDB(heldAt), fromDB(stateAt), store.HoldState(state)
	return &h, nil
}

// encodeList encodes a string list as a JSON array; nil becomes [].
func encodeList(l []string) (string, error) {
	if l == nil {
		l = []string{}
	}
	b, err := json.Marshal(l)
	return string(b), err
}

// PutHold records a hold, merging it into the record with the same
// non-empty QueueID when there is one (see store.Quarantine). It ignores
// h.ID and does not modify *h. An empty State means store.HoldHeld and a
// zero StateAt means HeldAt.
func (s *Store) PutHold(ctx context.Context, h *store.Hold) (*store.Hold, error) {
	res, err := s.PutHolds(ctx, []*store.Hold{h})
	if err != nil {
		return nil, err
	}
	return res[0].Hold, nil
}

// PutHolds implements store.Quarantine: every hold in one transaction.
func (s *Store) PutHolds(ctx context.Context, hs []*store.Hold) ([]store.PutResult, error) {
	ns := make([]store.Hold, len(hs))
	for i, h := range hs {
		if h == nil {
			return nil, errors.New("sqlite store: PutHold: nil hold")
		}
		n := *h
		n.ID = 0
		n.Recipients = append([]string{}, h.Recipients...) // a copy, never nil, as when read back
		n.Reasons = store.Union(nil, h.Reasons)
		if n.State == "" {
			n.State = store.HoldHeld
		}
		if !n.State.Valid() {
			return nil, fmt.Errorf("sqlite store: PutHold: invalid state %q", n.State)
		}
		if n.StateAt.IsZero() {
			n.StateAt = n.HeldAt
		}
		ns[i] = n
	}
	out := make([]store.PutResult, len(ns))
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		// Prepared once per batch: parsing the statements again for every
		// hold costs more than running them.
		lookup, err := tx.PrepareContext(ctx, `SELECT `+holdColumns+` FROM holds WHERE node = ? AND queue_id = ? AND queue_id <> '' AND state = 'held'`)
		if err != nil {
			return err
		}
		defer lookup.Close()
		insert, err := tx.PrepareContext(ctx, insertHoldSQL)
		if err != nil {
			return err
		}
		defer insert.Close()
		// A held record of the same node and queue ID (the other protocol
		// path held the message first) is merged into; the insert finds out, so the
		// usual case costs no lookup.
		insertNew, err := tx.PrepareContext(ctx, insertHoldSQL+` ON CONFLICT (node, queue_id) WHERE queue_id <> '' AND state = 'held' DO NOTHING`)
		if err != nil {
			return err
		}
		defer insertNew.Close()
		for i := range ns {
			n := &ns[i]
			if n.QueueID != "" && n.State == store.HoldHeld {
				id, err := insertHoldStmt(ctx, insertNew, n)
				if err != nil {
					return err
				}
				if id != 0 {
					n.ID = id
					c := *n
					out[i] = store.PutResult{Hold: &c, Created: true}
					continue
				}
			}
			if n.QueueID != "" {
				old, err := scanHold(lookup.QueryRowContext(ctx, n.Node, n.QueueID))
				switch {
				case err == nil:
					old.Merge(n)
					if err := updateHold(ctx, tx, old); err != nil {
						return err
					}
					out[i] = store.PutResult{Hold: old}
					continue
				case !errors.Is(err, sql.ErrNoRows):
					return fmt.Errorf("looking up queue id: %w", err)
				}
			}
			id, err := insertHoldStmt(ctx, insert, n)
			if err != nil {
				return err
			}
			n.ID = id
			c := *n
			out[i] = store.PutResult{Hold: &c, Created: true}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite store: PutHold: %w", err)
	}
	for _, r := range out {
		r.Hold.HeldAt, r.Hold.StateAt = fromDB(toDB(r.Hold.HeldAt)), fromDB(toDB(r.Hold.StateAt))
	}
	return out, nil
}

const insertHoldSQL = `INSERT INTO holds (queue_id, path, account, sender, recipients,
		recipient_count, subject, client, client_family, client_address, reasons, size, headers,
		preview, held_at, state, state_at, state_by, prints, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func insertHoldStmt(ctx context.Context, stmt *sql.Stmt, h *store.Hold) (int64, error) {
	recipients, err := encodeList(h.Recipients)
	if err != nil {
		return 0, err
	}
	reasons, err := encodeList(h.Reasons)
	if err != nil {
		return 0, err
	}
	prints, err := encodeList(h.Prints)
	if err != nil {
		return 0, err
	}
	res, err := stmt.ExecContext(ctx, h.QueueID, h.Path, h.Account, h.Sender, recipients,
		h.RecipientCount, h.Subject, h.Client, h.ClientFamily, h.ClientAddress, reasons, h.Size, h.Headers,
		h.Preview, toDB(h.HeldAt), string(h.State), toDB(h.StateAt), h.StateBy, prints, h.Node)
	if err != nil {
		return 0, fmt.Errorf("inserting hold: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return 0, nil // ON CONFLICT DO NOTHING
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("inserting hold: %w", err)
	}
	return id, nil
}

// updateHold writes the fields a merge may change.
func updateHold(ctx context.Context, tx *sql.Tx, h *store.Hold) error {
	recipients, err := encodeList(h.Recipients)
	if err != nil {
		return err
	}
	reasons, err := encodeList(h.Reasons)
	if err != nil {
		return err
	}
	prints, err := encodeList(h.Prints)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE holds SET path = ?, account = ?, sender = ?, recipients = ?,
		recipient_count = ?, subject = ?, client = ?, client_family = ?, client_address = ?, reasons = ?,
		size = ?, headers = ?, preview = ?, held_at = ?, prints = ?, node = ? WHERE id = ?`,
		h.Path, h.Account, h.Sender, recipients,
		h.RecipientCount, h.Subject, h.Client, h.ClientFamily, h.ClientAddress, reasons,
		h.Size, h.Headers, h.Preview, toDB(h.HeldAt), prints, h.Node, h.ID)
	if err != nil {
		return fmt.Errorf("updating hold %d: %w", h.ID, err)
	}
	return nil
}

// GetHold returns one hold by ID, or an error wrapping store.ErrNotFound.
func (s *Store) GetHold(ctx context.Context, id int64) (*store.Hold, error) {
	h, err := scanHold(s.r.QueryRowContext(ctx, `SELECT `+holdColumns+` FROM holds WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("hold %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite store: GetHold %d: %w", id, err)
	}
	return h, nil
}

// HoldByQueueID returns the hold with this Postfix queue ID, or an error
// wrapping store.ErrNotFound. The empty queue ID matches nothing.
func (s *Store) HoldByQueueID(ctx context.Context, queueID string) (*store.Hold, error) {
	// Postfix reuses queue IDs; the newest record is the current message.
	h, err := scanHold(s.r.QueryRowContext(ctx,
		`SELECT `+holdColumns+` FROM holds WHERE queue_id = ? AND queue_id <> '' ORDER BY id DESC LIMIT 1`, queueID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("hold with queue id %q: %w", queueID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite store: HoldByQueueID %q: %w", queueID, err)
	}
	return h, nil
}

// holdWhere is the WHERE clause of a hold filter ("" when it selects
// all) and its arguments.
func holdWhere(f store.HoldFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	if f.State != "" {
		where = append(where, "state = ?")
		args = append(args, string(f.State))
	}
	if f.Account != "" {
		where = append(where, "account = ?")
		args = append(args, f.Account)
	}
	if f.Reason != "" {
		where = append(where, "EXISTS (SELECT 1 FROM json_each(holds.reasons) WHERE value = ?)")
		args = append(args, f.Reason)
	}
	if f.ClientFamily != "" {
		where = append(where, "client_family = ?")
		args = append(args, f.ClientFamily)
	}
	if f.Node != "" {
		where = append(where, "node = ?")
		args = append(args, f.Node)
	}
	if !f.Since.IsZero() {
		where = append(where, "held_at >= ?")
		args = append(args, toDB(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "held_at < ?")
		args = append(args, toDB(f.Until))
	}
	if f.Through > 0 {
		where = append(where, "id <= ?")
		args = append(args, f.Through)
	}
	if f.Query != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(strings.ToLower(f.Query)) + "%"
		if f.QueryNoSubject {
			where = append(where, `(lower(sender) LIKE ? ESCAPE '\' OR lower(recipients) LIKE ? ESCAPE '\')`)
			args = append(args, like, like)
		} else {
			where = append(where, `(lower(subject) LIKE ? ESCAPE '\' OR lower(sender) LIKE ? ESCAPE '\' OR lower(recipients) LIKE ? ESCAPE '\')`)
			args = append(args, like, like, like)
		}
	}
	if len(where) == 0 {
		return "", args
	}
	return ` WHERE ` + strings.Join(where, " AND "), args
}

// ListHolds returns holds newest first (by HeldAt, then ID). A Limit of 0
// or less means 100; a negative Offset means 0.
func (s *Store) ListHolds(ctx context.Context, f store.HoldFilter) ([]store.Hold, error) {
	where, args := holdWhere(f)
	q := `SELECT ` + holdColumns + ` FROM holds` + where
	q += ` ORDER BY held_at DESC, id DESC LIMIT ? OFFSET ?`
	args = append(args, limit(f.Limit), max(f.Offset, 0))

	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: ListHolds: %w", err)
	}
	defer rows.Close()
	out := []store.Hold{}
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: ListHolds: %w", err)
		}
		out = append(out, *h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: ListHolds: %w", err)
	}
	return out, nil
}

// SetHoldState moves hold id from state from to state to, recording by and
// at. It returns an error wrapping store.ErrConflict when the hold is not in
// state from, store.ErrNotFound when there is no such hold, and a plain
// error when to is not a known state.
func (s *Store) SetHoldState(ctx context.Context, id int64, from, to store.HoldState, by string, at time.Time) error {
	if !to.Valid() {
		return fmt.Errorf("sqlite store: SetHoldState: invalid state %q", to)
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE holds SET state = ?, state_at = ?, state_by = ? WHERE id = ? AND state = ?`,
			string(to), toDB(at), by, id, string(from))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 1 {
			return nil
		}
		var cur string
		err = tx.QueryRowContext(ctx, `SELECT state FROM holds WHERE id = ?`, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("hold %d: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("hold %d is %s, not %s: %w", id, cur, from, store.ErrConflict)
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			return err
		}
		return fmt.Errorf("sqlite store: SetHoldState %d: %w", id, err)
	}
	return nil
}

// limit applies the default list size.
func limit(n int) int {
	if n <= 0 {
		return defaultLimit
	}
	return n
}

// HeldStats returns how many messages are on hold and when the oldest was
// held (zero without any).
func (s *Store) HeldStats(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*), min(held_at) FROM holds WHERE state = 'held'`).Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, fmt.Errorf("sqlite store: HeldStats: %w", err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, fromDB(oldest.Int64), nil
}

// CountHolds implements store.Quarantine.
func (s *Store) CountHolds(ctx context.Context, f store.HoldFilter) (store.HoldCount, error) {
	where, args := holdWhere(f)
	var c store.HoldCount
	if err := s.r.QueryRowContext(ctx, `SELECT count(*), coalesce(max(id), 0) FROM holds`+where, args...).Scan(&c.N, &c.Newest); err != nil {
		return store.HoldCount{}, fmt.Errorf("sqlite store: CountHolds: %w", err)
	}
	return c, nil
}
