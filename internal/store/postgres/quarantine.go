package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailbrake/mailbrake/internal/store"
)

const holdColumns = `id, queue_id, path, account, sender, recipients, recipient_count,
	subject, client, client_family, client_address, reasons, size, headers, preview,
	held_at, state, state_at, state_by, prints, node`

func scanHold(row pgx.Row) (*store.Hold, error) {
	var (
		h     store.Hold
		state string
	)
	err := row.Scan(&h.ID, &h.QueueID, &h.Path, &h.Account, &h.Sender, &h.Recipients, &h.RecipientCount,
		&h.Subject, &h.Client, &h.ClientFamily, &h.ClientAddress, &h.Reasons, &h.Size, &h.Headers, &h.Preview,
		&h.HeldAt, &state, &h.StateAt, &h.StateBy, &h.Prints, &h.Node)
	if err != nil {
		return nil, err
	}
	h.Recipients, h.Reasons = list(h.Recipients), list(h.Reasons)
	if len(h.Prints) == 0 {
		h.Prints = nil
	}
	h.HeldAt, h.StateAt, h.State = utc(h.HeldAt), utc(h.StateAt), store.HoldState(state)
	return &h, nil
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

const insertHoldSQL = `INSERT INTO holds (queue_id, path, account, sender, recipients,
	recipient_count, subject, client, client_family, client_address, reasons, size, headers,
	preview, held_at, state, state_at, state_by, prints, node)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`

func insertArgs(h *store.Hold) []any {
	return []any{h.QueueID, h.Path, h.Account, h.Sender, h.Recipients,
		h.RecipientCount, h.Subject, h.Client, h.ClientFamily, h.ClientAddress, h.Reasons, h.Size, h.Headers,
		h.Preview, h.HeldAt, string(h.State), h.StateAt, h.StateBy, list(h.Prints), h.Node}
}

// mergeAttempts bounds the rounds of one hold between "a held record of
// this queue ID exists" (the insert) and "it does not" (the lookup): each
// round means another node moved that record out of held meanwhile.
const mergeAttempts = 10

// PutHolds implements store.Quarantine: every hold in one transaction.
//
// Two nodes holding one message at once (the policy path on one, the
// milter path on the other) end with one record: the insert of a held
// record waits for, and then yields to, another transaction's insert of
// the same queue ID (the unique index), and a merge reads the record with
// FOR UPDATE, so merges of one record follow one another and none is
// lost.
func (s *Store) PutHolds(ctx context.Context, hs []*store.Hold) ([]store.PutResult, error) {
	ns := make([]store.Hold, len(hs))
	for i, h := range hs {
		if h == nil {
			return nil, errors.New("postgres store: PutHold: nil hold")
		}
		n := *h
		n.ID = 0
		n.Recipients = append([]string{}, h.Recipients...) // a copy, never nil, as when read back
		n.Reasons = store.Union(nil, h.Reasons)
		n.Prints = slices.Clone(h.Prints)
		if n.State == "" {
			n.State = store.HoldHeld
		}
		if !n.State.Valid() {
			return nil, fmt.Errorf("postgres store: PutHold: invalid state %q", n.State)
		}
		if n.StateAt.IsZero() {
			n.StateAt = n.HeldAt
		}
		n.HeldAt, n.StateAt = utcMicro(n.HeldAt), utcMicro(n.StateAt)
		cleanHold(&n)
		ns[i] = n
	}
	var out []store.PutResult
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		out = make([]store.PutResult, len(ns))
		for i := range ns {
			r, err := putHold(ctx, tx, ns[i])
			if err != nil {
				return err
			}
			out[i] = r
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres store: PutHold: %w", err)
	}
	return out, nil
}

// cleanHold makes every text of h one that PostgreSQL takes (see text).
// Reasons stay free of duplicates.
func cleanHold(h *store.Hold) {
	for _, p := range []*string{&h.QueueID, &h.Path, &h.Account, &h.Sender, &h.Subject, &h.Client,
		&h.ClientFamily, &h.ClientAddress, &h.Headers, &h.Preview, &h.StateBy, &h.Node} {
		*p = text(*p)
	}
	h.Recipients = texts(h.Recipients)
	h.Reasons = store.Union(nil, texts(h.Reasons))
	if h.Prints != nil {
		h.Prints = texts(h.Prints)
	}
}

func putHold(ctx context.Context, tx pgx.Tx, n store.Hold) (store.PutResult, error) {
	for range mergeAttempts {
		if n.QueueID != "" && n.State == store.HoldHeld {
			err := tx.QueryRow(ctx, insertHoldSQL+` ON CONFLICT (node, queue_id) WHERE queue_id <> '' AND state = 'held' DO NOTHING RETURNING id`,
				insertArgs(&n)...).Scan(&n.ID)
			if err == nil {
				return store.PutResult{Hold: &n, Created: true}, nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return store.PutResult{}, fmt.Errorf("inserting hold: %w", err)
			}
		}
		if n.QueueID != "" {
			old, err := scanHold(tx.QueryRow(ctx, `SELECT `+holdColumns+` FROM holds
				WHERE node = $1 AND queue_id = $2 AND queue_id <> '' AND state = 'held' FOR UPDATE`, n.Node, n.QueueID))
			switch {
			case err == nil:
				old.Merge(&n)
				if err := updateHold(ctx, tx, old); err != nil {
					return store.PutResult{}, err
				}
				return store.PutResult{Hold: old}, nil
			case !errors.Is(err, pgx.ErrNoRows):
				return store.PutResult{}, fmt.Errorf("looking up queue id: %w", err)
			case n.State == store.HoldHeld:
				continue // the held record left the hold queue since the insert: insert again
			}
		}
		if err := tx.QueryRow(ctx, insertHoldSQL+` RETURNING id`, insertArgs(&n)...).Scan(&n.ID); err != nil {
			return store.PutResult{}, fmt.Errorf("inserting hold: %w", err)
		}
		return store.PutResult{Hold: &n, Created: true}, nil
	}
	return store.PutResult{}, fmt.Errorf("queue id %q: the held record kept changing", n.QueueID)
}

// updateHold writes the fields a merge may change.
func updateHold(ctx context.Context, tx pgx.Tx, h *store.Hold) error {
	_, err := tx.Exec(ctx, `UPDATE holds SET path = $1, account = $2, sender = $3, recipients = $4,
		recipient_count = $5, subject = $6, client = $7, client_family = $8, client_address = $9, reasons = $10,
		size = $11, headers = $12, preview = $13, held_at = $14, prints = $15, node = $16 WHERE id = $17`,
		h.Path, h.Account, h.Sender, list(h.Recipients),
		h.RecipientCount, h.Subject, h.Client, h.ClientFamily, h.ClientAddress, list(h.Reasons),
		h.Size, h.Headers, h.Preview, h.HeldAt, list(h.Prints), h.Node, h.ID)
	if err != nil {
		return fmt.Errorf("updating hold %d: %w", h.ID, err)
	}
	h.HeldAt = utcMicro(h.HeldAt)
	return nil
}

// GetHold returns one hold by ID, or an error wrapping store.ErrNotFound.
func (s *Store) GetHold(ctx context.Context, id int64) (*store.Hold, error) {
	h, err := scanHold(s.pool.QueryRow(ctx, `SELECT `+holdColumns+` FROM holds WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("hold %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres store: GetHold %d: %w", id, err)
	}
	return h, nil
}

// HoldByQueueID returns the newest hold with this Postfix queue ID, or an
// error wrapping store.ErrNotFound. The empty queue ID matches nothing.
func (s *Store) HoldByQueueID(ctx context.Context, queueID string) (*store.Hold, error) {
	h, err := scanHold(s.pool.QueryRow(ctx,
		`SELECT `+holdColumns+` FROM holds WHERE queue_id = $1 AND queue_id <> '' ORDER BY id DESC LIMIT 1`, text(queueID)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("hold with queue id %q: %w", queueID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres store: HoldByQueueID %q: %w", queueID, err)
	}
	return h, nil
}

// args collects a query's arguments and names their placeholders.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// holdWhere is the WHERE clause of a hold filter ("" when it selects
// all); it adds its arguments to a.
func holdWhere(f store.HoldFilter, a *args) string {
	var where []string
	if f.State != "" {
		where = append(where, "state = "+a.add(string(f.State)))
	}
	if f.Account != "" {
		where = append(where, "account = "+a.add(f.Account))
	}
	if f.Reason != "" {
		where = append(where, "reasons @> ARRAY["+a.add(f.Reason)+"::text]")
	}
	if f.ClientFamily != "" {
		where = append(where, "client_family = "+a.add(f.ClientFamily))
	}
	if f.Node != "" {
		where = append(where, "node = "+a.add(f.Node))
	}
	if !f.Since.IsZero() {
		where = append(where, "held_at >= "+a.add(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "held_at < "+a.add(f.Until))
	}
	if f.Through > 0 {
		where = append(where, "id <= "+a.add(f.Through))
	}
	if f.Query != "" {
		p := a.add("%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(strings.ToLower(f.Query)) + "%")
		match := `lower(sender) LIKE ` + p + ` ESCAPE '\' OR EXISTS (SELECT 1 FROM unnest(recipients) AS r WHERE lower(r) LIKE ` + p + ` ESCAPE '\')`
		if !f.QueryNoSubject {
			match = `lower(subject) LIKE ` + p + ` ESCAPE '\' OR ` + match
		}
		where = append(where, "("+match+")")
	}
	if len(where) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(where, " AND ")
}

// ListHolds returns holds newest first (by HeldAt, then ID). A Limit of 0
// or less means 100; a negative Offset means 0.
func (s *Store) ListHolds(ctx context.Context, f store.HoldFilter) ([]store.Hold, error) {
	var a args
	q := `SELECT ` + holdColumns + ` FROM holds` + holdWhere(f, &a)
	q += ` ORDER BY held_at DESC, id DESC LIMIT ` + a.add(limit(f.Limit)) + ` OFFSET ` + a.add(max(f.Offset, 0))
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: ListHolds: %w", err)
	}
	defer rows.Close()
	out := []store.Hold{}
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres store: ListHolds: %w", err)
		}
		out = append(out, *h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: ListHolds: %w", err)
	}
	return out, nil
}

