package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema changes in order: applying migrations[i] moves
// a file from user_version i to i+1. Released entries never change; a new
// schema is a new entry at the end.
var migrations = [][]string{
	// 1: holds, audit, snapshots.
	{
		`CREATE TABLE holds (
			id              INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: ids appear in audit targets
			queue_id        TEXT    NOT NULL DEFAULT '',
			path            TEXT    NOT NULL DEFAULT '',
			account         TEXT    NOT NULL DEFAULT '',
			sender          TEXT    NOT NULL DEFAULT '',
			recipients      TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(recipients)),
			recipient_count INTEGER NOT NULL DEFAULT 0,
			subject         TEXT    NOT NULL DEFAULT '',
			client          TEXT    NOT NULL DEFAULT '',
			client_family   TEXT    NOT NULL DEFAULT '',
			client_address  TEXT    NOT NULL DEFAULT '',
			reasons         TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(reasons)),
			size            INTEGER NOT NULL DEFAULT 0,
			headers         TEXT    NOT NULL DEFAULT '',
			preview         TEXT    NOT NULL DEFAULT '',
			held_at         INTEGER NOT NULL, -- Unix microseconds, UTC
			state           TEXT    NOT NULL CHECK (state IN ('held', 'released', 'deleted', 'expired')),
			state_at        INTEGER NOT NULL, -- Unix microseconds, UTC
			state_by        TEXT    NOT NULL DEFAULT ''
		) STRICT`,
		// One held record per Postfix queue ID; holds without one never
		// collide. Postfix reuses short queue IDs once a queue file is gone,
		// so records no longer held may share an ID with a newer message.
		`CREATE UNIQUE INDEX holds_queue_id ON holds (queue_id) WHERE queue_id <> '' AND state = 'held'`,
		`CREATE INDEX holds_queue_id_all ON holds (queue_id, id DESC)`,
		// ListHolds: newest first, optionally by state and/or account.
		`CREATE INDEX holds_held_at ON holds (held_at DESC, id DESC)`,
		`CREATE INDEX holds_state_held_at ON holds (state, held_at DESC, id DESC)`,
		`CREATE INDEX holds_account_held_at ON holds (account, held_at DESC, id DESC)`,

		`CREATE TABLE audit (
			id     INTEGER PRIMARY KEY AUTOINCREMENT,
			time   INTEGER NOT NULL, -- Unix microseconds, UTC
			actor  TEXT    NOT NULL,
			action TEXT    NOT NULL,
			target TEXT    NOT NULL,
			detail TEXT    NOT NULL DEFAULT ''
		) STRICT`,
		`CREATE INDEX audit_time ON audit (time DESC, id DESC)`,
		`CREATE INDEX audit_target_time ON audit (target, time DESC, id DESC)`,

		`CREATE TABLE snapshots (
			key   TEXT PRIMARY KEY,
			value BLOB NOT NULL
		) STRICT, WITHOUT ROWID`,
	},
	// 2: account states.
	{
		`CREATE TABLE accounts (
			name     TEXT    PRIMARY KEY,
			state    TEXT    NOT NULL CHECK (state IN ('normal', 'watch', 'restricted', 'locked')),
			state_at INTEGER NOT NULL, -- Unix microseconds, UTC
			state_by TEXT    NOT NULL DEFAULT '',
			reason   TEXT    NOT NULL DEFAULT ''
		) STRICT, WITHOUT ROWID`,
		`CREATE INDEX accounts_state_at ON accounts (state, state_at DESC)`,
		`CREATE INDEX accounts_at ON accounts (state_at DESC)`,
	},
	// 3: incidents. Reasons, evidence and steps are JSON: they are read
	// and written with their incident, never queried on their own.
	{
		`CREATE TABLE incidents (
			id       INTEGER PRIMARY KEY,
			account  TEXT    NOT NULL,
			state    TEXT    NOT NULL CHECK (state IN ('open', 'confirmed', 'contained', 'resolved', 'dismissed')),
			severity TEXT    NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
			playbook TEXT    NOT NULL DEFAULT '',
			reasons  TEXT    NOT NULL DEFAULT '[]',
			evidence TEXT    NOT NULL DEFAULT '[]',
			steps    TEXT    NOT NULL DEFAULT '[]',
			opened   INTEGER NOT NULL, -- Unix microseconds, UTC
			updated  INTEGER NOT NULL,
			state_by TEXT    NOT NULL DEFAULT '',
			note     TEXT    NOT NULL DEFAULT ''
		) STRICT`,
		// One active incident per account.
		`CREATE UNIQUE INDEX incidents_active_account ON incidents (account) WHERE state IN ('open', 'confirmed', 'contained')`,
		`CREATE INDEX incidents_updated ON incidents (updated DESC, id DESC)`,
		`CREATE INDEX incidents_account ON incidents (account, updated DESC)`,
	},
	// 4: users and API tokens of the web UI and REST API.
	{
		`CREATE TABLE users (
			name    TEXT    PRIMARY KEY,
			role    TEXT    NOT NULL CHECK (role IN ('admin', 'helpdesk', 'viewer')),
			hash    TEXT    NOT NULL,
			created INTEGER NOT NULL,
			updated INTEGER NOT NULL
		) STRICT, WITHOUT ROWID`,
		`CREATE TABLE tokens (
			id        TEXT    PRIMARY KEY,
			name      TEXT    NOT NULL,
			role      TEXT    NOT NULL CHECK (role IN ('admin', 'helpdesk', 'viewer')),
			hash      BLOB    NOT NULL,
			created   INTEGER NOT NULL,
			expires   INTEGER NOT NULL DEFAULT 0,
			last_used INTEGER NOT NULL DEFAULT 0,
			by        TEXT    NOT NULL DEFAULT ''
		) STRICT, WITHOUT ROWID`,
	},
	// 5: trust entries ("release and trust").
	{
		`CREATE TABLE trust (
			id            INTEGER PRIMARY KEY,
			account       TEXT    NOT NULL,
			client_family TEXT    NOT NULL,
			until         INTEGER NOT NULL,
			created       INTEGER NOT NULL,
			by            TEXT    NOT NULL DEFAULT '',
			note          TEXT    NOT NULL DEFAULT '',
			hold_id       INTEGER NOT NULL DEFAULT 0
		) STRICT`,
		`CREATE INDEX trust_until ON trust (until)`,
	},
	// 6: incident evidence in rows of its own. Adding a finding to an
	// incident no longer reads and rewrites every earlier one (a spam run
	// reports thousands), and a message's finding is recorded once per
	// reason by the unique index, not by reading the list first.
	{
		`CREATE TABLE incident_evidence (
			incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
			seq         INTEGER NOT NULL, -- 0, 1, … in the order added
			time        INTEGER NOT NULL, -- Unix microseconds, UTC
			reason      TEXT    NOT NULL DEFAULT '',
			detail      TEXT    NOT NULL DEFAULT '',
			hold_id     INTEGER NOT NULL DEFAULT 0,
			queue_id    TEXT    NOT NULL DEFAULT '',
			by          TEXT    NOT NULL DEFAULT '',
			PRIMARY KEY (incident_id, seq)
		) STRICT, WITHOUT ROWID`,
		`CREATE UNIQUE INDEX incident_evidence_message ON incident_evidence (incident_id, queue_id, reason) WHERE queue_id <> ''`,
		// Times were written by Go as RFC 3339 in UTC with up to six
		// fractional digits ("2026-05-01T10:00:00.123456Z").
		`INSERT OR IGNORE INTO incident_evidence (incident_id, seq, time, reason, detail, hold_id, queue_id, by)
			SELECT i.id, CAST(e.key AS INTEGER),
				unixepoch(substr(e.value ->> '$.time', 1, 19)) * 1000000 +
					CASE WHEN substr(e.value ->> '$.time', 20, 1) = '.'
					THEN CAST(substr(replace(substr(e.value ->> '$.time', 21), 'Z', '') || '000000', 1, 6) AS INTEGER)
					ELSE 0 END,
				coalesce(e.value ->> '$.reason', ''), coalesce(e.value ->> '$.detail', ''),
				coalesce(e.value ->> '$.hold_id', 0), coalesce(e.value ->> '$.queue_id', ''),
				coalesce(e.value ->> '$.by', '')
			FROM incidents AS i, json_each(i.evidence) AS e`,
		`ALTER TABLE incidents DROP COLUMN evidence`,
	},
	// 7: a held message's campaign fingerprints (keyed hashes, hex), so
	// that marking it as spam holds the same text from any account.
	{
		`ALTER TABLE holds ADD COLUMN prints TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(prints))`,
	},
	// 8: one row that readiness writes, so /readyz knows writes reach the
	// disk (a full disk, a read-only file system, a lock held elsewhere).
	{
		`CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL) STRICT`,
	},
	// 9: the cluster node whose Postfix queue holds the message (empty on
	// a single node, and for every hold recorded before); one held record
	// per node and queue ID, as two MTAs can give two messages one ID.
	{
		`ALTER TABLE holds ADD COLUMN node TEXT NOT NULL DEFAULT ''`,
		`DROP INDEX holds_queue_id`,
		`CREATE UNIQUE INDEX holds_queue_id ON holds (node, queue_id) WHERE queue_id <> '' AND state = 'held'`,
	},
	// 10: browser sessions, by the SHA-256 of their ID (the ID itself is
	// never stored), so that a session ended anywhere is ended.
	{
		`CREATE TABLE sessions (
			hash         BLOB    PRIMARY KEY CHECK (length(hash) = 32),
			name         TEXT    NOT NULL, -- the user
			role         TEXT    NOT NULL CHECK (role IN ('admin', 'helpdesk', 'viewer')),
			user_updated INTEGER NOT NULL, -- the user's updated when the session began
			created      INTEGER NOT NULL, -- Unix microseconds, UTC
			seen         INTEGER NOT NULL
		) STRICT, WITHOUT ROWID`,
		`CREATE INDEX sessions_name ON sessions (name)`,
		`CREATE INDEX sessions_seen ON sessions (seen)`,
	},
}

// migrate brings the file to the last version, len(migrations), in one write transaction and
// returns the versions before and after. It is idempotent.
func (s *Store) migrate(ctx context.Context) (from, to int, err error) {
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&from); err != nil {
			return fmt.Errorf("reading schema version: %w", err)
		}
		if from > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this mailbrake supports (%d); upgrade mailbrake or restore an older database", from, len(migrations))
		}
		if from < 0 {
			return fmt.Errorf("invalid schema version %d", from)
		}
		for v := from; v < len(migrations); v++ {
			for _, stmt := range migrations[v] {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migration to version %d: %w", v+1, err)
				}
			}
		}
		if from < len(migrations) {
			// PRAGMA takes no parameters; the value is our own integer.
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
				return fmt.Errorf("setting schema version: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return from, from, err
	}
	return from, len(migrations), nil
}
