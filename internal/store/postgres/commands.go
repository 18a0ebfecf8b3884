package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailbrake/mailbrake/internal/store"
)

var _ store.Commands = (*Store)(nil)

// commandChannel is the NOTIFY channel of node commands; the payload is
// the node that has work.
const commandChannel = "mailbrake_node_commands"

const commandColumns = `id, node, op, hold_id, actor, from_node, created_at, state, detail, done_at`

func scanCommand(row pgx.Row) (*store.NodeCommand, error) {
	var c store.NodeCommand
	var op, state string
	var done *time.Time
	if err := row.Scan(&c.ID, &c.Node, &op, &c.HoldID, &c.Actor, &c.From, &c.CreatedAt, &state, &c.Detail, &done); err != nil {
		return nil, err
	}
	c.Op, c.State = store.HoldState(op), store.CommandState(state)
	c.CreatedAt = c.CreatedAt.UTC()
	if done != nil {
		c.DoneAt = done.UTC()
	}
	return &c, nil
}

// commandLockClass is the first key of the transaction-scoped advisory
// lock SubmitCommand takes per hold (the two-key form, which does not
// overlap the one-key locks elsewhere).
const commandLockClass = 0x4d42434d // "MBCM"

// SubmitCommand implements store.Commands: the row and the notification
// commit together. A hold has one command waiting at most: a second,
// while one is pending or running, is refused (store.ErrConflict) — two
// admins releasing and deleting one hold at the same moment cannot both
// queue, whichever node each asks on.
func (s *Store) SubmitCommand(ctx context.Context, c store.NodeCommand) (int64, error) {
	if c.Op != store.HoldReleased && c.Op != store.HoldDeleted {
		return 0, fmt.Errorf("postgres store: SubmitCommand: op %q is not released or deleted", c.Op)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	var id int64
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		// Submits for one hold one at a time: the check below and the
		// insert are then one step.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int, ($2::bigint % 2147483647)::int)`, commandLockClass, c.HoldID); err != nil {
			return err
		}
		var waiting int64
		switch err := tx.QueryRow(ctx, `SELECT id FROM node_commands WHERE hold_id = $1 AND state IN ('pending', 'running') ORDER BY id LIMIT 1`, c.HoldID).Scan(&waiting); {
		case err == nil:
			return fmt.Errorf("hold %d: command %d waits: %w", c.HoldID, waiting, store.ErrConflict)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO node_commands (node, op, hold_id, actor, from_node, created_at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			text(c.Node), string(c.Op), c.HoldID, text(c.Actor), text(c.From), c.CreatedAt).Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, commandChannel, text(c.Node))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres store: SubmitCommand: %w", err)
	}
	return id, nil
}