// CountHolds implements store.Quarantine.
func (s *Store) CountHolds(ctx context.Context, f store.HoldFilter) (store.HoldCount, error) {
	var a args
	var c store.HoldCount
	if err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(max(id), 0) FROM holds`+holdWhere(f, &a), a...).Scan(&c.N, &c.Newest); err != nil {
		return store.HoldCount{}, fmt.Errorf("postgres store: CountHolds: %w", err)
	}
	return c, nil
}

// SetHoldState moves hold id from state from to state to, recording by and
// at. It returns an error wrapping store.ErrConflict when the hold is not in
// state from, store.ErrNotFound when there is no such hold, and a plain
// error when to is not a known state.
func (s *Store) SetHoldState(ctx context.Context, id int64, from, to store.HoldState, by string, at time.Time) error {
	if !to.Valid() {
		return fmt.Errorf("postgres store: SetHoldState: invalid state %q", to)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE holds SET state = $1, state_at = $2, state_by = $3 WHERE id = $4 AND state = $5`,
		string(to), at, text(by), id, string(from))
	if err != nil {
		return fmt.Errorf("postgres store: SetHoldState %d: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var cur string
	err = s.pool.QueryRow(ctx, `SELECT state FROM holds WHERE id = $1`, id).Scan(&cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("hold %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres store: SetHoldState %d: %w", id, err)
	}
	return fmt.Errorf("hold %d is %s, not %s: %w", id, cur, from, store.ErrConflict)
}

// HeldStats returns how many messages are on hold and when the oldest was
// held (zero without any).
func (s *Store) HeldStats(ctx context.Context) (int, time.Time, error) {
	var (
		n      int
		oldest *time.Time
	)
	if err := s.pool.QueryRow(ctx, `SELECT count(*), min(held_at) FROM holds WHERE state = 'held'`).Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, fmt.Errorf("postgres store: HeldStats: %w", err)
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, utc(*oldest), nil
}