// Command implements store.Commands.
func (s *Store) Command(ctx context.Context, id int64) (*store.NodeCommand, error) {
	c, err := scanCommand(s.pool.QueryRow(ctx, `SELECT `+commandColumns+` FROM node_commands WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres store: Command: %w", err)
	}
	return c, nil
}

// ClaimCommands implements store.Commands. SKIP LOCKED: two claims at
// once (a restarted node's old and new process) never take one command
// twice.
func (s *Store) ClaimCommands(ctx context.Context, node string, n int) ([]store.NodeCommand, error) {
	var out []store.NodeCommand
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `UPDATE node_commands SET state = 'running'
			WHERE id IN (SELECT id FROM node_commands WHERE node = $1 AND state = 'pending' ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING `+commandColumns, text(node), n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanCommand(rows)
			if err != nil {
				return err
			}
			out = append(out, *c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres store: ClaimCommands: %w", err)
	}
	// RETURNING does not keep the subquery's order.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ID < out[j-1].ID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// FinishCommand implements store.Commands.
func (s *Store) FinishCommand(ctx context.Context, id int64, state store.CommandState, detail string) error {
	if state != store.CommandDone && state != store.CommandFailed {
		return fmt.Errorf("postgres store: FinishCommand: state %q is not done or failed", state)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE node_commands SET state = $2, detail = $3, done_at = now() WHERE id = $1 AND state = 'running'`,
		id, string(state), text(detail))
	if err != nil {
		return fmt.Errorf("postgres store: FinishCommand: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres store: FinishCommand %d: %w", id, store.ErrConflict)
	}
	return nil
}

// WaitingCommands implements store.Commands.
func (s *Store) WaitingCommands(ctx context.Context, holdID int64) ([]store.NodeCommand, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+commandColumns+` FROM node_commands WHERE hold_id = $1 AND state IN ('pending', 'running') ORDER BY id`, holdID)
	if err != nil {
		return nil, fmt.Errorf("postgres store: WaitingCommands: %w", err)
	}
	defer rows.Close()
	var out []store.NodeCommand
	for rows.Next() {
		c, err := scanCommand(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres store: WaitingCommands: %w", err)
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: WaitingCommands: %w", err)
	}
	return out, nil
}

// RetireNode implements store.Commands, in one transaction.
func (s *Store) RetireNode(ctx context.Context, node, actor string, at time.Time) (holds, commands int, err error) {
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM nodes WHERE node = $1`, text(node))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		tag, err = tx.Exec(ctx, `UPDATE node_commands SET state = 'failed', detail = 'node retired', done_at = now()
			WHERE node = $1 AND state IN ('pending', 'running')`, text(node))
		if err != nil {
			return err
		}
		commands = int(tag.RowsAffected())
		tag, err = tx.Exec(ctx, `UPDATE holds SET state = 'deleted', state_at = $2, state_by = $3 WHERE node = $1 AND state = 'held'`,
			text(node), at, text(actor))
		if err != nil {
			return err
		}
		holds = int(tag.RowsAffected())
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, 0, err
	}
	if err != nil {
		return 0, 0, fmt.Errorf("postgres store: RetireNode: %w", err)
	}
	return holds, commands, nil
}

// RequeueCommands implements store.Commands.
func (s *Store) RequeueCommands(ctx context.Context, node string) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE node_commands SET state = 'pending' WHERE node = $1 AND state = 'running'`, text(node))
	if err != nil {
		return 0, fmt.Errorf("postgres store: RequeueCommands: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// ListenCommands implements store.Commands on a connection of its own.
func (s *Store) ListenCommands(ctx context.Context, node string, wake func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres store: ListenCommands: %w", err)
	}
	// LISTEN belongs to the session: the connection leaves the pool and
	// is closed here.
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx))
	if _, err := pc.Exec(ctx, `LISTEN `+commandChannel); err != nil {
		return fmt.Errorf("postgres store: ListenCommands: %w", err)
	}
	wake() // what was submitted before LISTEN
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("postgres store: ListenCommands: %w", err)
		}
		if n.Payload == node {
			wake()
		}
	}
}

// Heartbeat implements store.Commands. The statement's snapshot is taken
// before its write: prev is the row as it was.
func (s *Store) Heartbeat(ctx context.Context, node, version, instance string) (bool, error) {
	var prev *string
	err := s.pool.QueryRow(ctx, `WITH prev AS (SELECT instance FROM nodes WHERE node = $1)
		INSERT INTO nodes (node, seen_at, version, instance) VALUES ($1, now(), $2, $3)
		ON CONFLICT (node) DO UPDATE SET seen_at = now(), version = excluded.version, instance = excluded.instance
		RETURNING (SELECT instance FROM prev)`, text(node), text(version), text(instance)).Scan(&prev)
	if err != nil {
		return false, fmt.Errorf("postgres store: Heartbeat: %w", err)
	}
	return prev != nil && *prev != instance, nil
}

// Nodes implements store.Commands. The age is the database's now()
// minus the heartbeat it stamped with now(): one clock. The pending
// count reads the partial index of pending commands.
func (s *Store) Nodes(ctx context.Context) ([]store.NodeStatus, error) {
	rows, err := s.pool.Query(ctx, `SELECT n.node, n.seen_at, n.version, now() - n.seen_at,
			(SELECT count(*) FROM node_commands c WHERE c.node = n.node AND c.state = 'pending')
		FROM nodes n ORDER BY n.node`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: Nodes: %w", err)
	}
	defer rows.Close()
	var out []store.NodeStatus
	for rows.Next() {
		var n store.NodeStatus
		var pending int64
		if err := rows.Scan(&n.Node, &n.SeenAt, &n.Version, &n.Age, &pending); err != nil {
			return nil, fmt.Errorf("postgres store: Nodes: %w", err)
		}
		n.SeenAt, n.Pending = n.SeenAt.UTC(), int(pending)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: Nodes: %w", err)
	}
	return out, nil
}
